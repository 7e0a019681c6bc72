"""`fluxdeploy open` as a user runs it: the real flux_server (a cheap one: a bad setting
leaves it `failed` without loading a model, but it serves the page), a real sshd for the
tunnel, and the command in a subprocess stopped with Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from intelligensi_deploy.state import Deployment, StateStore
from tests.fixtures.ports import free_port
from tests.fixtures.sshd import SSHServer

REPO_ROOT = Path(__file__).resolve().parents[1]
URL_LINE = re.compile(r"Prompt page: (http://127\.0\.0\.1:(\d+)/)")


@pytest.fixture(scope="module")
def flux_server(tmp_path_factory) -> Iterator[int]:
    """`python -m flux_server` on 127.0.0.1 serving the page (FLUX_MEMORY=lots: no model)."""
    port = free_port()
    log = tmp_path_factory.mktemp("flux") / "server.log"
    env = {**os.environ, "PORT": str(port), "FLUX_HOST": "127.0.0.1", "FLUX_MODEL": "tiny",
           "FLUX_MEMORY": "lots", "PYTHONPATH": str(REPO_ROOT / "server")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flux_server"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _home_with(tmp_path: Path, dep: Deployment) -> Path:
    home = tmp_path / "home"
    StateStore(home).save(dep)
    return home


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BROWSER"}
    return {**env, "FLUXDEPLOY_HOME": str(home), "COLUMNS": "200", **extra}


def _run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", "open", *args],
                          env=_env(home, **env), capture_output=True, text=True, timeout=60,
                          check=False)


def _recording_browser(tmp_path: Path) -> tuple[Path, Path]:
    """A $BROWSER command (Python's webbrowser honours it) that records the URL it gets."""
    record = tmp_path / "opened.txt"
    script = tmp_path / "record-browser"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {record}\n')
    script.chmod(0o755)
    return script, record


def test_local_prints_the_url_and_opens_the_browser(flux_server, tmp_path) -> None:
    home = _home_with(tmp_path, Deployment(name="here", preset="local", provider="local",
                                           port=flux_server, phase="ready"))
    browser, record = _recording_browser(tmp_path)
    result = _run(home, BROWSER=str(browser))
    assert result.returncode == 0, result.stdout + result.stderr
    url = f"http://127.0.0.1:{flux_server}/"
    assert f"Prompt page: {url}" in result.stdout
    assert "Warning" not in result.stdout
    assert record.read_text() == url  # no tunnel for a local deployment: it returns at once


def test_no_browser_only_prints_the_url(flux_server, tmp_path) -> None:
    home = _home_with(tmp_path, Deployment(name="here", preset="local", provider="local",
                                           port=flux_server, phase="ready"))
    browser, record = _recording_browser(tmp_path)
    result = _run(home, "--no-browser", BROWSER=str(browser))
    assert result.returncode == 0, result.stderr
    assert f"Prompt page: http://127.0.0.1:{flux_server}/" in result.stdout
    assert not record.exists()


def test_nothing_answering_is_a_warning_that_says_what_to_check(tmp_path) -> None:
    home = _home_with(tmp_path, Deployment(name="gone", preset="local", provider="local",
                                           port=free_port(), phase="ready"))
    result = _run(home, "--no-browser")
    assert result.returncode == 0, result.stderr
    assert "nothing answers there yet" in result.stdout
    assert "fluxdeploy status" in result.stdout


def test_a_deployment_that_is_down_is_refused_with_the_fix(tmp_path) -> None:
    home = _home_with(tmp_path, Deployment(name="old", preset="local", provider="local",
                                           phase="down"))
    result = _run(home, "--no-browser")
    assert result.returncode == 1
    assert "'old' is down" in result.stderr
    assert "fluxdeploy up --preset local --name old" in result.stderr
    assert "Prompt page" not in result.stdout


def test_unknown_deployment_is_a_clear_error(tmp_path) -> None:
    home = _home_with(tmp_path, Deployment(name="here", preset="local", provider="local"))
    result = _run(home, "--name", "elsewhere", "--no-browser")
    assert result.returncode != 0
    assert "elsewhere" in result.stderr


@pytest.fixture
def remote_deployment(sshd: SSHServer, flux_server: int, tmp_path: Path) -> Path:
    """A deployment on an SSH host (the real sshd) whose server listens on its 127.0.0.1."""
    dep = Deployment(name="vm", preset="ssh", provider="ssh", ip=sshd.host,
                     ssh_port=sshd.port, ssh_user=sshd.user,
                     ssh_key_path=str(sshd.client_key_path), host_key=sshd.host_public_key,
                     port=flux_server, phase="ready")
    return _home_with(tmp_path, dep)


def _start_open(home: Path) -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen([sys.executable, "-m", "intelligensi_deploy", "open",
                             "--no-browser"], env=_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if found := URL_LINE.search(line):
            return proc, found.group(1), int(found.group(2))
    proc.kill()
    raise AssertionError(f"no URL printed: {lines} {proc.stderr.read() if proc.stderr else ''}")


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def test_tunnel_serves_the_page_until_ctrl_c(remote_deployment: Path, flux_server) -> None:
    proc, url, local_port = _start_open(remote_deployment)
    try:
        assert local_port != flux_server  # through the tunnel, not straight to the server
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and 'src="page/app.js"' in page.text
        assert httpx.get(f"{url}ready", timeout=10).json()["state"] == "failed"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "Tunnel closed." in out
    assert "Traceback" not in err
    assert _refused(local_port)


def test_sigterm_closes_the_tunnel_promptly(remote_deployment: Path) -> None:
    proc, url, local_port = _start_open(remote_deployment)
    try:
        assert httpx.get(url, timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out + err  # closed by our handler, not killed outright
    assert "Tunnel closed." in out
    assert _refused(local_port)
