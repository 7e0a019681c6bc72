"""PLAYBOOK.md has a section for every finding id and for every `doc=` anchor the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intelligensi_deploy.diagnosis.findings import FINDING_IDS
from intelligensi_deploy.doctor.checks import CHECKS

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / "PLAYBOOK.md"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def playbook_anchors() -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", PLAYBOOK.read_text(encoding="utf-8"),
                          re.MULTILINE)
    return {github_anchor(h) for h in headings}


def anchors_used_in_code() -> set[str]:
    pattern = re.compile(r"""\bdoc\s*(?::[^=\n]*)?=\s*["']([a-z0-9][a-z0-9-]*)["']|"""
                         r"PLAYBOOK\.md#([a-z0-9-]+)")
    used: set[str] = set()
    for path in (ROOT / "intelligensi_deploy").rglob("*.py"):
        for match in pattern.finditer(path.read_text(encoding="utf-8")):
            used.add(match.group(1) or match.group(2))
    return used


def test_github_anchor() -> None:
    assert github_anchor("ghcr-auth") == "ghcr-auth"
    assert github_anchor("The `ghcr-auth` problem") == "the-ghcr-auth-problem"


@pytest.mark.parametrize("finding_id", FINDING_IDS)
def test_every_finding_id_has_a_playbook_section(finding_id: str) -> None:
    assert finding_id in playbook_anchors()
    text = PLAYBOOK.read_text(encoding="utf-8")
    assert re.search(rf"^## {re.escape(finding_id)}$", text, re.MULTILINE)


def test_every_doc_anchor_the_code_points_to_exists() -> None:
    missing = anchors_used_in_code() - playbook_anchors()
    assert not missing, f"PLAYBOOK.md lacks sections: {sorted(missing)}"


def test_the_catalogue_is_what_the_issue_promised() -> None:
    assert set(FINDING_IDS) == {
        "ghcr-auth", "image-not-found", "hf-auth", "hf-unreachable", "device-map-auto",
        "cuda-oom", "oom-killed", "nvidia-runtime", "gpu-not-visible", "disk-full", "port-in-use",
        "still-loading", "bound-to-loopback", "firewall-closed", "container-crash",
        "fp8-unsupported", "recompile-storm", "compile-slow-start", "image-build-failed",
        "replica-lost", "open-endpoint", "key-refused", "cert-changed", "cert-expiring",
        "unauthorized-storm", "cache-corrupt"}


def test_playbook_states_the_golden_rule_and_the_exit_codes() -> None:
    text = PLAYBOOK.read_text(encoding="utf-8")
    assert "Logs first. Container shell second. Redeploy last." in text
    assert {"golden-rule", "exit-codes", "three-auth-problems", "memory", "exposure"} <= \
        playbook_anchors()


def test_every_doctor_check_is_documented() -> None:
    text = PLAYBOOK.read_text(encoding="utf-8")
    for check in CHECKS:
        assert f"| `{check.id}` |" in text, check.id
