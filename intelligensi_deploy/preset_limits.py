"""A preset's `limits:` section: when a Lambda deployment terminates itself.

`idle`: time with no generation request, counted from ready (a request in progress is not
idle). `max_duration`: time since launch. Written like `45m`, `2h`, `1h30m` or `20s`; `off`
(or nothing) means no limit. Lambda has no stop, only terminate: the watchdog on the VM
(server/flux_server/watchdog.py) terminates the instance when a limit expires, so the limit
holds while the laptop is closed. Flags (`--limit-idle`, `--limit-max`) beat the variables
(`FLUXDEPLOY_LIMIT_IDLE`, `FLUXDEPLOY_LIMIT_MAX`), which beat the preset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer, field_validator

from intelligensi_deploy.cost import format_duration
from intelligensi_deploy.errors import FluxdeployError

OFF = "off"
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
ENV_NAMES = {"idle": "FLUXDEPLOY_LIMIT_IDLE", "max_duration": "FLUXDEPLOY_LIMIT_MAX"}
FLAG_NAMES = {"idle": "--limit-idle", "max_duration": "--limit-max"}


def parse_duration(value: Any) -> float | None:
    """Seconds from `45m`, `2h`, `1h30m`, `20s`; None for `off`. ValueError names the form."""
    if value is None or (isinstance(value, str) and value.strip().lower() == OFF):
        return None
    if value is False:
        return None
    text = str(value).strip().lower().replace(" ", "")
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"{value!r} is not a duration: write it like 45m, 2h, 1h30m or 20s "
                         "(or off)")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"{value!r} is zero: write a positive duration, or off")
    return float(total)


def duration_text(seconds: float | None) -> str:
    """How a preset writes `seconds`: `1h30m`, `45m`, `20s`, or `off`."""
    if seconds is None:
        return OFF
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs else "") or "0s"


class LimitsSection(BaseModel):
    """The limits in force, in seconds (None: no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle: float | None = None
    max_duration: float | None = None

    @field_validator("idle", "max_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(  # noqa: TRY004 (pydantic reports ValueError, not TypeError)
                f"{value!r} has no unit: write it like 45m, 2h, 1h30m or 20s")
        return parse_duration(value)

    @classmethod
    def of(cls, idle: float | None = None, max_duration: float | None = None) -> LimitsSection:
        """Limits in seconds, from code (a preset writes durations with a unit)."""
        return cls.model_construct(idle=idle, max_duration=max_duration)

    @field_serializer("idle", "max_duration")
    def _written(self, value: float | None) -> str:
        return duration_text(value)

    @property
    def any(self) -> bool:
        return self.idle is not None or self.max_duration is not None

    def describe(self) -> str:
        """`terminates after 60 min idle; `--limit-idle off` to keep it` (or no limit)."""
        if not self.any:
            return "no idle or lifetime limit: it bills until `fluxdeploy down`"
        parts, offs = [], []
        if self.idle is not None:
            parts.append(f"after {_spoken(self.idle)} idle")
            offs.append(f"`{FLAG_NAMES['idle']} off`")
        if self.max_duration is not None:
            parts.append(f"{_spoken(self.max_duration)} after launch")
            offs.append(f"`{FLAG_NAMES['max_duration']} off`")
        return f"terminates {' or '.join(parts)}; {' / '.join(offs)} to keep it"


def _spoken(seconds: float) -> str:
    """`60 min`, `90 min`, `8 h 00 min`, `20 s`: whole minutes up to 3 h read as minutes."""
    if seconds % 60 == 0 and seconds <= 3 * 3600:
        return f"{int(seconds // 60)} min"
    return format_duration(seconds)


def check_limits(limits: LimitsSection, provider: str, ready_timeout: float) -> None:
    """Refuse limits that cannot work; ValueError names the fix."""
    if limits.any and provider != "lambda":
        raise ValueError(f"limits terminate a Lambda instance, and provider {provider!r} has "
                         "none to terminate: remove the limits section")
    if limits.max_duration is not None and limits.max_duration < ready_timeout:
        raise ValueError(f"max_duration {format_duration(limits.max_duration)} is shorter than "
                         f"ready_timeout ({format_duration(ready_timeout)}): the first load "
                         "would never finish; raise it, or lower ready_timeout")


def resolve_limits(preset_limits: LimitsSection, flags: Mapping[str, str | None],
                   environ: Mapping[str, str], *, provider: str, ready_timeout: float
                   ) -> LimitsSection:
    """The limits in force: flag > FLUXDEPLOY_LIMIT_* > preset. Bad values are refused with
    where they came from."""
    values = {"idle": preset_limits.idle, "max_duration": preset_limits.max_duration}
    for key, env_name in ENV_NAMES.items():
        for source, raw in ((FLAG_NAMES[key], flags.get(key)), (env_name, environ.get(env_name))):
            if raw is None or raw == "":
                continue
            try:
                values[key] = parse_duration(raw)
            except ValueError as exc:
                raise FluxdeployError(f"{source}: {exc}", doc="limits") from None
            break
    limits = LimitsSection.of(values["idle"], values["max_duration"])
    try:
        check_limits(limits, provider, ready_timeout)
    except ValueError as exc:
        raise FluxdeployError(f"limits: {exc}", doc="limits") from None
    return limits
