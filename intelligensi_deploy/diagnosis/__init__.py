"""The diagnosis: pure functions over log text and facts that return findings with stable ids.

No I/O, no commands run: `doctor/` gathers the evidence (it runs commands on the host) and
hands it here; `fluxdeploy diagnose` and a failed bundled build use the same functions.
findings.py (the catalogue) is at the bottom; diagnose.py, loading.py, build_failure.py,
exposure.py and cluster_findings.py build on it.
"""
