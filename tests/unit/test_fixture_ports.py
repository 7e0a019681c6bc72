"""The test servers' ports stay out of the kernel's ephemeral range (CI once lost a server's
port to some client's source port between the probe and the bind) and are never handed out
twice in one run."""

from __future__ import annotations

import socket

from tests.fixtures import ports
from tests.fixtures.ports import LOWEST, ephemeral_floor, free_port


def test_ports_are_below_the_ephemeral_range_and_never_repeat() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(LOWEST <= port < ephemeral_floor() for port in ports)


def test_a_port_in_use_is_skipped(monkeypatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        busy = taken.getsockname()[1]
        spare = free_port()
        draws = iter([busy, busy, spare])
        monkeypatch.setattr(ports.random, "randrange", lambda low, high: next(draws))
        monkeypatch.setattr(ports, "_handed_out", set())
        assert free_port() == spare
