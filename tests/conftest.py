"""Shared pytest wiring: the real-sshd fixtures (`sshd`, `sshd_two_addresses`)."""

pytest_plugins = ["tests.fixtures.sshd"]
