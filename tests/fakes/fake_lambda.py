"""A fake Lambda Cloud API: a real HTTP server on 127.0.0.1 with in-memory state.

It follows ``lambda-cloud-openapi.json`` (paths, bodies, status codes, error codes), validates
every request it receives and every response it sends against that file and records any
violation in ``violations``. Knobs for tests: the accepted API key, the instance types and
where they have capacity, ``boot_seconds`` and the ``instance_ip`` handed out when an instance
turns active, fault injection (``fail_next``, ``refuse_launch_in``, ``set_status``), Lambda's
launch rate limit, and a request log.

In a test::

    with FakeLambda(capacity={"gpu_1x_a10": ["us-east-1"]}) as fake:
        client = LambdaClient(fake.api_key, fake.url)

Standalone (for end-to-end tests that run the CLI as a subprocess)::

    python -m tests.fakes.fake_lambda --port 8765 --capacity gpu_1x_a10=us-east-1 \\
        --boot-seconds 2 --ip 127.0.0.2

which prints ``FAKE_LAMBDA_URL=http://127.0.0.1:8765/api/v1`` once it listens. Test-only
control endpoints live under ``/_fake/`` (see ``_admin``).
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.fakes.fake_rulesets import FakeRulesets
from tests.fakes.openapi_contract import NO_BODY, OpenAPIContract, shared_contract

if TYPE_CHECKING:
    from typing_extensions import Self

API_PREFIX = "/api/v1"
LAUNCH_INTERVAL_S = 12.0
DEFAULT_API_KEY = "secret_fake-lambda-key_0123456789"

REGIONS: dict[str, str] = {
    "us-east-1": "Virginia, USA", "us-east-2": "Washington DC, USA",
    "us-west-1": "California, USA", "us-west-2": "Arizona, USA", "us-west-3": "Utah, USA",
    "us-south-1": "Texas, USA", "us-midwest-1": "Illinois, USA",
    "europe-central-1": "Germany", "asia-northeast-1": "Tokyo, Japan",
    "asia-south-1": "India", "me-west-1": "Israel",
}


@dataclass(frozen=True)
class FakeType:
    name: str
    gpu: str
    gpus: int
    price_cents: int
    vcpus: int
    memory_gib: int
    storage_gib: int

    def to_api(self) -> dict[str, Any]:
        prefix = f"{self.gpus}x " if self.gpus > 1 else "1x "
        return {"name": self.name, "description": prefix + self.gpu,
                "gpu_description": self.gpu, "price_cents_per_hour": self.price_cents,
                "specs": {"vcpus": self.vcpus, "memory_gib": self.memory_gib,
                          "storage_gib": self.storage_gib, "gpus": self.gpus}}


DEFAULT_TYPES: tuple[FakeType, ...] = (
    FakeType("gpu_1x_a10", "A10 (24 GB PCIe)", 1, 75, 30, 200, 1400),
    FakeType("gpu_1x_a6000", "RTX A6000 (48 GB)", 1, 80, 14, 100, 512),
    FakeType("gpu_1x_a100", "A100 (40 GB PCIe)", 1, 129, 30, 200, 512),
    FakeType("gpu_1x_a100_sxm4", "A100 (40 GB SXM4)", 1, 129, 30, 200, 512),
    FakeType("gpu_2x_a100", "A100 (40 GB PCIe)", 2, 258, 60, 400, 1024),
    FakeType("gpu_8x_a100_80gb_sxm4", "A100 (80 GB SXM4)", 8, 1432, 240, 1800, 19500),
    FakeType("gpu_1x_h100_pcie", "H100 (80 GB PCIe)", 1, 249, 26, 200, 1000),
    FakeType("gpu_1x_h100_sxm5", "H100 (80 GB SXM5)", 1, 329, 26, 225, 2750),
    FakeType("gpu_8x_h100_sxm5", "H100 (80 GB SXM5)", 8, 2392, 208, 1800, 22000),
    FakeType("gpu_1x_gh200", "GH200 (96 GB)", 1, 149, 64, 432, 4000),
)




@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any
    status: int
    authorized: bool


@dataclass
class FakeInstance:
    id: str
    name: str | None
    region: str
    type: FakeType
    ssh_key_names: list[str]
    file_system_names: list[str]
    tags: list[dict[str, str]]
    launched_at: float
    status: str = "booting"
    forced_status: str | None = None
    ip: str | None = None
    firewall_rulesets: list[str] = field(default_factory=list)  # ruleset ids, from the launch


class ApiError(Exception):
    """An error answer: HTTP status, Lambda code, message and optional suggestion."""

    def __init__(self, status: int, code: str, message: str, suggestion: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.suggestion, self.retry_after = suggestion, retry_after

    def body(self) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message}
        if self.suggestion is not None:
            error["suggestion"] = self.suggestion
        return {"error": error}


def invalid(message: str) -> ApiError:
    return ApiError(400, "global/invalid-parameters", message)


def not_found_in_launch(what: str) -> ApiError:
    return ApiError(404, "global/object-does-not-exist", f"{what} does not exist.",
                    "Check the name and try again.")


@dataclass
class Fault:
    method: str | None
    path: str
    status: int
    remaining: int
    retry_after: float | None
    after_processing: bool = False  # carry the request out, then answer the fault (lost reply)

    def error(self) -> ApiError:
        if self.status == 429:
            return ApiError(429, "global/too-many-requests", "Too many requests.",
                            "Slow down and try again.", retry_after=self.retry_after)
        return ApiError(self.status, "global/internal-error", "An internal server error occurred.",
                        "Try again later. Contact Support if the problem persists.",
                        retry_after=self.retry_after)


class ManualClock:
    """A clock for tests: ``sleep`` advances ``now`` instead of waiting."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeLambda:
    """In-memory Lambda Cloud behind a real HTTP server on 127.0.0.1."""

    def __init__(self, *, api_key: str = DEFAULT_API_KEY,
                 capacity: Mapping[str, Iterable[str]] | None = None,
                 instance_types: Iterable[FakeType] = DEFAULT_TYPES,
                 boot_seconds: float = 0.0, instance_ip: str | Sequence[str] = "127.0.0.1",
                 launch_interval_s: float = LAUNCH_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic,
                 port: int = 0, contract: OpenAPIContract | None = None,
                 validate: bool = True, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.types: dict[str, FakeType] = {t.name: t for t in instance_types}
        self.capacity: dict[str, list[str]] = {
            name: list(regions) for name, regions in (capacity or {}).items()}
        self.boot_seconds = boot_seconds
        self.instance_ip = instance_ip
        self.launch_interval_s = launch_interval_s
        self.clock = clock
        self.account_inactive = False
        self.quota_instances: int | None = None
        self.instances: dict[str, FakeInstance] = {}
        self.ssh_keys: dict[str, dict[str, str]] = {}
        self.file_systems: dict[str, dict[str, Any]] = {}
        self.firewall_rules: list[dict[str, Any]] = [
            {"protocol": "tcp", "port_range": [22, 22], "source_network": "0.0.0.0/0",
             "description": "Allow SSH from anywhere"},
            {"protocol": "icmp", "source_network": "0.0.0.0/0", "description": "Allow ICMP"},
        ]
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.refused_launch_regions: set[str] = set()
        self.capacity_slots: dict[tuple[str, str], int] = {}
        self._last_launch_at: float | None = None
        self._lock = threading.RLock()
        self._contract = (contract or shared_contract()) if validate else None
        self._port = port
        self.host = host  # where it listens (a container's watchdog needs a bridge address)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.rulesets = FakeRulesets(error=ApiError, check_rule=_checked_rule,
                                     region=self._region, regions=REGIONS,
                                     attached_to=self._attached_to)
        self._routes = self._build_routes()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((self.host, self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="fake-lambda", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeLambda is not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for the client (LAMBDA_API_URL)."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    # ----------------------------------------------------------------- knobs

    def set_capacity(self, instance_type: str, regions: Iterable[str]) -> None:
        with self._lock:
            self.capacity[instance_type] = list(regions)

    def fail_next(self, path: str, count: int = 1, *, status: int = 500,
                  retry_after: float | None = None, method: str | None = None,
                  after_processing: bool = False) -> None:
        """The next ``count`` requests to ``path`` (e.g. ``/instance-types``) get ``status``.

        With ``after_processing`` the request is carried out first and only its answer is
        replaced (a launch whose reply is lost).
        """
        with self._lock:
            self.faults.append(Fault(method, _api_path(path), status, count, retry_after,
                                     after_processing))

    def refuse_launch_in(self, *regions: str) -> None:
        """Launches there answer insufficient-capacity even if capacity is listed."""
        with self._lock:
            self.refused_launch_regions.update(regions)

    def limit_capacity(self, instance_type: str, region: str, slots: int) -> None:
        """Only ``slots`` more instances of the type fit in the region (then it is full and
        no longer listed): partial capacity, as a multi-node launch can meet it."""
        with self._lock:
            self.capacity_slots[(instance_type, region)] = slots

    def set_status(self, instance_id: str, status: str) -> None:
        """Force an instance's status (e.g. ``unhealthy``, ``preempted``)."""
        with self._lock:
            self.instances[instance_id].forced_status = status

    def add_ssh_key(self, name: str, public_key: str = "ssh-ed25519 AAAAfake test") -> str:
        with self._lock:
            key_id = uuid.uuid4().hex
            self.ssh_keys[key_id] = {"id": key_id, "name": name, "public_key": public_key}
            return key_id

    def calls(self, method: str | None = None, path: str | None = None
              ) -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and path."""
        wanted = _api_path(path) if path else None
        return [r for r in self.requests
                if (method is None or r.method == method) and (wanted is None or r.path == wanted)]

    # ----------------------------------------------------------------- HTTP entry

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str], raw_body: bytes
               ) -> tuple[int, dict[str, str], Any]:
        """One request -> (status, extra headers, JSON body); validated both ways."""
        path = raw_path.split("?", 1)[0]
        if path.startswith("/_fake/"):
            return self._admin(method, path, raw_body)
        body: Any = NO_BODY
        status: int = 400
        extra: dict[str, str] = {}
        payload: Any = None
        try:
            body = json.loads(raw_body) if raw_body else NO_BODY
        except ValueError:
            status, extra, payload = 400, {}, invalid("Body is not valid JSON.").body()
        lowered = {name.lower(): value for name, value in headers.items()}
        authorized = self._authorized(lowered.get("authorization", ""))
        if payload is None:
            if self._contract is not None:
                self._record(self._contract.validate_request(method, path, body,
                                                             headers=dict(headers)))
            schema_problems = self._schema_problems(method, path, body)
            if schema_problems and authorized:
                status, extra, payload = 400, {}, invalid(schema_problems[0]).body()
            else:
                status, extra, payload = self._dispatch(method, path, body, authorized)
        if self._contract is not None and path.startswith(API_PREFIX):
            self._record(self._contract.validate_response(method, path, status, payload))
        with self._lock:
            self.requests.append(RecordedRequest(method, path, None if body is NO_BODY else body,
                                                 status, authorized))
        return status, extra, payload

    def _schema_problems(self, method: str, path: str, body: Any) -> list[str]:
        """What Lambda itself would reject (the schema as published, not the strict one)."""
        if self._contract is None or not path.startswith(API_PREFIX):
            return []
        if shared_contract(strict=False).match(method, path) is None:
            return []
        return shared_contract(strict=False).validate_request(method, path, body)

    def _record(self, problems: list[str]) -> None:
        if problems:
            with self._lock:
                self.violations.extend(problems)

    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer":
            return value == self.api_key
        if scheme == "Basic":
            try:
                decoded = base64.b64decode(value).decode()
            except ValueError:
                decoded = value
            return decoded.rstrip(":") == self.api_key or value == self.api_key
        return False

    def _dispatch(self, method: str, path: str, body: Any, authorized: bool
                  ) -> tuple[int, dict[str, str], Any]:
        try:
            with self._lock:
                fault = self._take_fault(method, path)
                if fault is not None and not fault.after_processing:
                    raise fault.error()
                if not authorized:
                    raise ApiError(401, "global/invalid-api-key",
                                   "API key was invalid, expired, or deleted.",
                                   "Check your API key or create a new one, then try again.")
                if self.account_inactive:
                    raise ApiError(403, "global/account-inactive", "Your account is inactive.",
                                   "Make sure you have verified your email address and have a "
                                   "valid payment method. Contact Support if problems continue.")
                operation = shared_contract(strict=False).match(method, path)
                handler = self._routes.get(operation.operation_id) if operation else None
                if operation is None or handler is None:
                    raise ApiError(404, "global/not-found",
                                   "The requested resource was not found.")
                data = handler(body, *operation.variables.values())
                if fault is not None:
                    raise fault.error()
                return 200, {}, {"data": data}
        except ApiError as error:
            extra: dict[str, str] = {}
            if error.retry_after is not None:
                extra["Retry-After"] = f"{error.retry_after:g}"
            return error.status, extra, error.body()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.path == path and fault.method in (None, method):
                fault.remaining -= 1
                return fault
        return None

    # ----------------------------------------------------------------- endpoints

    def _build_routes(self) -> dict[str, Callable[..., Any]]:
        """The handler of each operation the fake serves, by its OpenAPI ``operationId``
        (the contract finds the operation of a path, and its path parameters)."""
        return {
            "listInstanceTypes": self._instance_types,
            "launchInstance": self._launch,
            "terminateInstance": self._terminate,
            "listInstances": self._list_instances,
            "getInstance": self._get_instance,
            "listSSHKeys": self._list_ssh_keys,
            "addSSHKey": self._add_ssh_key,
            "deleteSSHKey": self._delete_ssh_key,
            "listFilesystems": self._list_file_systems,
            "createFilesystem": self._create_file_system,
            "filesystemDelete": self._delete_file_system,
            "firewallRulesList": self._get_firewall_rules,
            "firewallRulesSet": self._put_firewall_rules,
            **self.rulesets.routes(),
        }

    def _region(self, name: str) -> dict[str, str]:
        return {"name": name, "description": REGIONS.get(name, name)}

    def _instance_types(self, _body: Any) -> dict[str, Any]:
        return {t.name: {"instance_type": t.to_api(),
                         "regions_with_capacity_available": [
                             self._region(r) for r in self.capacity.get(t.name, [])
                             if self.capacity_slots.get((t.name, r), 1) > 0]}
                for t in self.types.values()}

    def _launch(self, body: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        if (self._last_launch_at is not None
                and now - self._last_launch_at < self.launch_interval_s):
            raise ApiError(429, "global/too-many-requests",
                           "Launch requests are limited to one per 12 seconds.",
                           "Wait and try again.",
                           retry_after=self.launch_interval_s - (now - self._last_launch_at))
        self._last_launch_at = now
        _require_fields(body, ("region_name", "instance_type_name", "ssh_key_names"))
        region, type_name = body["region_name"], body["instance_type_name"]
        keys = body["ssh_key_names"]
        if not isinstance(keys, list) or len(keys) != 1:
            raise invalid("Exactly one SSH key must be specified.")
        if "quantity" in body and body["quantity"] != 1:
            raise invalid("quantity must be 1.")
        if type_name not in self.types:
            raise not_found_in_launch(f"Instance type {type_name!r}")
        if region not in REGIONS:
            raise not_found_in_launch(f"Region {region!r}")
        if keys[0] not in {k["name"] for k in self.ssh_keys.values()}:
            raise not_found_in_launch(f"SSH key {keys[0]!r}")
        fs_names = body.get("file_system_names") or []
        for fs_name in fs_names:
            fs = next((f for f in self.file_systems.values() if f["name"] == fs_name), None)
            if fs is None:
                raise not_found_in_launch(f"File system {fs_name!r}")
            if fs["region"]["name"] != region:
                raise ApiError(400, "instance-operations/launch/file-system-in-wrong-region",
                               f"File system {fs_name!r} is in {fs['region']['name']}, "
                               f"not {region}.")
        ruleset_ids = self.rulesets.check_launch(body.get("firewall_rulesets"), region)
        slots = self.capacity_slots.get((type_name, region))
        if (region in self.refused_launch_regions or slots == 0
                or region not in self.capacity.get(type_name, [])):
            raise ApiError(400, "instance-operations/launch/insufficient-capacity",
                           "Not enough capacity to fulfill launch request.",
                           "Choose another region or instance type.")
        live = [i for i in self.instances.values() if self._status(i) != "terminated"]
        if self.quota_instances is not None and len(live) >= self.quota_instances:
            raise ApiError(400, "global/quota-exceeded", "Quota exceeded.",
                           "Contact Support to increase your quota.")
        if slots is not None:
            self.capacity_slots[(type_name, region)] = slots - 1
        instance = FakeInstance(uuid.uuid4().hex, body.get("name"), region,
                                self.types[type_name], list(keys), list(fs_names),
                                list(body.get("tags") or []), launched_at=now,
                                firewall_rulesets=ruleset_ids)
        self.instances[instance.id] = instance
        for fs in self.file_systems.values():
            if fs["name"] in fs_names:
                fs["is_in_use"] = True
        return {"instance_ids": [instance.id]}

    def _status(self, instance: FakeInstance) -> str:
        if instance.forced_status is not None:
            return instance.forced_status
        if instance.status == "booting" and (
                self.clock() - instance.launched_at >= self.boot_seconds):
            instance.status = "active"
            instance.ip = self._free_ip()
        return instance.status

    def _free_ip(self) -> str:
        """`instance_ip`, or with a list of them (several "VMs"), the first one that no live
        instance holds (in launch order; a terminated instance's address is free again)."""
        if isinstance(self.instance_ip, str):
            return self.instance_ip
        held = {i.ip for i in self.instances.values()
                if i.ip and i.status != "terminated" and i.forced_status != "terminated"}
        free = [ip for ip in self.instance_ip if ip not in held]
        if not free:
            raise ApiError(400, "instance-operations/launch/insufficient-capacity",
                           "Not enough capacity to fulfill launch request.")
        return free[0]

    def _instance_json(self, instance: FakeInstance) -> dict[str, Any]:
        status = self._status(instance)
        running = status in ("active", "unhealthy")
        data: dict[str, Any] = {
            "id": instance.id, "status": status,
            "ssh_key_names": instance.ssh_key_names,
            "file_system_names": instance.file_system_names,
            "region": self._region(instance.region),
            "instance_type": instance.type.to_api(),
            "actions": {action: ({"available": True} if running else
                                 {"available": False, "reason_code": "vm-has-not-launched",
                                  "reason_description": "The instance is not running."})
                        for action in ("migrate", "rebuild", "restart", "cold_reboot",
                                       "terminate")},
            "tags": instance.tags,
            "firewall_rulesets": [{"id": rid} for rid in instance.firewall_rulesets],
        }
        if instance.name is not None:
            data["name"] = instance.name
        if instance.ip is not None and status != "terminated":
            data["ip"] = instance.ip
            data["private_ip"] = "10.0.0.2"
            data["hostname"] = instance.ip
        return data

    def _attached_to(self, ruleset_id: str) -> list[str]:
        """The live instances launched with the ruleset (a terminated one lets it go)."""
        return [i.id for i in self.instances.values()
                if ruleset_id in i.firewall_rulesets and self._status(i) != "terminated"]

    def _terminate(self, body: dict[str, Any]) -> dict[str, Any]:
        _require_fields(body, ("instance_ids",))
        ids = body["instance_ids"]
        unknown = [i for i in ids if i not in self.instances]
        if unknown:
            raise ApiError(404, "global/object-does-not-exist",
                           f"Specified instance does not exist: {unknown[0]}.")
        terminated = []
        for instance_id in ids:
            instance = self.instances[instance_id]
            instance.forced_status = "terminated"
            terminated.append(self._instance_json(instance))
        return {"terminated_instances": terminated}

    def _list_instances(self, _body: Any) -> list[dict[str, Any]]:
        return [self._instance_json(i) for i in self.instances.values()
                if self._status(i) != "terminated"]

    def _get_instance(self, _body: Any, instance_id: str) -> dict[str, Any]:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise ApiError(404, "global/object-does-not-exist",
                           "Specified instance does not exist.")
        return self._instance_json(instance)

    def _list_ssh_keys(self, _body: Any) -> list[dict[str, str]]:
        return list(self.ssh_keys.values())

    def _add_ssh_key(self, body: dict[str, Any]) -> dict[str, str]:
        _require_fields(body, ("name",))
        name = body["name"]
        if any(k["name"] == name for k in self.ssh_keys.values()):
            raise invalid(f"An SSH key named {name!r} already exists.")
        key_id = uuid.uuid4().hex
        if "public_key" in body:
            public_key = str(body["public_key"])
            if not re.match(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-\S+) \S+", public_key):
                raise invalid("public_key is not a valid SSH public key.")
            key = {"id": key_id, "name": name, "public_key": public_key}
            self.ssh_keys[key_id] = key
            return key
        key = {"id": key_id, "name": name, "public_key": "ssh-rsa AAAAgenerated fake"}
        self.ssh_keys[key_id] = key
        return {**key, "private_key": "-----BEGIN RSA PRIVATE KEY-----\nfake\n"
                                      "-----END RSA PRIVATE KEY-----\n"}

    def _delete_ssh_key(self, _body: Any, key_id: str) -> dict[str, Any]:
        if key_id not in self.ssh_keys:
            raise ApiError(404, "global/not-found", f"No SSH key with id {key_id!r}.")
        del self.ssh_keys[key_id]
        return {}

    def _list_file_systems(self, _body: Any) -> list[dict[str, Any]]:
        return [fs | {"is_in_use": self._mounted(fs["name"])}
                for fs in self.file_systems.values()]

    def _mounted(self, name: str) -> bool:
        """Whether an instance that is not terminated mounts the file system `name`."""
        return any(name in i.file_system_names and self._status(i) != "terminated"
                   for i in self.instances.values())

    def _delete_file_system(self, _body: Any, fs_id: str) -> dict[str, Any]:
        fs = self.file_systems.get(fs_id)
        if fs is None:
            raise ApiError(404, "global/object-does-not-exist", "Filesystem was not found.")
        if self._mounted(fs["name"]):
            raise ApiError(400, "filesystems/filesystem-in-use",
                           "Filesystem is in use by one or more instances.",
                           "Terminate the instances that use it before deleting it.")
        del self.file_systems[fs_id]
        return {"deleted_ids": [fs_id]}

    def _create_file_system(self, body: dict[str, Any]) -> dict[str, Any]:
        _require_fields(body, ("name", "region"))
        name, region = body["name"], body["region"]
        if region not in REGIONS:
            raise invalid(f"Unknown region {region!r}.")
        if any(f["name"] == name for f in self.file_systems.values()):
            raise ApiError(400, "global/duplicate", f"A filesystem named {name!r} exists.")
        fs = {"id": uuid.uuid4().hex, "name": name, "mount_point": f"/lambda/nfs/{name}",
              "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "created_by": {"id": "u1", "email": "test@example.com", "status": "active"},
              "is_in_use": False, "region": self._region(region), "bytes_used": 0}
        self.file_systems[fs["id"]] = fs
        return fs

    def _get_firewall_rules(self, _body: Any) -> list[dict[str, Any]]:
        return [dict(rule) for rule in self.firewall_rules]

    def _put_firewall_rules(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        _require_fields(body, ("data",))
        if not isinstance(body["data"], list):
            raise invalid("data must be a list of rules.")
        self.firewall_rules = [_checked_rule(rule) for rule in body["data"]]
        return self._get_firewall_rules(None)

    # ----------------------------------------------------------------- test control

    def _admin(self, method: str, path: str, raw_body: bytes
               ) -> tuple[int, dict[str, str], Any]:
        """``GET /_fake/state``; ``POST /_fake/fail`` {path, count, status, retry_after};
        ``POST /_fake/status`` {instance_id, status}; ``POST /_fake/capacity`` {type, regions};
        ``POST /_fake/refuse-launch`` {regions}."""
        body = json.loads(raw_body) if raw_body else {}
        with self._lock:
            if method == "GET" and path == "/_fake/state":
                return 200, {}, {
                    "instances": [self._instance_json(i) for i in self.instances.values()],
                    "firewall_rules": self.firewall_rules,
                    "firewall_rulesets": [self.rulesets.view(r) for r in self.rulesets.rulesets],
                    "ssh_keys": list(self.ssh_keys.values()),
                    "violations": self.violations,
                    "requests": [{"method": r.method, "path": r.path, "status": r.status}
                                 for r in self.requests]}
            if method == "POST" and path == "/_fake/fail":
                self.fail_next(body["path"], body.get("count", 1),
                               status=body.get("status", 500),
                               retry_after=body.get("retry_after"), method=body.get("method"))
            elif method == "POST" and path == "/_fake/status":
                self.set_status(body["instance_id"], body["status"])
            elif method == "POST" and path == "/_fake/capacity":
                self.set_capacity(body["type"], body["regions"])
            elif method == "POST" and path == "/_fake/refuse-launch":
                self.refuse_launch_in(*body["regions"])
            else:
                return 404, {}, {"error": {"code": "fake/unknown", "message": path}}
            return 200, {}, {"ok": True}


def _api_path(path: str) -> str:
    return path if path.startswith(API_PREFIX) else API_PREFIX + path


def _require_fields(body: Any, names: Iterable[str]) -> None:
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    missing = [name for name in names if name not in body]
    if missing:
        raise invalid(f"Missing field(s): {', '.join(missing)}.")


def _checked_rule(rule: Any) -> dict[str, Any]:
    """Validate one firewall rule as Lambda does; returns it normalised (CIDR with mask)."""
    if not isinstance(rule, dict) or rule.get("protocol") not in ("tcp", "udp", "icmp", "all"):
        raise invalid("protocol must be one of tcp, udp, icmp, all.")
    try:
        network = ipaddress.IPv4Network(str(rule.get("source_network")), strict=False)
    except ValueError:
        raise invalid(f"source_network {rule.get('source_network')!r} is not an IPv4 CIDR."
                      ) from None
    checked: dict[str, Any] = {"protocol": rule["protocol"], "source_network": str(network),
                               "description": str(rule.get("description", ""))}
    ports = rule.get("port_range")
    if rule["protocol"] == "icmp":
        if ports is not None:
            raise invalid("port_range is not allowed for icmp.")
    else:
        if (not isinstance(ports, list) or len(ports) != 2
                or not all(isinstance(p, int) and 1 <= p <= 65535 for p in ports)
                or ports[0] > ports[1]):
            raise invalid("port_range must be [min, max] with 1 <= min <= max <= 65535.")
        checked["port_range"] = list(ports)
    return checked


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLambda
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        status, extra, payload = self.fake.handle(self.command, self.path,
                                                  dict(self.headers.items()), raw_body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; the request log is in FakeLambda.requests


def _parse_capacity(items: list[str]) -> dict[str, list[str]]:
    capacity: dict[str, list[str]] = {}
    for item in items:
        type_name, _, regions = item.partition("=")
        capacity[type_name] = [r for r in regions.split(",") if r]
    return capacity


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Lambda Cloud API for tests.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY)
    parser.add_argument("--capacity", action="append", default=[],
                        metavar="TYPE=REGION[,REGION]")
    parser.add_argument("--boot-seconds", type=float, default=0.0)
    parser.add_argument("--ip", default="127.0.0.1", help="address active instances get")
    parser.add_argument("--launch-interval", type=float, default=LAUNCH_INTERVAL_S)
    parser.add_argument("--ssh-key", action="append", default=[],
                        help="name of an SSH key that already exists in the account")
    args = parser.parse_args(argv)
    fake = FakeLambda(api_key=args.api_key, capacity=_parse_capacity(args.capacity),
                      boot_seconds=args.boot_seconds, instance_ip=args.ip,
                      launch_interval_s=args.launch_interval, port=args.port)
    for name in args.ssh_key:
        fake.add_ssh_key(name)
    fake.start()
    print(f"FAKE_LAMBDA_URL={fake.url}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
