"""Deleting a deployment's file system through the fake Lambda API (checked against the
OpenAPI file): refused while an instance mounts it, retried, then gone; a missing one is no
error; the region pin's error offers the choices."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from intelligensi_deploy.cloud import provision
from intelligensi_deploy.cloud.file_systems import delete_file_system, describe
from intelligensi_deploy.cloud.lambda_api import LambdaClient
from intelligensi_deploy.errors import FluxdeployError
from tests.fakes.fake_lambda import FakeLambda, ManualClock

KEY = "secret_fs-test_0123456789abcdef0123"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeLambda]:
    with FakeLambda(api_key=KEY, clock=clock, capacity={"gpu_1x_a10": ["us-east-1"]}) as srv:
        srv.add_ssh_key("laptop")
        yield srv
        assert srv.violations == []


@pytest.fixture
def client(fake: FakeLambda, clock: ManualClock) -> Iterator[LambdaClient]:
    with LambdaClient(KEY, fake.url, sleep=clock.sleep, clock=clock,
                      rng=random.Random(7)) as lambda_client:
        yield lambda_client


def _launch(client: LambdaClient) -> str:
    launched = provision.launch_first_available(
        client, "gpu_1x_a10", ["us-east-1"], "laptop", name="fluxdeploy-web",
        file_system="fluxdeploy-web", on_launched=lambda *_: None)
    return launched.instance_id


def test_it_waits_while_an_instance_mounts_it_then_deletes(client: LambdaClient,
                                                          fake: FakeLambda) -> None:
    instance_id = _launch(client)
    assert describe(client.file_systems()[0]) == \
        "fluxdeploy-web in us-east-1, 0.0 GB used, mounted"
    waits: list[str] = []
    with pytest.raises(FluxdeployError, match="still refuses") as caught:
        delete_file_system(client, "fluxdeploy-web", attempts=3, on_wait=waits.append)
    assert len(waits) == 2 and "--delete-file-system" in (caught.value.fix or "")
    client.terminate([instance_id])
    gone = delete_file_system(client, "fluxdeploy-web", on_wait=waits.append)
    assert gone is not None and gone.region == "us-east-1"
    assert fake.file_systems == {}
    assert delete_file_system(client, "fluxdeploy-web") is None  # already gone: no error


def test_no_capacity_in_the_pinned_region_offers_wait_or_a_new_file_system(
        client: LambdaClient, fake: FakeLambda) -> None:
    client.create_file_system("fluxdeploy-web", "us-east-1")
    fake.capacity["gpu_1x_a10"] = ["us-west-1"]
    with pytest.raises(provision.NoCapacity) as caught:
        provision.launch_first_available(client, "gpu_1x_a10", [], "laptop",
                                         name="fluxdeploy-web", file_system="fluxdeploy-web",
                                         on_launched=lambda *_: None)
    assert "pins the launch to us-east-1" in caught.value.message
    assert "--wait" in (caught.value.fix or "") and "file_system" in (caught.value.fix or "")
