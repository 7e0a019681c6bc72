"""Shared pytest wiring: the real-sshd fixtures (`sshd`, `sshd_two_addresses`), and default
signal dispositions for every child process the tests start (tests/fixtures/dispositions.py)."""

from tests.fixtures.dispositions import reset_inherited_dispositions

pytest_plugins = ["tests.fixtures.sshd"]

reset_inherited_dispositions()
