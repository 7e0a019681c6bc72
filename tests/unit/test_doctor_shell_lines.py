"""doctor prints the line to type for the playbook's "shell in the container" step: the exact
`fluxdeploy exec` under a crash or a load failure in a running container, and, for a container
that does not stay up (exec cannot enter it), the image run by hand with a shell."""

from __future__ import annotations

from intelligensi_deploy.doctor.runner import run_checks
from intelligensi_deploy.shell_lines import exec_line, image_shell_line
from tests.unit.test_doctor_checks import FakeDocker, check, inspect_doc, make_deps

CRASH_LOG = """\
INFO:     flux_server.loader: loading model=black-forest-labs/FLUX.1-schnell
Traceback (most recent call last):
  File "/app/flux_server/loader.py", line 88, in load
KeyError: 'transformer'
"""


def test_a_crash_in_a_running_container_prints_the_exec_line() -> None:
    report = run_checks(make_deps(docker=FakeDocker(logs=CRASH_LOG)))
    logs = check(report, "logs")
    assert logs.status == "fail"
    assert "look inside the container: `fluxdeploy exec --name flux`" in logs.evidence


def test_a_container_that_exited_prints_the_image_run_by_hand() -> None:
    exited = inspect_doc(status="exited", exit_code=1)
    exited["Config"]["Image"] = "fluxdeploy/flux-server:1b24c0ffee"  # as docker inspect has it
    docker = FakeDocker(inspect=exited, logs=CRASH_LOG)
    report = run_checks(make_deps(provider="ssh", docker=docker))
    container = check(report, "container")
    assert container.status == "fail"
    line = container.evidence[-1]
    assert "exec` cannot enter it" in line
    assert line.endswith("`fluxdeploy ssh --name flux -- docker run --rm -it --entrypoint bash "
                         "fluxdeploy/flux-server:1b24c0ffee`")
    assert not any("fluxdeploy exec" in e for e in check(report, "logs").evidence)


def test_a_healthy_container_prints_neither() -> None:
    report = run_checks(make_deps())
    text = " ".join(e for c in report.checks for e in c.evidence)
    assert "fluxdeploy exec" not in text and "--entrypoint bash" not in text


def test_the_lines() -> None:
    assert exec_line("flux") == "fluxdeploy exec --name flux"
    assert exec_line("flux", 2) == "fluxdeploy exec --name flux --node 2"
    assert image_shell_line("flux", "local", "img:1") == \
        "docker run --rm -it --entrypoint bash img:1"
