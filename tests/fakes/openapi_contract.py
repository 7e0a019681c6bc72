"""Validate requests and responses against Lambda's OpenAPI description (the contract).

``OpenAPIContract.validate_request`` / ``validate_response`` return a list of violations
(human-readable strings; empty means conforming). Object schemas are made strict
(``additionalProperties: false`` where the description leaves it open) so that a misspelt or
invented field, such as ``quantity`` on launch, is caught. Statuses the description does not
document are violations, except 429 and 5xx, which are checked against the generic error
envelope from the description's "Error responses" section (the file documents neither).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from jsonschema import FormatChecker
from openapi_schema_validator import OAS31Validator

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_NAME = "lambda-cloud-openapi.json"
NO_BODY: Any = object()

GENERIC_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "suggestion": {"type": "string"}},
    }},
}


def default_spec_path() -> Path:
    """``$LAMBDA_OPENAPI_SPEC``, else ``../shared/`` beside the repository, else ``shared/``."""
    env = os.environ.get("LAMBDA_OPENAPI_SPEC")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / SPEC_NAME, REPO_ROOT / "shared" / SPEC_NAME]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{SPEC_NAME} not found in: " + ", ".join(map(str, candidates)))


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    @checker.checks("ipv4network", raises=ValueError)  # type: ignore[untyped-decorator]
    def is_ipv4_network(value: object) -> bool:
        if not isinstance(value, str):
            return True
        ipaddress.IPv4Network(value, strict=False)
        return True

    return checker


def make_strict(schema: Any) -> Any:
    """A copy where every object schema with ``properties`` forbids unknown properties."""
    if isinstance(schema, list):
        return [make_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: make_strict(value) for key, value in schema.items()}
    if "properties" in strict and "additionalProperties" not in strict:
        strict["additionalProperties"] = False
    return strict


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: dict[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.template}"))


class OpenAPIContract:
    """The Lambda Cloud API contract, loaded from the OpenAPI file."""

    def __init__(self, spec_path: str | os.PathLike[str] | None = None, *,
                 strict: bool = True) -> None:
        self.spec_path = Path(spec_path) if spec_path else default_spec_path()
        self.spec: dict[str, Any] = json.loads(self.spec_path.read_text())
        self.strict = strict
        self._components = (make_strict(self.spec["components"]) if strict
                            else self.spec["components"])
        self._format_checker = _format_checker()
        self._validators: dict[int, OAS31Validator] = {}

    @cached_property
    def _routes(self) -> list[tuple[re.Pattern[str], str]]:
        routes = []
        for template in self.spec["paths"]:
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            routes.append((re.compile(f"^{pattern}$"), template))
        # literal segments beat parameters: /firewall-rulesets/global before /{id}
        routes.sort(key=lambda route: route[1].count("{"))
        return routes

    def match(self, method: str, path: str) -> Operation | None:
        """The operation for a request path (``/api/v1/...``, query ignored), or None."""
        path = path.split("?", 1)[0]
        for pattern, template in self._routes:
            if pattern.match(path):
                operation = self.spec["paths"][template].get(method.lower())
                if operation is not None:
                    return Operation(method.upper(), template, operation)
        return None

    def validate_request(self, method: str, path: str, body: Any = NO_BODY, *,
                         headers: dict[str, str] | None = None) -> list[str]:
        operation = self.match(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the OpenAPI description"]
        where = f"request {operation.operation_id}"
        problems = []
        if headers is not None:
            auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
            if not re.match(r"^(Bearer|Basic) \S+$", auth):
                problems.append(f"{where}: no Bearer or Basic Authorization header")
        request_body = operation.spec.get("requestBody")
        if request_body is None:
            if body is not NO_BODY and body is not None:
                problems.append(f"{where}: a body was sent but the operation takes none")
            return problems
        if body is NO_BODY or body is None:
            if request_body.get("required"):
                problems.append(f"{where}: the required JSON body is missing")
            return problems
        schema = request_body["content"]["application/json"]["schema"]
        return problems + self._errors(schema, body, where)

    def validate_response(self, method: str, path: str, status: int, body: Any,
                          *, content_type: str | None = "application/json") -> list[str]:
        operation = self.match(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the OpenAPI description"]
        where = f"response {operation.operation_id} {status}"
        if content_type is not None and not content_type.startswith("application/json"):
            return [f"{where}: content type {content_type!r} is not application/json"]
        documented = operation.spec.get("responses", {}).get(str(status))
        if documented is None:
            if status == 429 or status >= 500:
                return self._errors(GENERIC_ERROR_SCHEMA, body, where)
            return [f"{where}: status {status} is not documented for this operation"]
        schema = documented.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return [] if body in (None, NO_BODY) else [f"{where}: a body was not expected"]
        return self._errors(schema, body, where)

    def _validator(self, schema: dict[str, Any]) -> OAS31Validator:
        """A validator for ``schema`` (a part of the spec), with ``#/components`` resolvable."""
        key = id(schema)  # schemas are parts of self.spec or module constants: ids are stable
        if key not in self._validators:
            rooted = {**(make_strict(schema) if self.strict else schema),
                      "components": self._components}
            self._validators[key] = OAS31Validator(rooted, format_checker=self._format_checker)
        return self._validators[key]

    def _errors(self, schema: dict[str, Any], instance: Any, where: str) -> list[str]:
        validator = self._validator(schema)
        return [f"{where}: {'/'.join(map(str, error.absolute_path)) or '<root>'}: "
                f"{error.message}"
                for error in sorted(validator.iter_errors(instance), key=str)]


@cache
def shared_contract(strict: bool = True) -> OpenAPIContract:
    """One contract per strictness from the default spec file, loaded once per process."""
    return OpenAPIContract(strict=strict)
