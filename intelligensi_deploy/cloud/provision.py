"""Provisioning on Lambda Cloud: region choice, launch with fallback, boot wait, firewall.

The pure parts (``choose_regions``, ``capacity_rows``, ``rule_covers``, ``normalize_cidr``...)
take plain data; the others take a ``LambdaClient`` (or anything with the same methods). A
launched instance is reported through ``on_launched`` the moment the API returns its id,
before any waiting, so the caller can record it: a billing VM must never be lost.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from tenacity import RetryCallState, Retrying, retry_if_result

from intelligensi_deploy.cloud.lambda_errors import (
    InsufficientCapacity,
    LambdaUnavailable,
    ObjectNotFound,
)
from intelligensi_deploy.cloud.lambda_types import (
    FileSystem,
    FirewallRule,
    Instance,
    InstanceType,
    SSHKey,
)
from intelligensi_deploy.errors import FluxdeployError

if TYPE_CHECKING:
    from intelligensi_deploy.cloud.lambda_api import LambdaClient

FIREWALL_EXEMPT_REGIONS = frozenset({"us-south-1"})
FAILED_STATUSES = {"unhealthy": True, "terminating": False, "terminated": False,
                   "preempted": False}  # status -> still billing?


class UnknownInstanceType(FluxdeployError):
    """The preset names an instance type Lambda does not offer."""


class NoCapacity(FluxdeployError):
    """No preferred region has capacity for the instance type."""


class InstanceFailed(FluxdeployError):
    """The instance went unhealthy, was terminated or preempted while booting."""


class BootTimeout(FluxdeployError):
    """The instance did not become active with an IP in time."""


@dataclass(frozen=True)
class Launched:
    instance_id: str
    region: str


@dataclass(frozen=True)
class CapacityRow:
    """One line of ``fluxdeploy capacity``."""

    name: str  # the instance type
    gpu: str
    gpus: int
    price_per_hour: float  # US dollars
    regions: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        row = asdict(self)
        row["regions"] = list(self.regions)
        return row


# --------------------------------------------------------------------------- pure logic


def find_type(instance_types: Sequence[InstanceType], name: str) -> InstanceType:
    """The instance type called ``name``; an error listing the valid names otherwise."""
    for candidate in instance_types:
        if candidate.name == name:
            return candidate
    valid = ", ".join(sorted(t.name for t in instance_types)) or "(none)"
    raise UnknownInstanceType(
        f"Lambda has no instance type {name!r}. Valid types: {valid}.",
        fix="Set `instance_type` in the preset to one of these (`fluxdeploy capacity` shows "
            "prices and free regions).",
        doc="lambda-capacity")


def choose_regions(instance_types: Sequence[InstanceType], instance_type: str,
                   preferred_regions: Sequence[str]) -> list[str]:
    """Preferred regions that have capacity now, in the preset's order.

    With no preference, every region with capacity (in the API's order).
    """
    available = find_type(instance_types, instance_type).regions_with_capacity_available
    if not preferred_regions:
        return list(available)
    return [region for region in dict.fromkeys(preferred_regions) if region in available]


def capacity_rows(instance_types: Sequence[InstanceType]) -> list[CapacityRow]:
    """Rows for ``fluxdeploy capacity``: types with capacity first, then by price and name."""
    rows = [CapacityRow(t.name, t.gpu_description, t.specs.gpus,
                        round(t.price_cents_per_hour / 100, 2),
                        tuple(sorted(t.regions_with_capacity_available)))
            for t in instance_types]
    return sorted(rows, key=lambda r: (not r.regions, r.price_per_hour, r.name))


def describe_alternatives(instance_types: Sequence[InstanceType], *, limit: int = 8) -> str:
    """"gpu_1x_a100 ($1.29/h) in us-east-1, us-west-2; ..." for types that have capacity."""
    rows = [row for row in capacity_rows(instance_types) if row.regions][:limit]
    if not rows:
        return "no instance type has capacity in any region right now"
    return "; ".join(f"{row.name} (${row.price_per_hour:.2f}/h) in "
                     f"{', '.join(row.regions)}" for row in rows)


def normalize_cidr(cidr: str) -> str:
    """``1.2.3.4`` -> ``1.2.3.4/32``; host bits cleared; IPv4 only (as Lambda requires)."""
    try:
        return str(ipaddress.IPv4Network(cidr.strip(), strict=False))
    except ValueError:
        raise FluxdeployError(
            f"{cidr!r} is not an IPv4 network in CIDR notation.",
            fix="Use e.g. 203.0.113.7/32 (your address) or 0.0.0.0/0 (anyone).",
            doc="exposure") from None


def rule_covers(rule: FirewallRule, port: int, cidr: str) -> bool:
    """Whether ``rule`` already lets TCP ``port`` in from every address of ``cidr``."""
    if rule.protocol not in ("tcp", "all"):
        return False
    if rule.protocol == "tcp" and (rule.port_range is None
                                   or not rule.port_range[0] <= port <= rule.port_range[1]):
        return False
    try:
        source = ipaddress.IPv4Network(rule.source_network, strict=False)
    except ValueError:
        return False
    return ipaddress.IPv4Network(cidr, strict=False).subnet_of(source)


def firewall_applies(region: str) -> bool:
    """Lambda's account-wide (legacy) firewall rules do not apply in us-south-1 (the OpenAPI
    file says so of `/firewall-rules`; it says nothing of rulesets there)."""
    return region not in FIREWALL_EXEMPT_REGIONS


# --------------------------------------------------------------------------- launch


def launch_first_available(client: LambdaClient, instance_type: str,
                           preferred_regions: Sequence[str], ssh_key_name: str, *,
                           name: str, file_system: str | None = None,
                           tags: Mapping[str, str] | None = None,
                           instance_types: Sequence[InstanceType] | None = None,
                           on_launched: Callable[[str, str], None],
                           firewall_rulesets: Callable[[str], Sequence[str]] | None = None
                           ) -> Launched:
    """Launch one instance in the first preferred region that takes it.

    ``on_launched(instance_id, region)`` is called as soon as the API returns the id. An
    insufficient-capacity answer moves on to the next region. A file system pins the launch
    to its region (it is created in the first candidate region when it does not exist yet).
    ``tags`` are set on the instance; ``instance_types``, when given, saves listing them again.
    ``firewall_rulesets(region)`` gives the ruleset ids to attach in a region (a ruleset must
    be in the instance's region), asked before each region's launch.
    """
    types = list(instance_types) if instance_types is not None else client.instance_types()
    candidates = choose_regions(types, instance_type, preferred_regions)
    fs_region = _file_system_region(client, file_system) if file_system else None
    if fs_region is not None:
        candidates = [region for region in candidates if region == fs_region]
    tried: list[str] = []
    for region in candidates:
        if file_system and fs_region is None:
            fs_region = client.create_file_system(file_system, region).region
        elif fs_region is not None and region != fs_region:
            continue
        rulesets = firewall_rulesets(region) if firewall_rulesets is not None else None
        try:
            ids = client.launch(region, instance_type, ssh_key_name, name=name,
                                file_system_names=[file_system] if file_system else None,
                                tags=tags, firewall_rulesets=rulesets)
        except InsufficientCapacity:
            tried.append(region)
            continue
        except LambdaUnavailable:
            found = _find_unreported_launch(client, name, region, instance_type)
            if found is None:
                raise
            ids = [found]
        _report_launch(on_launched, ids[0], region)
        return Launched(ids[0], region)
    raise _no_capacity(client, instance_type, preferred_regions, tried, fs_region,
                       file_system)


def _report_launch(on_launched: Callable[[str, str], None], instance_id: str, region: str
                   ) -> None:
    """Call ``on_launched``; if it fails, the error still names the billing instance."""
    try:
        on_launched(instance_id, region)
    except Exception as exc:
        raise FluxdeployError(
            f"Instance {instance_id} was launched in {region} and is billing, but recording it "
            f"locally failed: {exc}",
            fix=f"Terminate instance {instance_id} in the Lambda dashboard "
                "(https://cloud.lambda.ai/instances), or fix the problem and record it again.",
            doc="lambda-billing") from exc


def _file_system_region(client: LambdaClient, name: str) -> str | None:
    existing: list[FileSystem] = [fs for fs in client.file_systems() if fs.name == name]
    return existing[0].region if existing else None


def _find_unreported_launch(client: LambdaClient, name: str, region: str,
                            instance_type: str) -> str | None:
    """After an unanswered launch, the id of an instance it may have created, if any."""
    matches = [i for i in client.list_instances()
               if i.name == name and i.region == region and i.instance_type == instance_type
               and i.status not in ("terminated", "terminating")]
    return matches[0].id if len(matches) == 1 else None


def _no_capacity(client: LambdaClient, instance_type: str, preferred: Sequence[str],
                 tried: Sequence[str], fs_region: str | None, file_system: str | None
                 ) -> NoCapacity:
    try:
        alternatives = describe_alternatives(client.instance_types())
    except FluxdeployError:
        alternatives = "(could not list them)"
    where = ", ".join(preferred) if preferred else "any region"
    message = f"No capacity for {instance_type} in {where}"
    if tried:
        message += f" (launch refused for lack of capacity in {', '.join(tried)})"
    if fs_region is not None:
        message += (f"; the file system {file_system!r} (the cached weights) pins the launch "
                    f"to {fs_region}")
    message += f". Capacity now: {alternatives}."
    if fs_region is not None:
        fix = (f"Either wait for {fs_region}: `fluxdeploy up --wait` asks again every minute "
               "until it has capacity (the weights are there: no download). Or launch where "
               "there is capacity with a new file system: set `file_system:` to a new name "
               "(or `none`) in the preset, and the weights are downloaded once more there.")
    else:
        fix = ("Add a region with capacity to the preset's regions, choose another preset or "
               "instance type, try again in a few minutes, or `fluxdeploy up --wait`.")
    return NoCapacity(message, fix=fix, doc="lambda-capacity")


# --------------------------------------------------------------------------- boot wait


def wait_for_active(client: LambdaClient, instance_id: str, timeout: float,
                    on_status: Callable[[Instance], None] | None = None, *,
                    poll_interval: float = 5.0, sleep: Callable[[float], None] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> Instance:
    """Poll until the instance is ``active`` with an IP; ``on_status`` sees every poll."""
    deadline = clock() + timeout

    def poll() -> Instance:
        try:
            instance = client.get_instance(instance_id)
        except ObjectNotFound:
            raise InstanceFailed(
                f"Instance {instance_id} no longer exists at Lambda; it is not billing.",
                fix="Run `fluxdeploy up` again to launch a new one.", doc="lambda-boot") from None
        if on_status is not None:
            on_status(instance)
        if instance.status in FAILED_STATUSES:
            raise _failed(instance)
        return instance

    def timed_out(state: RetryCallState) -> NoReturn:
        assert state.outcome is not None
        raise BootTimeout(
            f"Instance {instance_id} is still {state.outcome.result().status!r} after "
            f"{timeout:.0f} s and is still billing.",
            fix="Run `fluxdeploy up` again to keep waiting (boot can take 25 min on 8-GPU "
                "machines), or `fluxdeploy down` to terminate it.",
            doc="lambda-boot")

    retrying = Retrying(
        retry=retry_if_result(lambda instance: not (instance.status == "active" and instance.ip)),
        stop=lambda _: clock() >= deadline,
        wait=lambda _: max(0.0, min(poll_interval, deadline - clock())),
        sleep=sleep, retry_error_callback=timed_out)
    return retrying(poll)


def _failed(instance: Instance) -> InstanceFailed:
    billing = FAILED_STATUSES[instance.status]
    if billing:
        return InstanceFailed(
            f"Instance {instance.id} ({instance.instance_type} in {instance.region}) is "
            f"{instance.status}. It is still billing.",
            fix="Terminate it with `fluxdeploy down` and run `fluxdeploy up` again; contact "
                "Lambda Support if it keeps happening.",
            doc="lambda-boot")
    return InstanceFailed(
        f"Instance {instance.id} ({instance.instance_type} in {instance.region}) is "
        f"{instance.status}; it is not billing any more.",
        fix="Run `fluxdeploy up` again to launch a new one.",
        doc="lambda-boot")


def terminate_if_present(client: LambdaClient, instance_id: str) -> bool:
    """Terminate an instance; False when it was already gone (so ``down`` can repeat)."""
    try:
        if client.get_instance(instance_id).status in ("terminated", "terminating"):
            return False
        client.terminate([instance_id])
    except ObjectNotFound:
        return False
    return True


# --------------------------------------------------------------------------- SSH key


def ensure_ssh_key(client: LambdaClient, name: str, public_key: str) -> SSHKey:
    """The Lambda SSH key called ``name``, uploading ``public_key`` when it is missing.

    A key of that name holding a different public key is an error (never replaced silently).
    """
    wanted = _key_material(public_key)
    for key in client.ssh_keys():
        if key.name == name:
            if _key_material(key.public_key) == wanted:
                return key
            raise FluxdeployError(
                f"Lambda already has an SSH key named {name!r}, but with a different public "
                "key than the preset's key file.",
                fix="Point the preset at the matching key file, or choose another `ssh_key` "
                    "name (fluxdeploy will upload it).",
                doc="lambda-ssh-key")
    return client.add_ssh_key(name, public_key)


def _key_material(public_key: str) -> tuple[str, ...]:
    """``(type, base64)`` of an OpenSSH public key line, ignoring the comment."""
    return tuple(public_key.split()[:2])


# --------------------------------------------------------------------------- firewall


def ensure_firewall_rule(client: LambdaClient, port: int, cidr: str, description: str
                         ) -> FirewallRule | None:
    """Open TCP ``port`` to ``cidr``, keeping every existing rule.

    Returns the rule that belongs to us (added now, or found identical from an earlier run)
    so that ``down`` can remove exactly it; None when another rule already covers the port.
    """
    wanted = FirewallRule("tcp", (port, port), normalize_cidr(cidr), description)
    rules = client.firewall_rules()
    if any(_same_rule(rule, wanted) for rule in rules):
        return wanted
    if any(rule_covers(rule, port, wanted.source_network) for rule in rules):
        return None
    client.set_firewall_rules([*rules, wanted])
    return wanted


def remove_firewall_rule(client: LambdaClient, rule: FirewallRule | Mapping[str, Any]
                         ) -> bool:
    """Remove exactly ``rule`` (read, filter, write); False when it was already gone.

    ``rule`` may be the API form saved in the deployment state (``FirewallRule.to_api()``).
    """
    if isinstance(rule, Mapping):
        rule = FirewallRule.from_api(rule)
    rules = client.firewall_rules()
    kept = [existing for existing in rules if not _same_rule(existing, rule)]
    if len(kept) == len(rules):
        return False
    client.set_firewall_rules(kept)
    return True


def _same_rule(a: FirewallRule, b: FirewallRule) -> bool:
    def key(rule: FirewallRule) -> tuple[object, ...]:
        try:
            network = str(ipaddress.IPv4Network(rule.source_network, strict=False))
        except ValueError:
            network = rule.source_network
        return (rule.protocol, rule.port_range, network, rule.description)

    return key(a) == key(b)
