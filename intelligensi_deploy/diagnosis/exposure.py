"""Why a server that answers on its host does not answer from outside. Pure.

The causes, in the order they are looked for: the port is published on the host's 127.0.0.1
only (exposure tunnel), the server binds 127.0.0.1 inside the container, no Lambda firewall
rule opens the port (Lambda firewall rules do not apply in us-south-1). Whatever the cause,
`fluxdeploy tunnel` is the immediate unblock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from intelligensi_deploy.diagnosis.findings import Finding, make_finding

LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
CONTAINER_PORT = 8000
NO_FIREWALL_REGIONS = ("us-south-1",)  # Lambda firewall rules do not apply there (NOTES.md)


@dataclass(frozen=True)
class ExternalCause:
    """The cause found: its PLAYBOOK anchor, the evidence, the fix (tunnel first)."""

    doc: str
    evidence: tuple[str, ...]
    fix: str
    findings: tuple[Finding, ...] = ()


def published_addresses(inspect: Mapping[str, Any], container_port: int = CONTAINER_PORT
                        ) -> list[str]:
    """The host addresses `container_port/tcp` is published on ("" means all addresses)."""
    bindings = ((inspect.get("HostConfig") or {}).get("PortBindings") or {})
    return [b.get("HostIp", "") for b in bindings.get(f"{container_port}/tcp") or []]


def rule_opens(rule: Any, port: int) -> bool:
    """Whether a Lambda firewall rule lets TCP `port` in from anywhere it names."""
    protocol = getattr(rule, "protocol", "")
    ports = getattr(rule, "port_range", None)
    if protocol not in ("tcp", "all"):
        return False
    return ports is None or int(ports[0]) <= port <= int(ports[1])


def _describe_rule(rule: Any) -> str:
    ports = getattr(rule, "port_range", None)
    span = f" {ports[0]}-{ports[1]}" if ports and ports[0] != ports[1] else \
        (f" {ports[0]}" if ports else "")
    return f"{rule.protocol}{span} from {rule.source_network}"


def external_cause(inspect: Mapping[str, Any], log_findings: Sequence[Finding],
                   firewall_rules: Sequence[Any] | None, region: str | None, port: int,
                   tunnel: str, *, ruleset: str | None = None) -> ExternalCause:
    """Why the server answers on the host but not from outside (pure).

    In order: the port is published on 127.0.0.1 only; the server is bound to loopback inside
    the container; no Lambda firewall rule opens the port. `ruleset` names the deployment's
    own ruleset when `firewall_rules` are its rules; without one they are the account's
    legacy rules, which do not apply in us-south-1.
    """
    unblock = f"Right now: `{tunnel}` and use http://127.0.0.1:<local port>."
    addresses = published_addresses(inspect)
    if addresses and all(a in LOOPBACK_HOSTS for a in addresses):
        return ExternalCause(
            "exposure", ((f"the container publishes port {port} on {', '.join(addresses)} only "
                         "(HostConfig.PortBindings)"),),
            f"{unblock} To open it: set `exposure: public` in the preset and `fluxdeploy up` "
            "again.")
    loopback = [f for f in log_findings if f.id == "bound-to-loopback"]
    if loopback:
        return ExternalCause("bound-to-loopback", loopback[0].evidence,
                             f"{unblock} Then unset FLUX_HOST so the server binds 0.0.0.0.",
                             (loopback[0],))
    if region in NO_FIREWALL_REGIONS and ruleset is None:
        return ExternalCause(
            "firewall-closed", ((f"region {region}: Lambda firewall rules do not apply there; "
                                "something else blocks the port (host firewall `sudo ufw "
                                "status`, your network)"),), unblock)
    if firewall_rules is None:
        return ExternalCause(
            "firewall-closed", (("the provider's firewall cannot be read from here: check the "
                                f"host's firewall and security group for TCP {port}"),), unblock)
    if not any(rule_opens(r, port) for r in firewall_rules):
        seen = "; ".join(_describe_rule(r) for r in firewall_rules) or "none"
        where = (f"rule of the deployment's firewall ruleset {ruleset}" if ruleset
                 else "Lambda firewall rule")
        evidence = (f"no {where} opens TCP {port} (rules: {seen})",)
        return ExternalCause(
            "firewall-closed", evidence,
            f"{unblock} To open it: `fluxdeploy up` with `exposure: public` adds the rule to "
            "the deployment's firewall ruleset.",
            (make_finding("firewall-closed", evidence),))
    sources = [r.source_network for r in firewall_rules if rule_opens(r, port)]
    return ExternalCause(
        "firewall-closed", ((f"a firewall rule opens TCP {port} from {', '.join(sources)}; "
                            "is your address inside it? A host firewall (ufw) may also block"),),
        unblock)
