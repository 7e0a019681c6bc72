"""The prompt page with API keys (FLUX_API_KEYS_FILE) in Debian's Chromium: the key dialog on
a 401, a wrong key asked again, the key in sessionStorage and sent as a Bearer header, a
revoked key asked again. Fixtures and helpers are test_page_browser.py's."""

from __future__ import annotations

import signal

import test_page_browser as page_tests
from test_page_browser import GENERATE_TIMEOUT_MS, LOAD_TIMEOUT_MS, _generate_button

browser, new_page = page_tests.browser, page_tests.new_page  # its fixtures, used by name


PAGE_KEY = "page-key-0123456789abcdef"


def test_with_api_keys_the_page_asks_for_the_key_and_sends_it(start_server, new_page,
                                                              workdir) -> None:
    """A 401 opens the key dialog; a wrong key asks again; the right one is kept in
    sessionStorage and sent as `Authorization: Bearer` on every API call."""
    from playwright.sync_api import expect

    keys_file = workdir / "page-api-keys"
    keys_file.write_text(f"{PAGE_KEY}\n")
    server = start_server("page-keys", FLUX_MODEL="tiny", FLUX_API_KEYS_FILE=str(keys_file))
    server.wait_state("ready")
    page = new_page()
    sent: dict[str, list[str | None]] = {}
    page.on("request", lambda r: sent.setdefault(r.url.rsplit("/", 1)[-1], []).append(
        r.headers.get("authorization")))
    page.goto(server.url)
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()  # /model-status answered 401
    expect(page.locator("#key-reason")).to_contain_text("needs an API key")
    page.get_by_role("textbox", name="API key").fill("not-the-key-0123456789")
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#key-reason")).to_contain_text("did not accept")
    expect(dialog).to_be_visible()
    page.get_by_role("textbox", name="API key").fill(PAGE_KEY)
    page.get_by_role("button", name="Use this key").click()
    expect(dialog).to_be_hidden()
    expect(_generate_button(page)).to_be_enabled(timeout=LOAD_TIMEOUT_MS)
    expect(page.locator("#model-name")).to_have_text("tiny")
    assert page.evaluate("() => sessionStorage.getItem('flux.apiKey')") == PAGE_KEY

    page.get_by_label("Prompt", exact=True).fill("a key-holding fox")
    page.get_by_label("Width").select_option("64")
    page.get_by_label("Height").select_option("64")
    _generate_button(page).click()
    expect(page.locator("#results figure")).to_have_count(1, timeout=GENERATE_TIMEOUT_MS)
    assert sent["generate"] == [f"Bearer {PAGE_KEY}"]  # no 401 round trip: sent at once
    assert sent["model-status"][-1] == f"Bearer {PAGE_KEY}"

    # a reload keeps the key (this tab's session): no dialog
    page.reload()
    expect(_generate_button(page)).to_be_enabled(timeout=LOAD_TIMEOUT_MS)
    expect(dialog).to_be_hidden()

    # the key revoked: the next call asks again
    keys_file.write_text("other-key-0123456789abcdef\n")
    server.proc.send_signal(signal.SIGHUP)
    page.get_by_label("Prompt", exact=True).fill("after the rotation")
    _generate_button(page).click()
    expect(dialog).to_be_visible()
    expect(page.locator("#key-reason")).to_contain_text("did not accept")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("#message")).to_contain_text("401")
    assert server.log_text().count(PAGE_KEY) == 0
