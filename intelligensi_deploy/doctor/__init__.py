"""`fluxdeploy doctor`: gathers evidence (runs read-only commands on the host, GETs, reads the
Lambda API) and hands it to `intelligensi_deploy.diagnosis`.

Bottom to top: check_types.py (the data), http_checks.py, cluster_check.py, image_check.py,
checks.py (CHECKS in playbook order), runner.py (runs them), report.py (renders results and
findings), command.py (the doctor command's entry), diagnose_command.py (the diagnose
command's entry, which loads no check).
"""
