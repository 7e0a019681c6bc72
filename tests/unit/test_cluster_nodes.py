"""The head and worker containers of a multi-node cluster: pure argv, secrets kept out."""

from __future__ import annotations

from pathlib import Path

from intelligensi_deploy.cluster_nodes import (
    cluster_nodes,
    new_ray_token,
    node_env_file,
    node_run_args,
    start_order,
)
from intelligensi_deploy.presets import load_preset
from intelligensi_deploy.secrets import Token

# The shipped multi-VM preset (3 x gpu_1x_a100, one replica each).
MULTI_VM_EXAMPLE = Path(__file__).resolve().parents[2] / "presets" / "lambda-3x-a100.yaml"

IPS = ["203.0.113.10", "203.0.113.11", "203.0.113.12"]


def _args(index: int) -> list[str]:
    preset = load_preset(str(MULTI_VM_EXAMPLE))
    nodes = cluster_nodes("demo", IPS)
    return node_run_args(preset, "demo", nodes[index], IPS[0], "/home/ubuntu/.fluxdeploy/env",
                         1)


def _env(args: list[str]) -> dict[str, str]:
    pairs = [args[i + 1] for i, a in enumerate(args) if a == "-e"]
    return dict(p.split("=", 1) for p in pairs)


def test_the_head_runs_the_endpoint_and_the_workers_join_it():
    head, worker = _args(0), _args(1)
    assert head[-4:] == ["python", "-m", "flux_server.node", "head"]
    assert worker[-1] == "worker"
    assert _env(worker)["FLUX_RAY_HEAD"] == "203.0.113.10:6379"
    assert _env(head)["FLUX_RAY_ADDRESS"] == "203.0.113.10:6379"
    assert _env(head)["FLUX_HOST"] == "127.0.0.1"  # exposure tunnel: VM loopback only
    assert _env(head)["FLUX_MAX_REPLICAS"] == "3" and _env(worker)["FLUX_NODE_IP"] == IPS[1]
    for args in (head, worker):
        assert ["--network", "host"] == args[args.index("--network"):args.index("--network") + 2]
        assert "--gpus" in args and _env(args)["RAY_AUTH_MODE"] == "token"


def test_secrets_only_in_the_env_file():
    token = new_ray_token()
    hf = Token("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz0123")
    body = node_env_file(hf, token).decode()
    assert f"RAY_AUTH_TOKEN={token}" in body and "HF_TOKEN=hf_abc" in body
    for args in (_args(0), _args(1)):
        text = " ".join(args)
        assert token not in text and "hf_abc" not in text
        assert "--env-file" in args
    assert len(token) == 64 and token != new_ray_token()


def test_the_head_starts_first():
    nodes = cluster_nodes("demo", IPS)
    assert [n.role for n in start_order(list(reversed(nodes)))] == ["head", "worker", "worker"]


def test_a_public_cluster_head_checks_keys_from_its_secrets_volume_and_workers_do_not():
    preset = load_preset(str(MULTI_VM_EXAMPLE)).model_copy(update={"exposure": "public"})
    assert preset.auth_on
    nodes = cluster_nodes("demo", IPS)
    head = node_run_args(preset, "demo", nodes[0], IPS[0], "/h/env", 1)
    worker = node_run_args(preset, "demo", nodes[1], IPS[0], "/h/env", 1)
    assert _env(head)["FLUX_HOST"] == "0.0.0.0"
    assert _env(head)["FLUX_API_KEYS_FILE"] == "/run/fluxdeploy/api-keys"
    assert head[head.index("fluxdeploy-demo-secrets:/run/fluxdeploy:ro") - 1] == "-v"
    assert "FLUX_API_KEYS_FILE" not in _env(worker)  # workers serve no HTTP
    assert not any("-secrets:" in a for a in worker)
