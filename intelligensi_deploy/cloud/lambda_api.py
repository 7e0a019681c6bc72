"""Lambda Cloud API client (sync, httpx), faithful to Lambda's OpenAPI description v1.10.0.

Every success is ``{"data": ...}``; every error ``{"error": {"code", "message", "suggestion"?}}``.
Errors are mapped to typed exceptions by ``code`` only. Transient failures (HTTP 429, 5xx,
connection errors) are retried with exponential backoff and jitter, honouring ``Retry-After``
(the policy is a ``tenacity.Retrying``; its ``sleep`` is the client's, injectable for tests).
Launches are spaced at least ``LAUNCH_INTERVAL_S`` apart (Lambda's limit). The API key never
appears in an exception, a repr or a log line.
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from tenacity import (
    Future,
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
)

from intelligensi_deploy.cloud.lambda_errors import (
    API_KEYS_PAGE,
    InvalidAPIKey,
    LambdaAPIError,
    LambdaUnavailable,
    error_from_response,
    scrub,
)
from intelligensi_deploy.cloud.lambda_types import (
    FileSystem,
    FirewallRule,
    FirewallRuleset,
    Instance,
    InstanceType,
    SSHKey,
)
from intelligensi_deploy.errors import FluxdeployError

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_URL = "https://cloud.lambda.ai/api/v1"
LAUNCH_INTERVAL_S = 12.0
MAX_RETRY_AFTER_S = 60.0
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0
USER_AGENT = "fluxdeploy"

log = logging.getLogger(__name__)

JSON = Any


# --------------------------------------------------------------------------- retry policy


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def backoff_delay(attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: attempt 0 -> 0.5..1 s, 1 -> 1..2 s, capped."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** attempt))
    return rng.uniform(ceiling / 2, ceiling)


def is_transient_status(status: int) -> bool:
    return status == 429 or status >= 500


# --------------------------------------------------------------------------- client


class LambdaClient:
    """Thin typed client over the Lambda Cloud REST API."""

    def __init__(self, api_key: str, base_url: str = DEFAULT_URL, *,
                 transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 max_retries: int = 5, timeout: float = 30.0,
                 rng: random.Random | None = None) -> None:
        if not api_key or any(ch.isspace() for ch in api_key):
            raise InvalidAPIKey("The Lambda API key is empty or contains whitespace.")
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self._sleep = sleep
        self._clock = clock
        self.max_retries = max_retries
        self._rng = rng or random.Random()
        self._last_launch_at: float | None = None
        self._http = httpx.Client(base_url=self.base_url, transport=transport, timeout=timeout,
                                  headers={"User-Agent": USER_AGENT,
                                           "Accept": "application/json"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> LambdaClient:
        """A client from ``LAMBDA_API_KEY`` and optional ``LAMBDA_API_URL``."""
        env = os.environ if env is None else env
        key = env.get("LAMBDA_API_KEY", "").strip()
        if not key:
            raise FluxdeployError(
                "LAMBDA_API_KEY is not set: fluxdeploy needs a Lambda Cloud API key to manage "
                "instances.",
                fix=f"Create a key at {API_KEYS_PAGE}, then `export LAMBDA_API_KEY=...` "
                    "(never put it in a preset file).",
                doc="lambda-api-key")
        return cls(key, env.get("LAMBDA_API_URL") or DEFAULT_URL, **kwargs)

    def __repr__(self) -> str:
        return f"LambdaClient(base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def pause(self, seconds: float) -> None:
        """Wait as this client waits between retries (its injectable ``sleep``)."""
        self._sleep(seconds)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- endpoints

    def instance_types(self) -> list[InstanceType]:
        data = self._call("GET", "/instance-types", "Listing instance types")
        return [InstanceType.from_api(item["instance_type"],
                                      item.get("regions_with_capacity_available", ()))
                for item in data.values()]

    def launch(self, region: str, instance_type: str, ssh_key_name: str, *,
               name: str | None = None, file_system_names: Sequence[str] | None = None,
               image: Mapping[str, str] | None = None, user_data: str | None = None,
               tags: Mapping[str, str] | None = None,
               firewall_rulesets: Sequence[str] | None = None) -> list[str]:
        """Launch one instance; returns the new instance ids.

        ``image`` is ``{"id": ...}`` or ``{"family": ...}``; ``tags`` a key/value mapping;
        ``firewall_rulesets`` a list of ruleset ids.
        """
        body: dict[str, Any] = {"region_name": region, "instance_type_name": instance_type,
                                "ssh_key_names": [ssh_key_name]}
        if name is not None:
            body["name"] = name
        if file_system_names:
            body["file_system_names"] = list(file_system_names)
        if image is not None:
            body["image"] = dict(image)
        if user_data is not None:
            body["user_data"] = user_data
        if tags:
            body["tags"] = [{"key": k, "value": v} for k, v in tags.items()]
        if firewall_rulesets:
            body["firewall_rulesets"] = [{"id": rid} for rid in firewall_rulesets]
        data = self._call("POST", "/instance-operations/launch",
                          f"Launching {instance_type} in {region}", json=body,
                          idempotent=False, before_attempt=self._space_launches)
        return list(data["instance_ids"])

    def list_instances(self) -> list[Instance]:
        data = self._call("GET", "/instances", "Listing instances")
        return [Instance.from_api(item) for item in data]

    def get_instance(self, instance_id: str) -> Instance:
        data = self._call("GET", f"/instances/{quote(instance_id, safe='')}",
                          f"Reading instance {instance_id}")
        return Instance.from_api(data)

    def terminate(self, instance_ids: Sequence[str]) -> list[Instance]:
        data = self._call("POST", "/instance-operations/terminate",
                          f"Terminating {', '.join(instance_ids)}",
                          json={"instance_ids": list(instance_ids)})
        return [Instance.from_api(item) for item in data["terminated_instances"]]

    def ssh_keys(self) -> list[SSHKey]:
        data = self._call("GET", "/ssh-keys", "Listing SSH keys")
        return [SSHKey.from_api(item) for item in data]

    def add_ssh_key(self, name: str, public_key: str) -> SSHKey:
        data = self._call("POST", "/ssh-keys", f"Adding SSH key {name!r}",
                          json={"name": name, "public_key": public_key.strip()},
                          idempotent=False)
        return SSHKey.from_api(data)

    def delete_ssh_key(self, key_id: str) -> None:
        self._call("DELETE", f"/ssh-keys/{quote(key_id, safe='')}", f"Deleting SSH key {key_id}")

    def file_systems(self) -> list[FileSystem]:
        data = self._call("GET", "/file-systems", "Listing file systems")
        return [FileSystem.from_api(item) for item in data]

    def create_file_system(self, name: str, region: str) -> FileSystem:
        data = self._call("POST", "/filesystems", f"Creating file system {name!r} in {region}",
                          json={"name": name, "region": region}, idempotent=False)
        return FileSystem.from_api(data)

    def delete_file_system(self, fs_id: str) -> None:
        """Delete a file system (Lambda refuses while an instance mounts it)."""
        self._call("DELETE", f"/filesystems/{quote(fs_id, safe='')}",
                   f"Deleting file system {fs_id}")

    def firewall_rules(self) -> list[FirewallRule]:
        data = self._call("GET", "/firewall-rules", "Reading firewall rules")
        return [FirewallRule.from_api(item) for item in data]

    def set_firewall_rules(self, rules: Sequence[FirewallRule]) -> list[FirewallRule]:
        """Replace the account's whole inbound rule list (read, merge, then write)."""
        data = self._call("PUT", "/firewall-rules", "Writing firewall rules",
                          json={"data": [rule.to_api() for rule in rules]})
        return [FirewallRule.from_api(item) for item in data]

    def firewall_rulesets(self) -> list[FirewallRuleset]:
        data = self._call("GET", "/firewall-rulesets", "Listing firewall rulesets")
        return [FirewallRuleset.from_api(item) for item in data]

    def get_firewall_ruleset(self, ruleset_id: str) -> FirewallRuleset:
        data = self._call("GET", f"/firewall-rulesets/{quote(ruleset_id, safe='')}",
                          f"Reading firewall ruleset {ruleset_id}")
        return FirewallRuleset.from_api(data)

    def create_firewall_ruleset(self, name: str, region: str, rules: Sequence[FirewallRule]
                                ) -> FirewallRuleset:
        """A new ruleset in ``region`` (it applies only to instances launched with it)."""
        data = self._call("POST", "/firewall-rulesets",
                          f"Creating firewall ruleset {name!r} in {region}",
                          json={"name": name, "region": region,
                                "rules": [rule.to_api() for rule in rules]},
                          idempotent=False)
        return FirewallRuleset.from_api(data)

    def update_firewall_ruleset(self, ruleset_id: str, rules: Sequence[FirewallRule]
                                ) -> FirewallRuleset:
        """Replace the rules of one ruleset (its instances only; the name is kept)."""
        data = self._call("PATCH", f"/firewall-rulesets/{quote(ruleset_id, safe='')}",
                          f"Updating firewall ruleset {ruleset_id}",
                          json={"rules": [rule.to_api() for rule in rules]})
        return FirewallRuleset.from_api(data)

    def delete_firewall_ruleset(self, ruleset_id: str) -> None:
        """Delete one ruleset; Lambda refuses (FirewallRulesetInUse) while an instance that
        is not terminated uses it."""
        self._call("DELETE", f"/firewall-rulesets/{quote(ruleset_id, safe='')}",
                   f"Deleting firewall ruleset {ruleset_id}")

    # ----------------------------------------------------------------- transport

    def _space_launches(self) -> None:
        """Wait so that two launch requests are at least LAUNCH_INTERVAL_S apart."""
        if self._last_launch_at is not None:
            wait = LAUNCH_INTERVAL_S - (self._clock() - self._last_launch_at)
            if wait > 0:
                self._sleep(wait)
        self._last_launch_at = self._clock()

    def _call(self, method: str, path: str, operation: str, *, json: JSON = None,
              idempotent: bool = True,
              before_attempt: Callable[[], None] | None = None) -> JSON:
        """One API operation with retries; returns the ``data`` payload or raises."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            retry=retry_if_exception_type(_Transient),
            wait=self._wait_before_retry,
            sleep=self._sleep,
            before_sleep=lambda state: log.info("%s: %s; retrying in %.1f s", operation,
                                                _transient(state).problem, state.upcoming_sleep))
        try:
            return retrying(self._attempt, method, path, operation, json, idempotent,
                            before_attempt)
        except RetryError as exc:
            last = _transient(exc.last_attempt)
            raise LambdaUnavailable(
                f"{operation}: Lambda did not answer successfully after {self.max_retries + 1} "
                f"attempts (last: {last.problem}).", status=None) from None

    def _attempt(self, method: str, path: str, operation: str, json: JSON, idempotent: bool,
                 before_attempt: Callable[[], None] | None) -> JSON:
        """One request: the ``data`` payload, a typed error, or ``_Transient`` (try again)."""
        if before_attempt is not None:
            before_attempt()
        try:
            response = self._http.request(
                method, self.base_url + path, json=json,
                headers={"Authorization": f"Bearer {self._api_key}"})
        except httpx.TransportError as exc:
            sent = not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
            problem = f"{type(exc).__name__}: {scrub(str(exc), self._api_key)}"
            if sent and not idempotent:
                raise self._maybe_done(operation, problem) from None
            raise _Transient(problem) from None
        body = _json_or_none(response)
        if response.is_success:
            if not isinstance(body, dict) or "data" not in body:
                raise LambdaAPIError(f"{operation}: Lambda answered HTTP "
                                     f"{response.status_code} without a data object.",
                                     status=response.status_code)
            return body["data"]
        if not is_transient_status(response.status_code):
            raise error_from_response(response.status_code, body, operation,
                                      secret=self._api_key)
        problem = f"HTTP {response.status_code}"
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            problem += f" ({body['error'].get('code', '?')})"
        if response.status_code >= 500 and not idempotent:
            raise self._maybe_done(operation, problem)
        hinted = retry_after_seconds(response.headers.get("Retry-After"))
        if hinted is not None and hinted > MAX_RETRY_AFTER_S:
            raise LambdaUnavailable(
                f"{operation}: Lambda is rate limiting this account and asks to wait "
                f"{hinted:.0f} s.", status=response.status_code,
                fix="Wait that long, then run the command again.")
        raise _Transient(problem, retry_after=hinted)

    def _wait_before_retry(self, state: RetryCallState) -> float:
        """The server's ``Retry-After`` when it sent one, else backoff with jitter."""
        hinted = _transient(state).retry_after
        if hinted is not None:
            return hinted
        return backoff_delay(state.attempt_number - 1, self._rng)

    def _maybe_done(self, operation: str, problem: str) -> LambdaUnavailable:
        return LambdaUnavailable(
            f"{operation}: the request reached Lambda but no answer came back ({problem}); "
            "it may or may not have been carried out, so it was not repeated.",
            fix="Run `fluxdeploy status` (or check the Lambda dashboard) before trying again.")


class _Transient(Exception):
    """A failed attempt worth repeating: what went wrong, and the server's ``Retry-After``."""

    def __init__(self, problem: str, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.retry_after = retry_after


def _transient(state: RetryCallState | Future) -> _Transient:
    """The ``_Transient`` a failed attempt raised (from a retry state or its outcome)."""
    outcome = state.outcome if isinstance(state, RetryCallState) else state
    assert outcome is not None
    error = outcome.exception()
    assert isinstance(error, _Transient)
    return error


def _json_or_none(response: httpx.Response) -> JSON:
    try:
        return response.json()
    except ValueError:
        return None
