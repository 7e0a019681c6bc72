"""Presets' `scale:` section: shipped scale-out presets, defaults, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from intelligensi_deploy.preset_paths import PresetError
from intelligensi_deploy.presets import load_preset, parse_preset

# The shipped multi-VM preset (3 x gpu_1x_a100, one replica each).
MULTI_VM_EXAMPLE = Path(__file__).resolve().parents[2] / "presets" / "lambda-3x-a100.yaml"

BASE = """
provider: lambda
lambda: {instance_type: INSTANCE, ssh_key_name: me, regions: [us-east-1]}
image: ghcr.io/x/flux:1
server: {memory: gpu, quant: none, dtype: bf16, queue_size: 12}
"""


def preset(instance: str = "gpu_8x_a100_80gb_sxm4", scale: str = "", server: str = ""):
    text = BASE.replace("INSTANCE", instance)
    if server:
        text = text.replace("{memory: gpu, quant: none, dtype: bf16, queue_size: 12}", server)
    return parse_preset(text + (f"scale: {scale}\n" if scale else ""), source="/tmp/s.yaml")


def error(**kwargs) -> str:
    with pytest.raises(PresetError) as info:
        preset(**kwargs)
    return str(info.value)


def test_8x_preset_runs_8_replicas_one_per_gpu_on_one_vm():
    p = load_preset("lambda-8x-a100")
    assert p.lambda_.gpu_count() == 8 and p.scale.nodes == 1
    env = p.scale_env()
    assert env["FLUX_MIN_REPLICAS"] == env["FLUX_MAX_REPLICAS"] == "8"
    assert "FLUX_RAY_ADDRESS" not in env  # one VM: the server starts Ray itself


def test_multi_vm_preset_spans_three_single_gpu_nodes():
    p = load_preset(str(MULTI_VM_EXAMPLE))
    assert p.lambda_.instance_type == "gpu_1x_a100" and p.scale.nodes == 3
    env = p.scale_env()
    assert (env["FLUX_MIN_REPLICAS"], env["FLUX_MAX_REPLICAS"]) == ("2", "3")
    assert env["FLUX_RAY_ADDRESS"] == "auto"
    assert "us-south-1" not in p.lambda_.regions


def test_replicas_default_to_one_per_gpu_and_queue_to_the_server_queue():
    env = preset(scale="{nodes: 2}").scale_env()
    assert env["FLUX_MIN_REPLICAS"] == env["FLUX_MAX_REPLICAS"] == "16"
    assert env["FLUX_MIN_READY"] == "16" and env["FLUX_MAX_QUEUED_REQUESTS"] == "12"


def test_no_scale_section_adds_nothing():
    assert preset().scale_env() == {}


@pytest.mark.parametrize("scale, words", [
    ("{replicas_per_node: 9}", "less than or equal to 8"),
    ("{nodes: 1, max_replicas: 9}", "can never be placed: 1 node(s) x 8 replica(s) = 8 GPUs"),
    ("{min_replicas: 5, max_replicas: 3}", "min_replicas (5) is above max_replicas (3)"),
    ("{max_replicas: 4, min_ready: 6}", "min_ready: 6 can never be reached"),
    ("{nodes: 0}", "greater than or equal to 1"),
    ("{nodez: 2}", "did you mean 'nodes'"),
    ("{endpoint: dashboard}", "serving-port"),
])
def test_bad_scale_sections_name_the_field_and_the_fix(scale, words):
    message = error(scale=scale)
    assert "/tmp/s.yaml" in message and words in message, message


def test_more_replicas_per_node_than_gpus_is_refused():
    message = error(instance="gpu_1x_a100", scale="{replicas_per_node: 2}")
    assert "more than the 1 GPU(s) of gpu_1x_a100" in message
    assert "use at most 1" in message


def test_balanced_memory_contradicts_one_gpu_per_replica():
    message = error(instance="gpu_2x_a100", scale="{nodes: 1}",
                    server="{memory: balanced, quant: none, dtype: bf16}")
    assert "memory 'balanced'" in message and "use memory gpu" in message


def test_several_nodes_need_lambda():
    with pytest.raises(PresetError, match="needs provider 'lambda'"):
        parse_preset("provider: ssh\nssh: {host: 10.0.0.5}\nimage: x\n"
                     "scale: {nodes: 2, replicas_per_node: 1}\n", source="/tmp/ssh2.yaml")


def test_up_with_room_for_two_of_three_nodes_leaves_nothing_billing(tmp_path):
    """`up` on the shipped 3-VM preset, through the fake Lambda API, when the region has
    room for 2 nodes only: both are terminated at once, the record holds nothing, the
    error offers the choice, and no firewall rule was written."""
    from intelligensi_deploy.cloud.cluster_plan import ClusterCapacityError
    from intelligensi_deploy.cloud.lambda_api import LambdaClient
    from intelligensi_deploy.deploy import dispatch
    from intelligensi_deploy.state import StateStore
    from tests.fakes.fake_lambda import FakeLambda

    class Quiet:
        def __getattr__(self, _name):
            return lambda *args, **kwargs: None

    key = tmp_path / "id_ed25519"
    key.with_suffix(".pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake me\n")
    shipped = load_preset(str(MULTI_VM_EXAMPLE))
    preset = shipped.model_copy(update={
        "ssh": shipped.ssh.model_copy(update={"key_path": str(key)})})
    store = StateStore(tmp_path)
    with FakeLambda(api_key="secret_k", capacity={"gpu_1x_a100": ["us-east-1"]},
                    launch_interval_s=0.0) as fake:
        fake.limit_capacity("gpu_1x_a100", "us-east-1", 2)
        with pytest.raises(ClusterCapacityError) as info:
            dispatch.up(preset, name="trio", store=store, ui=Quiet(), environ={},
                      lambda_client=lambda: LambdaClient("secret_k", fake.url))
        assert len(fake.calls("POST", "/instance-operations/launch")) == 3
        assert all(i.forced_status == "terminated" for i in fake.instances.values())
        assert fake.calls("PUT", "/firewall-rules") == []
        assert fake.violations == []
    assert "Only 2 of 3 nodes" in info.value.message and "lower scale.nodes" in info.value.fix
    record = store.load("trio")
    assert record is None or not record.holds_resources


def test_a_bundled_scale_preset_needs_the_scale_extra():
    text = BASE.replace("INSTANCE", "gpu_8x_a100_80gb_sxm4").replace(
        "image: ghcr.io/x/flux:1", "image: bundled")
    with pytest.raises(PresetError) as info:
        parse_preset(text + "scale: {nodes: 1}\n", source="/tmp/s.yaml")
    assert "'scale' extra" in str(info.value) and "build.extras" in str(info.value)
