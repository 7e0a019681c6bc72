"""Texts of a failed model load that name their finding, kept beside `diagnose.RULES` (which
splices them in where the device-map rule stood). Pure data: (finding id, regex, title).

Each text was produced for real (tests/fixtures/load_runs.py makes them again):
- diffusers' refusal of device_map="auto", in full and in the short form people paste;
- a requests/urllib3 connection failure to the Hub (DNS, refused, timeout), which is the Hub
  being unreachable, not a server crash.
"""

from __future__ import annotations

RuleSpec = tuple[str, str, str | None]

_HUB_HOST = r"host='(?:[\w-]+\.)*(?:huggingface\.co|hf\.co)', port=\d+\)"

LOAD_RULES: tuple[RuleSpec, ...] = (
    ("device-map-auto", (r"\bauto not supported\. Supported strategies are|"
                         r"\bNotImplementedError\b.{0,40}\bauto not supported\b"), None),
    ("hf-unreachable", r"\bHTTPS?Connection(?:Pool)?\(" + _HUB_HOST, None),
)
