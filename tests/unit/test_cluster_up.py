"""cluster_up's record keeping and `down` of a cluster whose nodes cannot be reached (the
fake Lambda API, checked against the OpenAPI file); the whole path runs in
tests/e2e/test_e2e_cluster.py."""

from __future__ import annotations

import pytest

from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.cloud.ray_ports import merge_ray_rules
from intelligensi_deploy.deploy.cluster_down import down_cluster
from intelligensi_deploy.deploy.cluster_up import (
    NodeRun,
    config_hash,
    read_ray_token,
    refuse_while_loading,
    with_config_label,
)
from intelligensi_deploy.remote.host_protocol import RunResult
from intelligensi_deploy.state import Deployment, NodeRecord, StateStore, Tracker, set_node
from tests.fakes.fake_lambda import FakeLambda


class Quiet:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __getattr__(self, _name):
        return lambda *args, **kwargs: self.lines.append(" ".join(map(str, args)))


def test_node_one_is_mirrored_at_the_top_level_and_saved_at_once(tmp_path):
    store = StateStore(tmp_path)
    tracker = Tracker(store, Deployment(name="c", preset="p", provider="lambda"), recorded=False)
    set_node(tracker, NodeRecord(index=2, name="fluxdeploy-c-node2", instance_id="i2"))
    assert store.load("c").nodes[0].instance_id == "i2"  # recorded on the first node
    assert store.load("c").instance_id is None
    set_node(tracker, NodeRecord(index=1, name="fluxdeploy-c-node1", instance_id="i1",
                                 ip="203.0.113.1", region="us-east-1"))
    saved = store.load("c")
    assert [n.index for n in saved.nodes] == [1, 2]
    assert (saved.instance_id, saved.ip, saved.region) == ("i1", "203.0.113.1", "us-east-1")
    assert saved.holds_resources and saved.is_cluster


def test_the_config_label_changes_with_any_argument():
    args = ["run", "-d", "-e", "A=1", "img:1", "python"]
    labelled = with_config_label(args, "img:1")
    assert labelled[4:6] == ["--label", f"fluxdeploy.config={config_hash(args)}"]
    assert config_hash(args) != config_hash([*args[:3], "A=2", *args[4:]])


class CatHost:
    def __init__(self, text: str, ok: bool = True) -> None:
        self.text, self.ok = text, ok

    def run(self, argv, **_kwargs):
        return RunResult(list(argv), 0 if self.ok else 1, self.text, "")


def test_the_ray_token_is_read_back_from_the_heads_env_file():
    assert read_ray_token(CatHost("RAY_AUTH_TOKEN=abc123\nHF_TOKEN=hf_x\n"), "/f") == "abc123"
    assert read_ray_token(CatHost("HF_TOKEN=hf_x\n"), "/f") is None
    assert read_ray_token(CatHost("", ok=False), "/f") is None


def test_down_with_unreachable_nodes_still_terminates_all_and_removes_the_ray_rules(tmp_path):
    with FakeLambda(api_key="secret_k", capacity={"gpu_1x_a100": ["us-east-1"]},
                    launch_interval_s=0.0, instance_ip=["127.0.0.1"]) as fake:
        fake.add_ssh_key("me")
        client = LambdaClient("secret_k", fake.url)
        ids = [client.launch("us-east-1", "gpu_1x_a100", "me", name=f"n{i}")[0]
               for i in (1, 2)]
        ips = ["198.51.100.1", "198.51.100.2"]
        client.set_firewall_rules(merge_ray_rules(client.firewall_rules(), "c", ips))
        nodes = [NodeRecord(index=i, name=f"fluxdeploy-c-node{i}", instance_id=ids[i - 1],
                            ip="127.0.0.1", container_name=f"fluxdeploy-c-node{i}")
                 for i in (1, 2)]
        store = StateStore(tmp_path)
        dep = store.save(Deployment(name="c", preset="p", provider="lambda", nodes=nodes,
                                    ray_rule_ips=ips, instance_id=ids[0], ip="127.0.0.1",
                                    ssh_port=1, ssh_key_path=str(tmp_path / "nokey")))
        ui = Quiet()
        result = down_cluster(dep, store, ui, client)
        assert result.phase == "down" and result.nodes == [] and not result.holds_resources
        assert all(i.forced_status == "terminated" for i in fake.instances.values())
        assert not [r for r in fake.firewall_rules if "fluxdeploy ray" in r["description"]]
        assert any("Could not reach node 1" in line for line in ui.lines)
        assert fake.violations == []
        with pytest.raises(Exception, match="no node 3"):
            dep.node(3)


class ReadyServer:
    """A real HTTP /ready on 127.0.0.1 answering `body`; a Host whose forward reaches it."""

    def __init__(self, body: dict, status: int) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def forward(self, _port, **_kwargs):
        import contextlib

        @contextlib.contextmanager
        def opened():
            yield self.server.server_address[1]
        return opened()


def test_a_changed_preset_is_refused_while_the_cluster_loads_and_not_once_ready():
    from intelligensi_deploy.errors import FluxdeployError
    from intelligensi_deploy.presets import load_preset

    preset = load_preset("lambda-3x-a100")
    node = NodeRecord(index=2, name="fluxdeploy-c-node2")
    changed = [NodeRun(node, "fluxdeploy-c-node2", "/e", ["run", "img"], {"State": {}})]
    loading = ReadyServer({"state": "loading", "progress": {}, "cluster": {"ready": "1/3"}}, 503)
    try:
        with pytest.raises(FluxdeployError) as info:
            refuse_while_loading(preset, loading, changed)
        assert "still loading" in info.value.message and "node(s) 2" in info.value.message
        assert "--force" in info.value.fix
    finally:
        loading.server.shutdown()
    ready = ReadyServer({"state": "ready", "cluster": {"ready": "3/3"}}, 200)
    try:
        refuse_while_loading(preset, ready, changed)  # ready: replacing is allowed
    finally:
        ready.server.shutdown()
