"""What a deployment costs: the price line `up` shows before launching, and the uptime and
spend `status` shows. Pure arithmetic over plain records (no pydantic: `status` stays quick).

Lambda bills by the hour from launch until terminate (it has no stop). The price comes from
`GET /instance-types` (`price_cents_per_hour`) and is recorded at launch with the launch time;
Lambda's `Instance` carries no launch time, so a record without one shows its uptime and spend
as unknown instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def dollars(cents: float) -> str:
    """`$1.29` (cents to dollars, two decimals)."""
    return f"${cents / 100:,.2f}"


def price_line(instance_type: str, cents_per_hour: int, nodes: int = 1) -> str:
    """`gpu_1x_a10 at $0.75/h`, or `3 x gpu_1x_a100 at $1.29/h each = $3.87/h`."""
    if nodes == 1:
        return f"{instance_type} at {dollars(cents_per_hour)}/h"
    return (f"{nodes} x {instance_type} at {dollars(cents_per_hour)}/h each = "
            f"{dollars(cents_per_hour * nodes)}/h")


def format_duration(seconds: float) -> str:
    """`45 s`, `1 min 15 s`, `12 min`, `3 h 05 min`, `2 d 4 h`."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 10 and rest:
        return f"{minutes} min {rest} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@dataclass(frozen=True)
class Spend:
    """One billing instance's figures; None where the record cannot tell."""

    price_per_hour: float | None  # dollars
    uptime_s: float | None
    spend: float | None  # dollars so far

    @classmethod
    def of(cls, cents_per_hour: int | None, launched_at: float | None, now: float) -> Spend:
        price = cents_per_hour / 100 if cents_per_hour is not None else None
        uptime = max(0.0, now - launched_at) if launched_at else None
        spent = price * uptime / 3600 if price is not None and uptime is not None else None
        return cls(price, uptime, spent)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_spend(record: Mapping[str, Any], now: float) -> dict[str, Any] | None:
    """Price, uptime and spend of a Lambda record that holds instances (per node for a
    cluster, with the sum); None when nothing bills (not Lambda, or no instance)."""
    if record.get("provider") != "lambda" or record.get("phase") == "down":
        return None
    cents = record.get("price_cents_per_hour")
    nodes: Sequence[Mapping[str, Any]] = record.get("nodes") or []
    if len(nodes) > 1:
        rows = [{"index": n.get("index"), **Spend.of(cents, n.get("launched_at"), now).to_dict()}
                for n in nodes if n.get("instance_id")]
        if not rows:
            return None
        return {**_total(rows), "nodes": rows}
    if not record.get("instance_id"):
        return None
    return Spend.of(cents, record.get("launched_at"), now).to_dict()


def _total(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum over nodes; a figure unknown on any node makes the sum unknown."""
    def total(key: str) -> float | None:
        values = [r[key] for r in rows]
        return None if any(v is None for v in values) else sum(values)

    uptimes = [r["uptime_s"] for r in rows]
    return {"price_per_hour": total("price_per_hour"),
            "uptime_s": None if None in uptimes else max(uptimes),
            "spend": total("spend")}


def describe_spend(spend: Mapping[str, Any] | None) -> str:
    """`$0.75/h, up 2 h 05 min, $1.56 so far` (unknown parts said so), or `-`."""
    if not spend:
        return "-"
    price = spend.get("price_per_hour")
    uptime = spend.get("uptime_s")
    spent = spend.get("spend")
    parts = [f"{dollars(price * 100)}/h" if price is not None else "price unknown",
             f"up {format_duration(uptime)}" if uptime is not None else "uptime unknown "
             "(launched before fluxdeploy recorded launch times)",
             f"{dollars(spent * 100)} so far" if spent is not None else "spend unknown"]
    return ", ".join(parts)
