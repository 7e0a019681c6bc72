"""`fluxdeploy open`: the server's prompt page in a browser, through an SSH tunnel.

`hold_page_tunnel` is the one function that opens the tunnel, hands the page's URL over and
waits until interrupted; the tunnel is closed whatever ends the wait. A local deployment
needs no tunnel: its URL is handed over and the call returns at once.
"""

from __future__ import annotations

import ssl
import time
import webbrowser
from collections.abc import Callable

import httpx

from intelligensi_deploy.errors import FluxdeployError
from intelligensi_deploy.machines import connect_existing
from intelligensi_deploy.signals import wait_forever
from intelligensi_deploy.state import Deployment
from intelligensi_deploy.tls_pin import pinned_context

HEALTH_WAIT_S = 5.0


def page_url(port: int, https: bool = False) -> str:
    """The prompt page on this machine's loopback (where tunnels and local servers listen)."""
    return f"{'https' if https else 'http'}://127.0.0.1:{port}/"


def page_verify(dep: Deployment) -> ssl.SSLContext | bool:
    """How to trust the page's server: its pinned certificate (HTTPS), or plain HTTP."""
    return pinned_context(dep.tls.cert_pem) if dep.tls else True


def server_answers(url: str, wait_s: float = HEALTH_WAIT_S,
                   sleep: Callable[[float], None] = time.sleep,
                   verify: ssl.SSLContext | bool = True) -> bool:
    """True once GET {url}health answers 200, trying for up to `wait_s` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            if httpx.get(f"{url}health", timeout=3.0, verify=verify).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            return False
        sleep(0.5)


def hold_page_tunnel(dep: Deployment, on_open: Callable[[str], None], *, local_port: int = 0,
                     wait: Callable[[], None] = wait_forever) -> None:
    """Reach the deployment's page, call `on_open(url)`, then hold the tunnel until `wait`
    returns or raises (`signals.Interrupted` on SIGINT/SIGTERM under `interruptible()`,
    which propagates after the tunnel closed).

    For a local deployment there is nothing to hold: `on_open` is called and it returns."""
    if not dep.active:
        raise FluxdeployError(
            f"Deployment {dep.name!r} is down: there is no server to open.",
            fix=f"Start it again with `fluxdeploy up --preset {dep.preset} --name {dep.name}`.")
    if dep.provider == "local":
        on_open(page_url(dep.port))
        return
    host = connect_existing(dep)
    try:
        with host.forward(dep.port, local_port=local_port) as port:
            on_open(page_url(port, https=dep.tls is not None))
            wait()
    finally:
        host.close()


def announce_page(url: str, *, open_browser: bool, echo: Callable[[str], None],
                  opener: Callable[[str], bool] | None = None,
                  verify: ssl.SSLContext | bool = True) -> None:
    """Print the URL, warn when nothing answers there yet, and open it in the default
    browser (Python's `webbrowser`, which honours $BROWSER) unless told not to."""
    echo(f"Prompt page: {url}")
    if not server_answers(url, verify=verify):
        echo("Warning: nothing answers there yet: the server container is stopped or still "
             "starting. Reload the page once it does; check with `fluxdeploy status`.")
    if not open_browser:
        return
    if opener is None:
        opener = webbrowser.open
    if not opener(url):
        echo("No browser could be started here: open the URL above yourself.")
