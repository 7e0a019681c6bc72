"""The cloud-facing commands as a user runs them, against the fake Lambda API over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.fakes.fake_lambda import FakeLambda

KEY = "secret_cli-test-key_0123456789abcdef"


@pytest.fixture
def lam() -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, capacity={"gpu_1x_a10": ["us-east-1", "us-west-1"],
                                           "gpu_1x_h100_pcie": []}) as fake:
        yield fake
        assert fake.violations == []


def _cli(*args: str, lam: FakeLambda, key: str = KEY, tmp: str = "/nonexistent"
         ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LAMBDA_API_URL": lam.url, "LAMBDA_API_KEY": key,
           "FLUXDEPLOY_HOME": tmp, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "intelligensi_deploy", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_capacity_json_lists_regions_with_capacity(lam: FakeLambda) -> None:
    result = _cli("capacity", "--json", lam=lam)
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["instance_types"]}
    assert rows["gpu_1x_a10"]["regions"] == ["us-east-1", "us-west-1"]
    assert rows["gpu_1x_h100_pcie"]["regions"] == []
    assert rows["gpu_1x_a10"]["price_per_hour"] > 0


def test_capacity_table(lam: FakeLambda) -> None:
    result = _cli("capacity", lam=lam)
    assert result.returncode == 0, result.stderr
    assert "gpu_1x_a10" in result.stdout and "us-east-1, us-west-1" in result.stdout


def test_invalid_key_is_named_and_never_printed(lam: FakeLambda) -> None:
    wrong = "secret_wrong-key_abcdef0123456789"
    result = _cli("capacity", lam=lam, key=wrong)
    assert result.returncode == 1
    assert "LAMBDA_API_KEY" in result.stderr
    assert wrong not in result.stdout + result.stderr


def test_up_without_capacity_says_where_there_is(lam: FakeLambda, tmp_path) -> None:
    preset = tmp_path / "h100.yaml"
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    preset.write_text(
        "provider: lambda\nlambda: {instance_type: gpu_1x_h100_pcie, regions: [us-east-1], "
        f"ssh_key_name: k}}\nssh: {{key_path: {key}}}\nimage: ghcr.io/x/y:1\n")
    result = _cli("up", "--preset", str(preset), lam=lam, tmp=str(tmp_path / "home"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "gpu_1x_a10" in result.stderr and "us-east-1" in result.stderr
    assert lam.instances == {}
    assert not list((tmp_path / "home").glob("deployments/*.json"))  # no phantom record
