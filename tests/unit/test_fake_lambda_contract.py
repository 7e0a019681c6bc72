"""The OpenAPI contract checker catches bad messages, and the fake Lambda API conforms to it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.fake_lambda import FakeLambda
from tests.fakes.openapi_contract import NO_BODY, OpenAPIContract, shared_contract

KEY = "secret_contract_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LAUNCH = "/api/v1/instance-operations/launch"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def contract() -> OpenAPIContract:
    return shared_contract()


def _launch_body(**extra: Any) -> dict[str, Any]:
    return {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
            "ssh_key_names": ["laptop"], **extra}


# --------------------------------------------------------------------------- the checker


def test_contract_is_the_official_file(contract: OpenAPIContract) -> None:
    assert contract.spec["info"]["title"] == "Lambda Cloud API"
    assert contract.spec["info"]["version"] == "1.10.0"


@pytest.mark.parametrize(("method", "path", "operation_id"), [
    ("GET", "/api/v1/instances/abc123", "getInstance"),
    ("GET", "/api/v1/instances", "listInstances"),
    ("GET", "/api/v1/instances?cluster_id=x", "listInstances"),
    ("GET", "/api/v1/file-systems", "listFilesystems"),
    ("POST", "/api/v1/filesystems", "createFilesystem"),
    ("GET", "/api/v1/firewall-rulesets/global", "getGlobalFirewallRuleset"),
    ("PUT", "/api/v1/firewall-rules", "firewallRulesSet"),
    ("DELETE", "/api/v1/ssh-keys/k1", "deleteSSHKey"),
])
def test_paths_match_their_templates(contract: OpenAPIContract, method: str, path: str,
                                     operation_id: str) -> None:
    operation = contract.match(method, path)
    assert operation is not None and operation.operation_id == operation_id


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/filesystems"),          # listing is /file-systems, creating /filesystems
    ("POST", "/api/v1/file-systems"),
    ("DELETE", "/api/v1/instances/abc"),
    ("GET", "/api/v1/instances/abc/extra"),
    ("GET", "/api/v2/instances"),
])
def test_unknown_operations_are_violations(contract: OpenAPIContract, method: str,
                                           path: str) -> None:
    assert contract.validate_request(method, path, NO_BODY)
    assert contract.validate_response(method, path, 200, {"data": []})


def test_valid_launch_request_passes(contract: OpenAPIContract) -> None:
    body = _launch_body(name="x", file_system_names=["fs"], image={"family": "lambda-stack"},
                        user_data="#cloud-config", tags=[{"key": "app", "value": "flux"}],
                        firewall_rulesets=[{"id": "r1"}])
    assert contract.validate_request("POST", LAUNCH, body, headers=AUTH) == []


@pytest.mark.parametrize(("body", "fragment"), [
    ({"region_name": "us-east-1", "ssh_key_names": ["k"]}, "'instance_type_name' is a required"),
    (_launch_body(quantity=1), "'quantity' was unexpected"),
    (_launch_body(ssh_key_names="laptop"), "is not of type 'array'"),
    (_launch_body(region="us-east-1"), "'region' was unexpected"),
    (_launch_body(name="x" * 65), "is too long"),
    (_launch_body(tags=[{"key": "Upper", "value": "v"}]), "does not match"),
    (_launch_body(image="lambda-stack"), "image"),
])
def test_bad_launch_requests_are_caught(contract: OpenAPIContract, body: dict[str, Any],
                                        fragment: str) -> None:
    problems = contract.validate_request("POST", LAUNCH, body, headers=AUTH)
    assert problems and fragment in " ".join(problems)


def test_missing_body_and_missing_auth_are_caught(contract: OpenAPIContract) -> None:
    assert "required JSON body is missing" in " ".join(
        contract.validate_request("POST", LAUNCH, NO_BODY, headers=AUTH))
    assert "Authorization" in " ".join(
        contract.validate_request("GET", "/api/v1/instances", NO_BODY, headers={}))
    assert contract.validate_request("GET", "/api/v1/instances", NO_BODY,
                                     headers={"Authorization": "Basic a2V5Og=="}) == []


@pytest.mark.parametrize("rule", [
    {"protocol": "tcp", "port_range": [8000, 8000], "source_network": "1.2.3.4/33",
     "description": "bad mask"},
    {"protocol": "tcp", "port_range": [0, 8000], "source_network": "0.0.0.0/0",
     "description": "port 0"},
    {"protocol": "sctp", "port_range": [1, 2], "source_network": "0.0.0.0/0",
     "description": "protocol"},
    {"protocol": "tcp", "port_range": [8000], "source_network": "0.0.0.0/0",
     "description": "one port"},
    {"protocol": "tcp", "port_range": [8000, 8000], "source_network": "0.0.0.0/0"},
])
def test_bad_firewall_rules_are_caught(contract: OpenAPIContract, rule: dict[str, Any]) -> None:
    assert contract.validate_request("PUT", "/api/v1/firewall-rules", {"data": [rule]})


def test_firewall_rules_put_takes_a_data_envelope(contract: OpenAPIContract) -> None:
    rule = {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0",
            "description": "ssh"}
    assert contract.validate_request("PUT", "/api/v1/firewall-rules", {"data": [rule]}) == []
    assert contract.validate_request("PUT", "/api/v1/firewall-rules", [rule])
    assert contract.validate_request("PUT", "/api/v1/firewall-rules", {"rules": [rule]})


def test_documented_examples_pass_as_responses(contract: OpenAPIContract) -> None:
    schemas = contract.spec["components"]["schemas"]
    types_example = schemas["InstanceTypes"]["example"]
    assert contract.validate_response("GET", "/api/v1/instance-types", 200,
                                      {"data": types_example}) == []
    terminate = contract.spec["paths"]["/api/v1/instance-operations/terminate"]["post"]
    example = (terminate["responses"]["200"]["content"]["application/json"]["schema"]
               ["properties"]["data"]["examples"][0])
    # Lambda's own example carries `is_reserved`, which the Instance schema does not declare:
    # the real API sends undeclared fields, so only the strict check (used on the fake) flags it
    # and the client must ignore unknown fields.
    lenient = OpenAPIContract(strict=False)
    assert lenient.validate_response("POST", "/api/v1/instance-operations/terminate", 200,
                                     {"data": example}) == []
    strict = contract.validate_response("POST", "/api/v1/instance-operations/terminate", 200,
                                        {"data": example})
    assert len(strict) == 1 and "'is_reserved' was unexpected" in strict[0]


def test_client_parses_the_documented_example_with_undeclared_fields(
        contract: OpenAPIContract) -> None:
    from intelligensi_deploy.cloud.lambda_types import Instance

    terminate = contract.spec["paths"]["/api/v1/instance-operations/terminate"]["post"]
    example = (terminate["responses"]["200"]["content"]["application/json"]["schema"]
               ["properties"]["data"]["examples"][0])
    instance = Instance.from_api(example["terminated_instances"][0])
    assert (instance.id, instance.ip, instance.region, instance.instance_type) == (
        "0920582c7ff041399e34823a0be62549", "198.51.100.2", "us-west-1", "gpu_8x_example")


def test_bad_responses_are_caught(contract: OpenAPIContract) -> None:
    schemas = contract.spec["components"]["schemas"]
    types_example = copy.deepcopy(schemas["InstanceTypes"]["example"])
    item = next(iter(types_example.values()))
    del item["instance_type"]["specs"]["gpus"]
    problems = contract.validate_response("GET", "/api/v1/instance-types", 200,
                                          {"data": types_example})
    assert problems and "'gpus' is a required property" in " ".join(problems)
    assert contract.validate_response("GET", "/api/v1/ssh-keys", 200, [])  # no data envelope
    assert contract.validate_response("GET", "/api/v1/ssh-keys", 200,
                                      {"data": [], "extra": 1})


def test_error_answers_must_use_the_documented_code_and_status(
        contract: OpenAPIContract) -> None:
    good = {"error": {"code": "global/invalid-api-key", "message": "bad",
                      "suggestion": "make a new one"}}
    assert contract.validate_response("GET", "/api/v1/instances", 401, good) == []
    wrong_code = {"error": {"code": "global/unauthorized", "message": "bad",
                            "suggestion": "x"}}
    assert contract.validate_response("GET", "/api/v1/instances", 401, wrong_code)
    no_suggestion = {"error": {"code": "global/invalid-api-key", "message": "bad"}}
    assert contract.validate_response("GET", "/api/v1/instances", 401, no_suggestion)
    capacity = {"error": {"code": "instance-operations/launch/insufficient-capacity",
                          "message": "none"}}
    assert contract.validate_response("POST", LAUNCH, 400, capacity) == []
    assert contract.validate_response("POST", LAUNCH, 404, capacity)
    assert "not documented" in " ".join(
        contract.validate_response("POST", LAUNCH, 409, capacity))


def test_rate_limit_and_server_errors_need_the_error_envelope(
        contract: OpenAPIContract) -> None:
    envelope = {"error": {"code": "global/too-many-requests", "message": "slow down"}}
    assert contract.validate_response("GET", "/api/v1/instances", 429, envelope) == []
    assert contract.validate_response("GET", "/api/v1/instances", 503, envelope) == []
    assert contract.validate_response("GET", "/api/v1/instances", 500, {"detail": "x"})
    assert contract.validate_response("GET", "/api/v1/instances", 200, {"data": []},
                                      content_type="text/html")


def test_non_strict_mode_allows_undeclared_fields() -> None:
    lenient = OpenAPIContract(strict=False)
    assert lenient.validate_request("POST", LAUNCH, _launch_body(quantity=1)) == []


# --------------------------------------------------------------------------- the fake


@pytest.fixture
def fake() -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, capacity={"gpu_1x_a10": ["us-east-1"]},
                    launch_interval_s=0) as server:
        server.add_ssh_key("laptop")
        yield server


def _call(fake: FakeLambda, method: str, path: str, body: Any = None,
          headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.request(method, fake.url + path, json=body,
                         headers=AUTH if headers is None else headers)


def test_every_endpoint_and_error_of_the_fake_conforms(fake: FakeLambda) -> None:
    """Drive each endpoint through its success and error answers; no violation allowed."""
    expectations = [
        ("GET", "/instance-types", None, 200),
        ("GET", "/ssh-keys", None, 200),
        ("POST", "/ssh-keys", {"name": "ci", "public_key": "ssh-ed25519 AAAA x"}, 200),
        ("POST", "/ssh-keys", {"name": "generated"}, 200),
        ("POST", "/ssh-keys", {"name": "ci", "public_key": "ssh-ed25519 AAAA x"}, 400),
        ("DELETE", "/ssh-keys/nope", None, 404),
        ("GET", "/file-systems", None, 200),
        ("POST", "/filesystems", {"name": "hf", "region": "us-west-1"}, 200),
        ("POST", "/filesystems", {"name": "hf", "region": "us-west-1"}, 400),
        ("POST", "/filesystems", {"name": "hf2", "region": "mars-1"}, 400),
        ("POST", "/instance-operations/launch", _launch_body(name="a"), 200),
        ("POST", "/instance-operations/launch", _launch_body(region_name="us-west-1"), 400),
        ("POST", "/instance-operations/launch", _launch_body(instance_type_name="gpu_x"), 404),
        ("POST", "/instance-operations/launch", _launch_body(ssh_key_names=["nobody"]), 404),
        ("POST", "/instance-operations/launch", _launch_body(file_system_names=["hf"]), 400),
        ("POST", "/instance-operations/launch", _launch_body(ssh_key_names=[]), 400),
        ("GET", "/instances", None, 200),
        ("GET", "/instances/unknown", None, 404),
        ("POST", "/instance-operations/terminate", {"instance_ids": ["unknown"]}, 404),
        ("GET", "/firewall-rules", None, 200),
        ("PUT", "/firewall-rules", {"data": [{"protocol": "tcp", "port_range": [80, 80],
                                              "source_network": "1.2.3.4",
                                              "description": "web"}]}, 200),
        ("PUT", "/firewall-rules", {"data": [{"protocol": "icmp", "port_range": [1, 1],
                                              "source_network": "0.0.0.0/0",
                                              "description": "bad"}]}, 400),
    ]
    for method, path, body, status in expectations:
        response = _call(fake, method, path, body)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"] == "application/json"
    [instance] = _call(fake, "GET", "/instances").json()["data"]
    assert _call(fake, "GET", f"/instances/{instance['id']}").status_code == 200
    assert _call(fake, "POST", "/instance-operations/terminate",
                 {"instance_ids": [instance["id"]]}).status_code == 200
    fake.quota_instances = 0
    assert _call(fake, "POST", "/instance-operations/launch", _launch_body()).status_code == 400
    fake.account_inactive = True
    assert _call(fake, "GET", "/instances").status_code == 403
    assert _call(fake, "GET", "/instances", headers={}).status_code == 401
    assert _call(fake, "GET", "/instances",
                 headers={"Authorization": "Bearer wrong"}).status_code == 401
    # only the request deliberately sent without credentials breaks the contract
    assert fake.violations == ["request listInstances: no Bearer or Basic Authorization header"]


def test_fake_rejects_what_the_published_schema_rejects(fake: FakeLambda) -> None:
    answer = _call(fake, "POST", "/instance-operations/launch", _launch_body(name="n" * 65))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "global/invalid-parameters"
    assert "too long" in answer.json()["error"]["message"]
    assert fake.instances == {}
    assert any("too long" in v for v in fake.violations)


def test_errors_have_lambda_codes(fake: FakeLambda) -> None:
    answer = _call(fake, "POST", "/instance-operations/launch",
                   _launch_body(region_name="us-west-1")).json()
    assert answer["error"]["code"] == "instance-operations/launch/insufficient-capacity"
    answer = _call(fake, "GET", "/instances", headers={}).json()
    assert answer["error"]["code"] == "global/invalid-api-key"


def test_fake_records_violations_of_requests(fake: FakeLambda) -> None:
    response = _call(fake, "POST", "/instance-operations/launch", _launch_body(quantity=1))
    assert response.status_code == 200  # Lambda tolerates quantity=1; the contract does not
    assert any("quantity" in v for v in fake.violations)


def test_fake_records_violations_of_its_own_responses(fake: FakeLambda,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    original = fake._instance_json

    def broken(instance: Any) -> dict[str, Any]:
        data = original(instance)
        del data["actions"]
        data["ip_address"] = "1.2.3.4"
        return data

    monkeypatch.setattr(fake, "_instance_json", broken)
    _call(fake, "POST", "/instance-operations/launch", _launch_body())
    _call(fake, "GET", "/instances")
    text = " ".join(fake.violations)
    assert "'actions' is a required property" in text and "ip_address" in text


def test_fake_faults(fake: FakeLambda) -> None:
    fake.fail_next("/instances", 2, status=429, retry_after=2)
    first = _call(fake, "GET", "/instances")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
    assert _call(fake, "GET", "/instances").status_code == 429
    assert _call(fake, "GET", "/instances").status_code == 200
    fake.fail_next("/ssh-keys", 1, status=500, method="POST")
    assert _call(fake, "GET", "/ssh-keys").status_code == 200
    assert fake.violations == []


def test_fake_runs_standalone(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.fake_lambda", "--port", "0", "--api-key", KEY,
         "--capacity", "gpu_1x_a10=us-east-1,us-west-1", "--ssh-key", "laptop",
         "--launch-interval", "0", "--ip", "127.0.0.2"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("FAKE_LAMBDA_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        types = httpx.get(url + "/instance-types", headers=AUTH).json()["data"]
        regions = [r["name"] for r in types["gpu_1x_a10"]["regions_with_capacity_available"]]
        assert regions == ["us-east-1", "us-west-1"]
        launched = httpx.post(url + "/instance-operations/launch", json=_launch_body(),
                              headers=AUTH)
        assert launched.status_code == 200
        [instance_id] = launched.json()["data"]["instance_ids"]
        instance = httpx.get(f"{url}/instances/{instance_id}", headers=AUTH).json()["data"]
        assert (instance["status"], instance["ip"]) == ("active", "127.0.0.2")
        base = url.removesuffix("/api/v1")
        httpx.post(base + "/_fake/status", json={"instance_id": instance_id,
                                                 "status": "unhealthy"})
        state = httpx.get(base + "/_fake/state").json()
        assert state["instances"][0]["status"] == "unhealthy"
        assert state["violations"] == []
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
