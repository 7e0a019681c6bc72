"""LambdaClient against the fake Lambda API over real HTTP: results, retries, errors, spacing."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from intelligensi_deploy.cloud.lambda_api import (
    LAUNCH_INTERVAL_S,
    LambdaClient,
    backoff_delay,
    retry_after_seconds,
)
from intelligensi_deploy.cloud.lambda_errors import (
    AccountInactive,
    FileSystemInWrongRegion,
    InsufficientCapacity,
    InvalidAPIKey,
    InvalidParameters,
    LambdaAPIError,
    LambdaUnavailable,
    ObjectNotFound,
    QuotaExceeded,
    error_from_response,
)
from intelligensi_deploy.cloud.lambda_types import FirewallRule, InstanceType
from intelligensi_deploy.errors import FluxdeployError
from tests.fakes.fake_lambda import FakeLambda, ManualClock
from tests.fixtures.ports import free_port

KEY = "secret_lambda_test_key_do_not_leak_42"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, clock=clock,
                    capacity={"gpu_1x_a10": ["us-east-1", "us-west-1"],
                              "gpu_1x_a100": ["us-west-2"]}) as server:
        server.add_ssh_key("laptop")
        yield server
        assert server.violations == []


@pytest.fixture
def client(fake: FakeLambda, clock: ManualClock) -> Iterator[LambdaClient]:
    with LambdaClient(KEY, fake.url, sleep=clock.sleep, clock=clock,
                      rng=random.Random(7)) as lambda_client:
        yield lambda_client


# --------------------------------------------------------------------------- results


def test_instance_types_are_typed_and_carry_capacity(client: LambdaClient,
                                                     fake: FakeLambda) -> None:
    types = {t.name: t for t in client.instance_types()}
    a10 = types["gpu_1x_a10"]
    assert isinstance(a10, InstanceType)
    assert a10.regions_with_capacity_available == ("us-east-1", "us-west-1")
    assert a10.gpu_description == "A10 (24 GB PCIe)"
    assert a10.price_cents_per_hour == fake.types["gpu_1x_a10"].price_cents
    assert a10.specs.gpus == 1
    assert types["gpu_1x_h100_sxm5"].regions_with_capacity_available == ()


def test_requests_use_bearer_auth(client: LambdaClient, fake: FakeLambda) -> None:
    client.ssh_keys()
    assert fake.calls("GET", "/ssh-keys")[0].authorized


def test_launch_sends_the_documented_body(client: LambdaClient, fake: FakeLambda) -> None:
    rs1 = client.create_firewall_ruleset("fluxdeploy-flux-dev", "us-east-1", []).id
    ids = client.launch("us-east-1", "gpu_1x_a10", "laptop", name="flux-dev",
                        image={"family": "lambda-stack-22-04"}, user_data="#cloud-config\n",
                        tags={"fluxdeploy": "flux-dev"}, firewall_rulesets=[rs1])
    assert len(ids) == 1 and ids[0] in fake.instances
    body = fake.calls("POST", "/instance-operations/launch")[0].body
    assert body == {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                    "ssh_key_names": ["laptop"], "name": "flux-dev",
                    "image": {"family": "lambda-stack-22-04"}, "user_data": "#cloud-config\n",
                    "tags": [{"key": "fluxdeploy", "value": "flux-dev"}],
                    "firewall_rulesets": [{"id": rs1}]}
    assert "quantity" not in body
    assert client.get_instance(ids[0]).firewall_rulesets == (rs1,)
    assert client.get_firewall_ruleset(rs1).instance_ids == (ids[0],)


def test_instances_list_get_terminate(client: LambdaClient, fake: FakeLambda) -> None:
    [instance_id] = client.launch("us-east-1", "gpu_1x_a10", "laptop", name="one")
    listed = client.list_instances()
    assert [i.id for i in listed] == [instance_id]
    instance = client.get_instance(instance_id)
    assert (instance.name, instance.region, instance.instance_type) == (
        "one", "us-east-1", "gpu_1x_a10")
    terminated = client.terminate([instance_id])
    assert [i.id for i in terminated] == [instance_id]
    assert terminated[0].status == "terminated"
    assert client.list_instances() == []


def test_booting_instance_has_no_ip_then_active_with_ip(fake: FakeLambda, clock: ManualClock,
                                                        client: LambdaClient) -> None:
    fake.boot_seconds = 60
    fake.instance_ip = "127.0.0.2"
    [instance_id] = client.launch("us-east-1", "gpu_1x_a10", "laptop")
    booting = client.get_instance(instance_id)
    assert (booting.status, booting.ip) == ("booting", None)
    clock.now += 61
    active = client.get_instance(instance_id)
    assert (active.status, active.ip) == ("active", "127.0.0.2")


def test_ssh_keys_add_list_delete_by_id(client: LambdaClient) -> None:
    added = client.add_ssh_key("ci", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ci@host\n")
    assert added.public_key == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB ci@host"
    assert {k.name for k in client.ssh_keys()} == {"laptop", "ci"}
    client.delete_ssh_key(added.id)
    assert {k.name for k in client.ssh_keys()} == {"laptop"}


def test_file_systems_create_and_list(client: LambdaClient) -> None:
    created = client.create_file_system("hf-cache", "us-west-1")
    assert (created.name, created.region, created.is_in_use) == ("hf-cache", "us-west-1", False)
    assert [fs.id for fs in client.file_systems()] == [created.id]


def test_firewall_rules_round_trip(client: LambdaClient, fake: FakeLambda) -> None:
    rules = client.firewall_rules()
    new = FirewallRule("tcp", (8000, 8000), "203.0.113.7/32", "fluxdeploy test")
    written = client.set_firewall_rules([*rules, new])
    assert written[-1] == new
    assert fake.calls("PUT", "/firewall-rules")[0].body["data"][-1] == {
        "protocol": "tcp", "port_range": [8000, 8000], "source_network": "203.0.113.7/32",
        "description": "fluxdeploy test"}
    assert client.firewall_rules() == written


# --------------------------------------------------------------------------- retries


def test_429_then_success_honours_retry_after(client: LambdaClient, fake: FakeLambda,
                                              clock: ManualClock) -> None:
    fake.fail_next("/instance-types", 2, status=429, retry_after=7)
    assert client.instance_types()
    assert clock.sleeps == [7.0, 7.0]
    assert [r.status for r in fake.calls("GET", "/instance-types")] == [429, 429, 200]


def test_500s_then_success_backs_off_exponentially(client: LambdaClient, fake: FakeLambda,
                                                   clock: ManualClock) -> None:
    fake.fail_next("/instances", 3, status=500)
    assert client.list_instances() == []
    assert len(clock.sleeps) == 3
    for attempt, slept in enumerate(clock.sleeps):
        assert 2 ** attempt / 2 <= slept <= 2 ** attempt
    assert [r.status for r in fake.calls("GET", "/instances")] == [500, 500, 500, 200]


def test_500s_forever_give_a_clear_error(fake: FakeLambda, clock: ManualClock) -> None:
    fake.fail_next("/ssh-keys", 100, status=503)
    client = LambdaClient(KEY, fake.url, sleep=clock.sleep, clock=clock, max_retries=3)
    with pytest.raises(LambdaUnavailable) as caught:
        client.ssh_keys()
    assert len(fake.calls("GET", "/ssh-keys")) == 4
    assert len(clock.sleeps) == 3
    text = str(caught.value)
    assert "Listing SSH keys" in text and "4 attempts" in text and "HTTP 503" in text
    assert "Fix:" in text


def test_connection_refused_is_retried_then_reported(clock: ManualClock) -> None:
    port = free_port()  # nothing listens there
    client = LambdaClient(KEY, f"http://127.0.0.1:{port}/api/v1", sleep=clock.sleep,
                          clock=clock, max_retries=2)
    with pytest.raises(LambdaUnavailable, match="ConnectError"):
        client.list_instances()
    assert len(clock.sleeps) == 2


def test_launch_is_not_repeated_after_a_5xx(client: LambdaClient, fake: FakeLambda) -> None:
    fake.fail_next("/instance-operations/launch", 1, status=500)
    with pytest.raises(LambdaUnavailable, match="may or may not"):
        client.launch("us-east-1", "gpu_1x_a10", "laptop")
    assert len(fake.calls("POST", "/instance-operations/launch")) == 1


def test_launch_is_retried_after_429(client: LambdaClient, fake: FakeLambda,
                                     clock: ManualClock) -> None:
    fake.fail_next("/instance-operations/launch", 1, status=429, retry_after=3)
    assert client.launch("us-east-1", "gpu_1x_a10", "laptop")
    statuses = [r.status for r in fake.calls("POST", "/instance-operations/launch")]
    assert statuses == [429, 200]
    assert sum(clock.sleeps) >= LAUNCH_INTERVAL_S  # the retry is itself spaced


def test_launches_are_spaced_twelve_seconds(client: LambdaClient, fake: FakeLambda,
                                            clock: ManualClock) -> None:
    client.launch("us-east-1", "gpu_1x_a10", "laptop")
    assert clock.sleeps == []
    clock.now += 5
    client.launch("us-east-1", "gpu_1x_a10", "laptop")
    assert clock.sleeps == [pytest.approx(7.0)]
    clock.now += 30
    client.launch("us-west-1", "gpu_1x_a10", "laptop")
    assert clock.sleeps == [pytest.approx(7.0)]
    assert all(r.status == 200 for r in fake.calls("POST", "/instance-operations/launch"))


def test_unspaced_launches_are_rate_limited_by_the_fake(fake: FakeLambda) -> None:
    body = {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
            "ssh_key_names": ["laptop"]}
    headers = {"Authorization": f"Bearer {KEY}"}
    first = httpx.post(fake.url + "/instance-operations/launch", json=body, headers=headers)
    second = httpx.post(fake.url + "/instance-operations/launch", json=body, headers=headers)
    assert first.status_code == 200
    assert second.status_code == 429 and float(second.headers["Retry-After"]) > 0


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    waited = retry_after_seconds(format_datetime(when, usegmt=True))
    assert waited is not None and 25 <= waited <= 31


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(1)
    assert 0.5 <= backoff_delay(0, rng) <= 1
    assert 4 <= backoff_delay(3, rng) <= 8
    assert backoff_delay(20, rng) <= 30


def test_huge_retry_after_is_reported_not_slept(client: LambdaClient, fake: FakeLambda,
                                                clock: ManualClock) -> None:
    fake.fail_next("/instances", 1, status=429, retry_after=3600)
    with pytest.raises(LambdaUnavailable, match="3600"):
        client.list_instances()
    assert clock.sleeps == []


def test_non_json_gateway_error_is_retried_and_reported(clock: ManualClock) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>bad</html>"))
    client = LambdaClient(KEY, transport=transport, sleep=clock.sleep, clock=clock,
                          max_retries=1)
    with pytest.raises(LambdaUnavailable, match="HTTP 502"):
        client.instance_types()


# --------------------------------------------------------------------------- errors


def test_invalid_key_is_typed_actionable_and_not_retried(fake: FakeLambda,
                                                         clock: ManualClock) -> None:
    wrong = "secret_wrong_key_0000"
    client = LambdaClient(wrong, fake.url, sleep=clock.sleep, clock=clock)
    with pytest.raises(InvalidAPIKey) as caught:
        client.instance_types()
    error = caught.value
    assert error.code == "global/invalid-api-key" and error.status == 401
    assert "https://cloud.lambda.ai/api-keys" in str(error)
    assert "LAMBDA_API_KEY" in str(error)
    assert wrong not in str(error) and wrong not in repr(error)
    assert len(fake.requests) == 1 and clock.sleeps == []


def test_api_key_never_in_reprs_errors_or_logs(fake: FakeLambda, clock: ManualClock,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = LambdaClient(KEY, fake.url, sleep=clock.sleep, clock=clock, max_retries=1)
    fake.fail_next("/instances", 5, status=500)
    texts = [repr(client), str(client.__dict__.get("base_url"))]
    client.instance_types()
    for call in (client.list_instances, lambda: client.get_instance("nope")):
        with pytest.raises(LambdaAPIError) as caught:
            call()
        texts += [str(caught.value), repr(caught.value), repr(caught.value.__dict__)]
    texts.append(caplog.text)
    assert caplog.text  # httpx did log something
    assert not [t for t in texts if KEY in t]


def test_unknown_instance_is_object_not_found(client: LambdaClient) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        client.get_instance("0123456789abcdef")
    assert "0123456789abcdef" in str(caught.value)


def test_inactive_account(client: LambdaClient, fake: FakeLambda) -> None:
    fake.account_inactive = True
    with pytest.raises(AccountInactive, match="payment method"):
        client.list_instances()


def test_quota_exceeded_on_launch(client: LambdaClient, fake: FakeLambda) -> None:
    fake.quota_instances = 0
    with pytest.raises(QuotaExceeded, match="quota"):
        client.launch("us-east-1", "gpu_1x_a10", "laptop")


def test_insufficient_capacity_on_launch(client: LambdaClient, fake: FakeLambda) -> None:
    with pytest.raises(InsufficientCapacity) as caught:
        client.launch("europe-central-1", "gpu_1x_a10", "laptop")
    assert "europe-central-1" in str(caught.value) and "fluxdeploy capacity" in str(caught.value)


def test_file_system_in_wrong_region(client: LambdaClient) -> None:
    client.create_file_system("hf-cache", "us-west-1")
    with pytest.raises(FileSystemInWrongRegion):
        client.launch("us-east-1", "gpu_1x_a10", "laptop", file_system_names=["hf-cache"])


def test_invalid_parameters(client: LambdaClient) -> None:
    with pytest.raises(InvalidParameters):
        client.add_ssh_key("bad", "not a key")


@pytest.mark.parametrize(("code", "status", "expected"), [
    ("global/invalid-api-key", 401, InvalidAPIKey),
    ("global/invalid-parameters", 400, InvalidParameters),
    ("instance-operations/launch/insufficient-capacity", 400, InsufficientCapacity),
    ("global/quota-exceeded", 400, QuotaExceeded),
    ("global/object-does-not-exist", 404, ObjectNotFound),
    ("instance-operations/launch/file-system-in-wrong-region", 400, FileSystemInWrongRegion),
    ("global/account-inactive", 403, AccountInactive),
])
def test_errors_are_mapped_by_code_only(code: str, status: int,
                                        expected: type[LambdaAPIError]) -> None:
    for message in ("The usual text.", "Completely different wording."):
        error = error_from_response(status, {"error": {"code": code, "message": message}},
                                    "Doing X")
        assert type(error) is expected and error.code == code
        assert str(error).startswith("Doing X: ") and error.fix
        assert isinstance(error, FluxdeployError)


def test_unknown_code_gives_the_generic_error_with_the_suggestion() -> None:
    error = error_from_response(400, {"error": {"code": "provider/internal-unavailable",
                                                "message": "Provider unavailable",
                                                "suggestion": "Try again shortly"}}, "Doing X")
    assert type(error) is LambdaAPIError and error.code == "provider/internal-unavailable"
    assert "Try again shortly" in str(error)


def test_secret_echoed_by_the_server_is_scrubbed() -> None:
    error = error_from_response(400, {"error": {"code": "global/invalid-parameters",
                                                "message": f"bad key {KEY}"}}, "X", secret=KEY)
    assert KEY not in str(error)


# --------------------------------------------------------------------------- construction


def test_from_env_without_key_names_the_variable() -> None:
    with pytest.raises(FluxdeployError) as caught:
        LambdaClient.from_env({})
    assert "LAMBDA_API_KEY" in str(caught.value)
    assert "https://cloud.lambda.ai/api-keys" in str(caught.value)


def test_from_env_reads_url_and_key(fake: FakeLambda) -> None:
    client = LambdaClient.from_env({"LAMBDA_API_KEY": KEY, "LAMBDA_API_URL": fake.url})
    assert client.base_url == fake.url
    assert client.ssh_keys()[0].name == "laptop"


def test_from_env_default_url() -> None:
    client = LambdaClient.from_env({"LAMBDA_API_KEY": "k"})
    assert client.base_url == "https://cloud.lambda.ai/api/v1"


def test_key_with_whitespace_is_refused_without_echoing_it() -> None:
    with pytest.raises(InvalidAPIKey) as caught:
        LambdaClient("secret_abc\ndef")
    assert "secret_abc" not in str(caught.value)
