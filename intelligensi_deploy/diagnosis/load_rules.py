"""Texts of a failed model load that name their finding, kept beside `diagnose.RULES` (which
splices them in where the device-map rule stood). Pure data: (finding id, regex, severity,
title); None for the catalogue's.

Each text was produced for real (tests/fixtures/load_runs.py makes them again):
- diffusers' refusal of device_map="auto", in full and in the short form people paste;
- a requests/urllib3 connection failure to the Hub (DNS, refused, timeout), which is the Hub
  being unreachable, not a server crash;
- a broken HF cache: safetensors' own words for a file cut in its data or header or not
  safetensors at all (0.8 words them `incomplete metadata`, `invalid header length`, `header
  too large`; older releases `MetadataIncompleteBuffer`, `HeaderTooLarge`), diffusers' lines
  that name the file, and the server's own `cache-corrupt:` lines (flux_server/download.py);
- a compile cache entry torch cannot read (Inductor's FX graph cache warns and recompiles).
"""

from __future__ import annotations

from intelligensi_deploy.diagnosis.findings import Severity

RuleSpec = tuple[str, str, Severity | None, str | None]

_HUB_HOST = r"host='(?:[\w-]+\.)*(?:huggingface\.co|hf\.co)', port=\d+\)"
_SAFETENSORS = (r"Error while deserializing header: (?:HeaderTooLarge|HeaderTooSmall|"
                r"InvalidHeader\w*|MetadataIncompleteBuffer|header too (?:large|small)|"
                r"invalid header\b|incomplete metadata)|\bSafetensorError\b")

LOAD_RULES: tuple[RuleSpec, ...] = (
    ("device-map-auto", (r"\bauto not supported\. Supported strategies are|"
                         r"\bNotImplementedError\b.{0,40}\bauto not supported\b"), None, None),
    ("hf-unreachable", r"\bHTTPS?Connection(?:Pool)?\(" + _HUB_HOST, None, None),
    ("cache-corrupt", r"\bcache-corrupt: .*; downloading it again", "warning",
     "A broken file in the HF cache (named below) was downloaded again by the server"),
    ("cache-corrupt", r"\bcache-corrupt: an interrupted download left", "warning",
     ("An interrupted download left .incomplete files in the HF cache (named below); the "
      "server resumes them when the Hub is reachable")),
    ("cache-corrupt", r"\bfx graph cache unable to load compiled graph\b", "warning",
     ("The compile cache holds a broken entry; torch compiled that graph again "
      "(`fluxdeploy cache clear --compiled` removes the compile cache)")),
    ("cache-corrupt", r"\bCacheCorrupt\b|\bbroken file\(s\) in the (?:HF cache|model folder): ", None, None),
    ("cache-corrupt", _SAFETENSORS, None, None),
    ("cache-corrupt", r"Unable to load weights from checkpoint file for '[^']+\.safetensors'",
     None, None),
    ("cache-corrupt", r"You seem to have cloned a repository without having git-lfs installed",
     None, None),
)
