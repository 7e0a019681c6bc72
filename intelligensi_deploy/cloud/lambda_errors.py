"""Lambda's error answers as typed exceptions, mapped by ``error.code`` only (never by the
message); the API key is scrubbed from anything Lambda echoes back."""

from __future__ import annotations

from typing import Any

from intelligensi_deploy.errors import FluxdeployError

JSON = Any
API_KEYS_PAGE = "https://cloud.lambda.ai/api-keys"

class LambdaAPIError(FluxdeployError):
    """An error answered by the Lambda Cloud API (or no answer at all)."""

    code: str | None = None
    default_fix: str = "Read the message above; Lambda's own suggestion is included when given."
    doc: str | None = "lambda-api"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 suggestion: str | None = None, fix: str | None = None,
                 doc: str | None = None) -> None:
        super().__init__(message, fix=fix or self.default_fix, doc=doc or type(self).doc)
        if code is not None:
            self.code = code
        self.status = status
        self.suggestion = suggestion


class InvalidAPIKey(LambdaAPIError):
    code = "global/invalid-api-key"
    default_fix = (f"Create a new key at {API_KEYS_PAGE} and export it as LAMBDA_API_KEY "
                   "(check for a stray space or a revoked key).")
    doc = "lambda-api-key"


class InvalidParameters(LambdaAPIError):
    code = "global/invalid-parameters"
    default_fix = ("Check the preset's Lambda fields (instance type, region, SSH key name, "
                   "file system name) against `fluxdeploy capacity`.")


class InsufficientCapacity(LambdaAPIError):
    code = "instance-operations/launch/insufficient-capacity"
    default_fix = ("Try another region or instance type (`fluxdeploy capacity` shows what is "
                   "free now), or try again later.")
    doc = "lambda-capacity"


class QuotaExceeded(LambdaAPIError):
    code = "global/quota-exceeded"
    default_fix = ("Terminate instances you no longer need (`fluxdeploy status`), or ask Lambda "
                   "Support to raise your quota.")


class ObjectNotFound(LambdaAPIError):
    code = "global/object-does-not-exist"
    default_fix = ("Check the name or id: it may have been deleted, or belong to another "
                   "account or region.")


class FileSystemInWrongRegion(LambdaAPIError):
    code = "instance-operations/launch/file-system-in-wrong-region"
    default_fix = ("A Lambda file system can only be attached in its own region: launch in that "
                   "region, or use a file system name that lives in the launch region.")


class AccountInactive(LambdaAPIError):
    code = "global/account-inactive"
    default_fix = ("Verify your email address and add a valid payment method in the Lambda "
                   "Cloud dashboard; contact Lambda Support if it persists.")


class FirewallRulesetInUse(LambdaAPIError):
    code = "firewall-rulesets/firewall-ruleset-in-use"
    default_fix = ("Terminate every instance that uses the ruleset (`fluxdeploy down`), wait "
                   "until Lambda shows them terminated, then run `fluxdeploy down` again.")
    doc = "firewall-rulesets"


class FileSystemInUse(LambdaAPIError):
    code = "filesystems/filesystem-in-use"
    default_fix = ("Terminate the instances that mount it (`fluxdeploy down`), wait until "
                   "Lambda shows them terminated, then delete it again.")
    doc = "file-systems"


class LambdaUnavailable(LambdaAPIError):
    """No usable answer after retries: rate limited, server errors or network failures."""

    default_fix = ("Check your network and https://status.lambda.ai, then run the command again "
                   "(it is safe to repeat).")


ERRORS_BY_CODE: dict[str, type[LambdaAPIError]] = {
    cls.code: cls for cls in (InvalidAPIKey, InvalidParameters, InsufficientCapacity,
                              QuotaExceeded, ObjectNotFound, FileSystemInWrongRegion,
                              AccountInactive, FirewallRulesetInUse, FileSystemInUse)
    if cls.code
}

WHAT_WENT_WRONG: dict[str, str] = {
    "global/invalid-api-key": "Lambda rejected the API key (invalid, expired or deleted)",
    "global/invalid-parameters": "Lambda rejected the request's parameters",
    "instance-operations/launch/insufficient-capacity": "Lambda has no free capacity for this "
                                                         "instance type in this region",
    "global/quota-exceeded": "Your Lambda account's quota is exhausted",
    "global/object-does-not-exist": "Lambda could not find the object",
    "instance-operations/launch/file-system-in-wrong-region": "The file system is in a "
                                                               "different region than the launch",
    "global/account-inactive": "Your Lambda account is inactive",
    "firewall-rulesets/firewall-ruleset-in-use": "The firewall ruleset is still attached to "
                                                 "an instance that is not terminated yet",
    "filesystems/filesystem-in-use": "The file system is still mounted by an instance that "
                                     "is not terminated yet",
}


def error_from_response(status: int, body: JSON, operation: str, *, secret: str = ""
                        ) -> LambdaAPIError:
    """The typed error for an error answer, branching on ``error.code`` only."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("code"), str):
        return LambdaAPIError(f"{operation}: Lambda answered HTTP {status} without an error "
                              "object.", status=status)
    code: str = error["code"]
    api_message = scrub(str(error.get("message", "")), secret)
    suggestion = scrub(str(error["suggestion"]), secret) if error.get("suggestion") else None
    what = WHAT_WENT_WRONG.get(code, f"Lambda answered error {code}")
    message = f"{operation}: {what} (HTTP {status}, {code})."
    if api_message:
        message += f" Lambda says: {api_message}"
    if suggestion:
        message += f" Suggestion: {suggestion}"
    cls = ERRORS_BY_CODE.get(code, LambdaAPIError)
    return cls(message, code=code, status=status, suggestion=suggestion)


def scrub(text: str, secret: str) -> str:
    """`text` with the API key replaced by ***."""
    return text.replace(secret, "***") if secret else text
