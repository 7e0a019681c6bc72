"""`python -m flux_server.watchdog`: a deployment's idle and lifetime limits, enforced on the
VM itself, so that they hold while the laptop that ran `fluxdeploy up` is closed.

It runs as its own container (`fluxdeploy-<name>-watchdog`, restart unless-stopped, host
network) beside the server, from the same image. A second container rather than a thread in
the server: the Lambda API key stays out of the process that serves the internet, the limit
holds while the server container is replaced, restarting or stuck loading, and `max_duration`
holds even if the server never becomes ready.

Every FLUXDEPLOY_WATCH_INTERVAL_S seconds it reads the server's `/ready` (`activity.idle_s`,
`activity.in_flight`: flux_server/activity.py) and the clock. When a limit has expired it logs
one line with the reason and the figures, removes the legacy account-wide firewall rules an
earlier fluxdeploy recorded for the deployment (older records only), terminates every instance
of the deployment through the Lambda API, retrying with back-off until Lambda answers (a
revoked key is logged, never a silent crash), then deletes the deployment's firewall ruleset
(Lambda refuses while an instance still terminates: it asks a few times, then leaves it to the
next `fluxdeploy status` / `down`). Lambda has no stop: terminate is the only way
to end the bill. The API key comes from LAMBDA_API_KEY in the container's 0600 env file and
is never logged. Only the standard library is used.

Settings (environment): FLUXDEPLOY_WATCH_NAME, FLUXDEPLOY_WATCH_PORT (the server's port on
127.0.0.1), FLUXDEPLOY_WATCH_IDLE_S, FLUXDEPLOY_WATCH_MAX_S (empty: no limit),
FLUXDEPLOY_WATCH_LAUNCHED_AT (epoch seconds), FLUXDEPLOY_WATCH_INSTANCES (ids, comma
separated), FLUXDEPLOY_WATCH_RULES (a JSON list of legacy firewall rule descriptions to
remove), FLUXDEPLOY_WATCH_RULESET (the id of the deployment's firewall ruleset, empty: none),
FLUXDEPLOY_WATCH_INTERVAL_S (default 30), LAMBDA_API_URL, LAMBDA_API_KEY.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from flux_server.tls import loopback_context, serves_https  # standard library only

DEFAULT_API_URL = "https://cloud.lambda.ai/api/v1"
PREFIX = "fluxdeploy-watchdog:"
GONE = "global/object-does-not-exist"
IN_USE = "firewall-rulesets/firewall-ruleset-in-use"
MAX_BACKOFF_S = 300.0
RULESET_ATTEMPTS = 6
RULESET_DELAY_S = 10.0  # between refusals while the instances terminate


@dataclass(frozen=True)
class WatchSettings:
    """What to watch and what to end when a limit expires."""

    name: str
    port: int
    idle_s: float | None
    max_s: float | None
    launched_at: float
    instances: tuple[str, ...]
    rules: tuple[str, ...] = ()
    interval_s: float = 30.0
    api_url: str = DEFAULT_API_URL
    api_key: str = field(default="", repr=False)
    ruleset: str = ""  # the deployment's firewall ruleset id ("" for older records)
    https: bool = False  # the server speaks HTTPS (FLUX_SERVER_TLS=1): read /ready so

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WatchSettings:
        def seconds(name: str) -> float | None:
            raw = env.get(name, "").strip()
            return float(raw) if raw else None

        key = env.get("LAMBDA_API_KEY", "").strip()
        if not key:
            raise SystemExit(f"{PREFIX} LAMBDA_API_KEY is not set (it comes in the container's "
                             "0600 env file): nothing could be terminated")
        return cls(
            name=env.get("FLUXDEPLOY_WATCH_NAME", "?"),
            port=int(env.get("FLUXDEPLOY_WATCH_PORT", "8000")),
            idle_s=seconds("FLUXDEPLOY_WATCH_IDLE_S"),
            max_s=seconds("FLUXDEPLOY_WATCH_MAX_S"),
            launched_at=float(env.get("FLUXDEPLOY_WATCH_LAUNCHED_AT") or time.time()),
            instances=tuple(i for i in env.get("FLUXDEPLOY_WATCH_INSTANCES", "").split(",")
                            if i),
            rules=tuple(json.loads(env.get("FLUXDEPLOY_WATCH_RULES") or "[]")),
            interval_s=float(env.get("FLUXDEPLOY_WATCH_INTERVAL_S") or 30.0),
            api_url=(env.get("LAMBDA_API_URL") or DEFAULT_API_URL).rstrip("/"),
            api_key=key,
            ruleset=env.get("FLUXDEPLOY_WATCH_RULESET", "").strip(),
            https=serves_https(env),
        )


@dataclass(frozen=True)
class Expiry:
    """A limit that has expired: which, and the figures that say so."""

    reason: str  # "idle" or "max_duration"
    detail: str


def expiry(settings: WatchSettings, now: float, activity: Mapping[str, Any] | None
           ) -> Expiry | None:
    """The limit that has expired now, if any. Pure. Idle needs the server's own word
    (`activity` from /ready, None when it did not answer): an unreachable server is never
    taken for an idle one; max_duration needs only the clock."""
    if settings.max_s is not None and now - settings.launched_at >= settings.max_s:
        return Expiry("max_duration", f"up {now - settings.launched_at:.0f} s >= "
                                      f"max_duration {settings.max_s:.0f} s")
    if settings.idle_s is None or not activity:
        return None
    idle, in_flight = activity.get("idle_s"), activity.get("in_flight") or 0
    if idle is not None and not in_flight and float(idle) >= settings.idle_s:
        return Expiry("idle", f"no generation request for {float(idle):.0f} s >= idle limit "
                              f"{settings.idle_s:.0f} s ({activity.get('requests', 0)} "
                              "request(s) since start)")
    return None


# ---------------------------------------------------------------- the Lambda API


class ApiError(Exception):
    """A Lambda API call that did not succeed: HTTP status (0: no answer) and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}".strip())
        self.status, self.code = status, code


def call_api(settings: WatchSettings, method: str, path: str, body: Any = None,
             timeout: float = 30.0) -> Any:
    """One Lambda API call; returns `data`, or raises ApiError (the key is never in it)."""
    request = urllib.request.Request(
        settings.api_url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {settings.api_key}", "Accept": "application/json",
                 "User-Agent": "fluxdeploy-watchdog",
                 **({"Content-Type": "application/json"} if body is not None else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}").get("data")
    except urllib.error.HTTPError as exc:
        try:
            error = json.loads(exc.read() or b"{}").get("error") or {}
        except ValueError:
            error = {}
        raise ApiError(exc.code, str(error.get("code", "")), str(error.get("message", ""))
                       ) from None
    except (OSError, ValueError) as exc:  # refused, reset, timeout, a body that is not JSON
        raise ApiError(0, type(exc).__name__, str(exc)) from None


def end_deployment(settings: WatchSettings, log: Callable[[str], None],
                   sleep: Callable[[float], None] = time.sleep,
                   api: Callable[..., Any] = call_api) -> None:
    """Remove the legacy firewall rules, then terminate the instances, retried with back-off
    (up to 5 min between tries) until Lambda has done both; then delete the ruleset."""
    attempt = 0
    while True:
        try:
            if settings.rules:
                rules = api(settings, "GET", "/firewall-rules") or []
                kept = [r for r in rules if r.get("description") not in settings.rules]
                if len(kept) != len(rules):
                    api(settings, "PUT", "/firewall-rules", {"data": kept})
                    log(f"{PREFIX} removed {len(rules) - len(kept)} firewall rule(s)")
            try:
                api(settings, "POST", "/instance-operations/terminate",
                    {"instance_ids": list(settings.instances)})
            except ApiError as exc:
                if exc.code != GONE:
                    raise
                log(f"{PREFIX} an instance was already gone; terminating the others one by one")
                _terminate_each(settings, api)
            log(f"{PREFIX} terminated {', '.join(settings.instances)}: billing stops")
            break
        except ApiError as exc:
            attempt += 1
            wait = min(MAX_BACKOFF_S, 5.0 * 2 ** min(attempt - 1, 6))
            hint = (" (the API key was revoked or is wrong: create a new key and run "
                    "`fluxdeploy up` again, or terminate the instance in the dashboard)"
                    if exc.status in (401, 403) else "")
            log(f"{PREFIX} Lambda API error: {exc}{hint}; retrying in {wait:.0f} s "
                f"(attempt {attempt})")
            sleep(wait)
    if settings.ruleset:
        delete_ruleset(settings, log, sleep, api)


def delete_ruleset(settings: WatchSettings, log: Callable[[str], None],
                   sleep: Callable[[float], None] = time.sleep,
                   api: Callable[..., Any] = call_api) -> bool:
    """Delete the deployment's ruleset once its instances are terminated; Lambda refuses
    while one still terminates, so ask a few times. Never raises: a ruleset costs nothing,
    and the next `fluxdeploy status` / `down` deletes what is left. Whether it is gone."""
    for attempt in range(1, RULESET_ATTEMPTS + 1):
        try:
            api(settings, "DELETE", f"/firewall-rulesets/{settings.ruleset}")
            log(f"{PREFIX} deleted firewall ruleset {settings.ruleset}")
            return True
        except ApiError as exc:
            if exc.code == GONE:
                return True
            if attempt == RULESET_ATTEMPTS:
                log(f"{PREFIX} could not delete firewall ruleset {settings.ruleset} ({exc}); "
                    "it costs nothing: `fluxdeploy down` deletes it")
                return False
            why = "an instance still terminates" if exc.code == IN_USE else str(exc)
            log(f"{PREFIX} firewall ruleset {settings.ruleset} not deleted yet ({why}); "
                f"asking again in {RULESET_DELAY_S:.0f} s")
            sleep(RULESET_DELAY_S)
    return False


def _terminate_each(settings: WatchSettings, api: Callable[..., Any]) -> None:
    for instance_id in settings.instances:
        try:
            api(settings, "POST", "/instance-operations/terminate",
                {"instance_ids": [instance_id]})
        except ApiError as exc:
            if exc.code != GONE:
                raise


# ---------------------------------------------------------------- the loop


def read_activity(settings: WatchSettings) -> dict[str, Any] | None:
    """`activity` of the server's /ready, or None when it does not answer with one."""
    url = f"{'https' if settings.https else 'http'}://127.0.0.1:{settings.port}/ready"
    try:
        with urllib.request.urlopen(url, timeout=5, context=loopback_context()) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while loading still carries the body
        try:
            body = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    activity = body.get("activity") if isinstance(body, dict) else None
    return activity if isinstance(activity, dict) else None


def watch(settings: WatchSettings, log: Callable[[str], None], *,
          clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
          activity: Callable[[WatchSettings], dict[str, Any] | None] = read_activity,
          api: Callable[..., Any] = call_api) -> Expiry:
    """Check every interval until a limit expires; then end the deployment. Returns why."""
    log(f"{PREFIX} watching deployment {settings.name}: {describe(settings)}; "
        f"instances {', '.join(settings.instances)}")
    while True:
        found = expiry(settings, clock(), activity(settings))
        if found is not None:
            log(f"{PREFIX} limit reached: {found.reason}: {found.detail}; terminating "
                f"deployment {settings.name} ({', '.join(settings.instances)})")
            end_deployment(settings, log, sleep, api)
            return found
        sleep(settings.interval_s)


def describe(settings: WatchSettings) -> str:
    idle = f"{settings.idle_s:.0f} s" if settings.idle_s is not None else "off"
    most = f"{settings.max_s:.0f} s" if settings.max_s is not None else "off"
    return f"idle limit {idle}, max_duration {most}, checked every {settings.interval_s:.0f} s"


def _stop(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(env: Mapping[str, str] = os.environ) -> None:
    """Watch until a limit expires and the deployment is ended, then stay (the VM goes)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)  # whatever was inherited: `docker stop` ends it at once

    def log(line: str) -> None:
        print(line.replace(settings.api_key, "***"), flush=True)

    settings = WatchSettings.from_env(env)
    watch(settings, log)
    while True:  # terminated: the VM is going away; a restart would only terminate again
        time.sleep(3600)


if __name__ == "__main__":
    main()
