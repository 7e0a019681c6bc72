"""Validate requests and responses against Lambda's OpenAPI description (the contract).

``OpenAPIContract.validate_request`` / ``validate_response`` return a list of violations
(human-readable strings; empty means conforming). openapi-core does the work: it finds the
operation of a path, checks parameters, the Authorization header against the security schemes,
and bodies against their schemas. In strict mode it forbids properties a schema does not
declare (``additional_properties_default_policy="forbid"``), so a misspelt or invented field,
such as ``quantity`` on launch, is caught. Statuses the description does not document are
violations, except 429 and 5xx, which are checked against the generic error envelope from the
description's "Error responses" section (the file documents neither).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import FormatChecker
from openapi_core import Config, OpenAPI
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.exceptions import (
    MissingRequestBodyError,
    SecurityValidationError,
)
from openapi_core.validation.request.validators import (
    V31RequestBodyValidator,
    V31RequestParametersValidator,
    V31RequestSecurityValidator,
)
from openapi_core.validation.response.validators import V31ResponseDataValidator
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from openapi_schema_validator import OAS31Validator

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_NAME = "lambda-cloud-openapi.json"
SERVER = "https://cloud.lambda.ai"  # the description's server: request paths are joined to it
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


def is_ipv4_network(value: object) -> bool:
    """The description's ``ipv4network`` format (a CIDR such as ``203.0.113.7/32``)."""
    if not isinstance(value, str):
        return True
    try:
        ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: dict[str, Any]
    variables: dict[str, str] = field(default_factory=dict)  # the path's {parameters}

    @property
    def operation_id(self) -> str:
        return str(self.spec.get("operationId", f"{self.method} {self.template}"))


class OpenAPIContract:
    """The Lambda Cloud API contract, loaded from the OpenAPI file (checked on loading)."""

    def __init__(self, spec_path: str | os.PathLike[str] | None = None, *,
                 strict: bool = True) -> None:
        self.spec_path = Path(spec_path) if spec_path else default_spec_path()
        self.spec: dict[str, Any] = json.loads(self.spec_path.read_text())
        self.strict = strict
        self.openapi = OpenAPI.from_dict(self.spec, config=Config(server_base_url=SERVER))
        options: dict[str, Any] = {
            "base_url": SERVER, "extra_format_validators": {"ipv4network": is_ipv4_network},
            "forbid_unspecified_additional_properties": strict}
        spec = self.openapi.spec
        self._finder = APICallPathFinder(spec, base_url=SERVER)
        self._security = V31RequestSecurityValidator(spec, **options)
        self._request = [V31RequestParametersValidator(spec, **options),
                         V31RequestBodyValidator(spec, **options)]
        self._response = V31ResponseDataValidator(spec, **options)
        self._generic_error = OAS31Validator(GENERIC_ERROR_SCHEMA, format_checker=FormatChecker())

    def match(self, method: str, path: str) -> Operation | None:
        """The operation for a request path (``/api/v1/...``, query ignored), or None."""
        try:
            found = self._finder.find(method.lower(), SERVER + path.split("?", 1)[0])
        except PathError:
            return None
        template = str(found.path.parts[-1])
        return Operation(method.upper(), template, self.spec["paths"][template][method.lower()],
                         dict(found.path_result.variables))

    def validate_request(self, method: str, path: str, body: Any = NO_BODY, *,
                         headers: dict[str, str] | None = None) -> list[str]:
        """Parameters and body; the Authorization header too when ``headers`` are given."""
        operation = self.match(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the OpenAPI description"]
        where = f"request {operation.operation_id}"
        sent = body is not NO_BODY and body is not None
        request = _request(method, path, json.dumps(body).encode() if sent else None, headers)
        validators = [*([self._security] if headers is not None else []), *self._request]
        problems = [line for validator in validators
                    for error in validator.iter_errors(request) for line in _describe(error, where)]
        if headers is not None and not any("Authorization" in p for p in problems):
            auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
            if not auth.partition(" ")[2].strip():  # openapi-core takes `Bearer ` with no key
                problems.append(f"{where}: no Bearer or Basic Authorization header")
        if sent and operation.spec.get("requestBody") is None:
            problems.append(f"{where}: a body was sent but the operation takes none")
        return problems

    def validate_response(self, method: str, path: str, status: int, body: Any,
                          *, content_type: str | None = "application/json") -> list[str]:
        operation = self.match(method, path)
        if operation is None:
            return [f"{method} {path}: no such operation in the OpenAPI description"]
        where = f"response {operation.operation_id} {status}"
        if content_type is not None and not content_type.startswith("application/json"):
            return [f"{where}: content type {content_type!r} is not application/json"]
        documented = operation.spec.get("responses", {}).get(str(status))
        if documented is None and (status == 429 or status >= 500):
            return [_schema_error(error, where) for error in
                    sorted(self._generic_error.iter_errors(body), key=str)]
        if documented is not None and "content" not in documented:
            return [] if body in (None, NO_BODY) else [f"{where}: a body was not expected"]
        response = MockResponse(json.dumps(None if body is NO_BODY else body).encode(),
                                status_code=status)
        return [line for error in
                self._response.iter_errors(_request(method, path, None, None), response)
                for line in _describe(error, where)]


def _request(method: str, path: str, data: bytes | None, headers: dict[str, str] | None
             ) -> MockRequest:
    path, _, query = path.partition("?")
    args = dict(pair.partition("=")[::2] for pair in query.split("&") if pair)
    return MockRequest(SERVER, method.lower(), path, args=args, headers=headers or {},
                       data=data)


def _describe(error: Exception, where: str) -> list[str]:
    """The violation lines of an openapi-core error (a schema error gives one per problem)."""
    if isinstance(error, SecurityValidationError):
        return [f"{where}: no Bearer or Basic Authorization header"]
    if isinstance(error, MissingRequestBodyError):
        return [f"{where}: the required JSON body is missing"]
    if isinstance(error, ResponseNotFound):
        return [f"{where}: status {error.http_status} is not documented for this operation"]
    cause = error.__cause__
    if isinstance(cause, InvalidSchemaValue):
        return [_schema_error(e, where) for e in sorted(cause.schema_errors, key=str)]
    return [f"{where}: {error}"]


def _schema_error(error: Any, where: str) -> str:
    return f"{where}: {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"


@cache
def shared_contract(strict: bool = True) -> OpenAPIContract:
    """One contract per strictness from the default spec file, loaded once per process."""
    return OpenAPIContract(strict=strict)
