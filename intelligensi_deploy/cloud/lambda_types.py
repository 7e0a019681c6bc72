"""What the Lambda Cloud API returns, as frozen dataclasses read from its JSON (`from_api`),
following Lambda's OpenAPI description: instance types with their regions' capacity,
instances, SSH keys, file systems, firewall rules and rulesets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InstanceSpecs:
    vcpus: int
    memory_gib: int
    storage_gib: int
    gpus: int

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> InstanceSpecs:
        return cls(int(data["vcpus"]), int(data["memory_gib"]), int(data["storage_gib"]),
                   int(data["gpus"]))


@dataclass(frozen=True)
class InstanceType:
    name: str
    description: str
    gpu_description: str
    price_cents_per_hour: int
    specs: InstanceSpecs
    regions_with_capacity_available: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, data: Mapping[str, Any], regions: Sequence[Mapping[str, Any]] = ()
                 ) -> InstanceType:
        return cls(
            name=data["name"],
            description=data["description"],
            gpu_description=data["gpu_description"],
            price_cents_per_hour=int(data["price_cents_per_hour"]),
            specs=InstanceSpecs.from_api(data["specs"]),
            regions_with_capacity_available=tuple(r["name"] for r in regions),
        )


@dataclass(frozen=True)
class Instance:
    id: str
    status: str
    region: str
    instance_type: str
    name: str | None = None
    ip: str | None = None
    private_ip: str | None = None
    hostname: str | None = None
    ssh_key_names: tuple[str, ...] = ()
    file_system_names: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()  # (key, value), as launched
    price_cents_per_hour: int | None = None  # the instance type's price
    firewall_rulesets: tuple[str, ...] = ()  # ids of the rulesets attached at launch

    def tag(self, key: str) -> str | None:
        """The value of tag `key`, if the instance carries it."""
        return next((value for k, value in self.tags if k == key), None)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Instance:
        price = data["instance_type"].get("price_cents_per_hour")
        return cls(
            id=data["id"],
            status=data["status"],
            region=data["region"]["name"],
            instance_type=data["instance_type"]["name"],
            name=data.get("name"),
            ip=data.get("ip") or None,
            private_ip=data.get("private_ip") or None,
            hostname=data.get("hostname"),
            ssh_key_names=tuple(data.get("ssh_key_names", ())),
            file_system_names=tuple(data.get("file_system_names", ())),
            tags=tuple((str(t["key"]), str(t["value"])) for t in data.get("tags") or ()),
            price_cents_per_hour=int(price) if price is not None else None,
            firewall_rulesets=tuple(str(r["id"]) for r in data.get("firewall_rulesets") or ()),
        )


@dataclass(frozen=True)
class SSHKey:
    id: str
    name: str
    public_key: str
    private_key: str | None = field(default=None, repr=False)  # only for server-generated keys

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SSHKey:
        return cls(data["id"], data["name"], data["public_key"], data.get("private_key"))


@dataclass(frozen=True)
class FileSystem:
    id: str
    name: str
    region: str
    mount_point: str
    is_in_use: bool
    bytes_used: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FileSystem:
        return cls(data["id"], data["name"], data["region"]["name"], data["mount_point"],
                   bool(data["is_in_use"]), data.get("bytes_used"))


@dataclass(frozen=True)
class FirewallRule:
    """An inbound rule. ``port_range`` is inclusive and absent for ``icmp``."""

    protocol: str
    port_range: tuple[int, int] | None
    source_network: str
    description: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FirewallRule:
        ports = data.get("port_range")
        return cls(data["protocol"], (int(ports[0]), int(ports[1])) if ports else None,
                   data["source_network"], data.get("description", ""))

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {"protocol": self.protocol, "source_network": self.source_network,
                                "description": self.description}
        if self.port_range is not None:
            body["port_range"] = list(self.port_range)
        return body


@dataclass(frozen=True)
class FirewallRuleset:
    """A named set of inbound rules in one region, attached to instances at launch."""

    id: str
    name: str
    region: str
    rules: tuple[FirewallRule, ...]
    instance_ids: tuple[str, ...] = ()  # the instances it is attached to

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> FirewallRuleset:
        return cls(str(data["id"]), str(data["name"]), str(data["region"]["name"]),
                   tuple(FirewallRule.from_api(rule) for rule in data.get("rules") or ()),
                   tuple(str(i) for i in data.get("instance_ids") or ()))
