"""Every error tokbill raises, in one tree.

    TokbillError
    ├── ConfigurationError         a setting is missing or malformed
    ├── TemplateError              a template is invalid (file, line, field)
    ├── LagoError                  a call to Lago did not succeed
    │   ├── LagoConnectionError    no HTTP response at all
    │   │   └── LagoTimeoutError   the request outlived its timeout
    │   └── LagoStatusError        Lago answered with an error status
    │       ├── BadRequestError        400
    │       ├── AuthenticationError    401
    │       ├── PermissionDeniedError  403
    │       ├── NotFoundError          404
    │       ├── NotAllowedError        405 (e.g. no_active_subscription)
    │       ├── UnprocessableError     422 (validation_errors)
    │       ├── RateLimitError         429
    │       └── ServerError            5xx
    ├── SyncError                  reconciling a template failed
    │   ├── BlockedError           a safety rule stopped the change
    │   └── DriftError             Lago does not match after an apply
    └── UsageError                 current usage could not be served

Messages are sentences meant for a person; the attributes carry the same facts
for code. No message ever contains the API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BlockedError",
    "ConfigurationError",
    "DriftError",
    "LagoConnectionError",
    "LagoError",
    "LagoStatusError",
    "LagoTimeoutError",
    "NotAllowedError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "SyncError",
    "TemplateError",
    "TokbillError",
    "UnprocessableError",
    "UsageError",
    "status_error",
]


class TokbillError(Exception):
    """The base of every error tokbill raises on purpose."""


class ConfigurationError(TokbillError):
    """A connection setting or option is missing or malformed."""


class TemplateError(TokbillError):
    """A pricing template is invalid.

    ``problems`` lists every problem found, each already located as
    ``file:line: field.path: what is wrong``; the message joins them.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class LagoError(TokbillError):
    """A request to Lago did not produce a successful response."""

    def __init__(self, message: str, *, method: str, path: str) -> None:
        super().__init__(message)
        self.method = method
        """The HTTP method of the failed request."""
        self.path = path
        """The request path, without host or query string."""


class LagoConnectionError(LagoError):
    """The request got no HTTP response: refused, reset or unresolvable."""

    def __init__(
        self, message: str, *, method: str, path: str, request_sent: bool = True
    ) -> None:
        super().__init__(message, method=method, path=path)
        self.request_sent = request_sent
        """False when the connection failed before the request left, so a
        retry cannot apply a write twice."""


class LagoTimeoutError(LagoConnectionError):
    """The request outlived its timeout; Lago may or may not have applied it."""


class LagoStatusError(LagoError):
    """Lago answered with an error status.

    The message reads like ``POST /api/v1/plans returned 422 Unprocessable
    Entity (code validation_errors): properties: invalid_package_size.``
    """

    def __init__(
        self,
        *,
        method: str,
        path: str,
        status_code: int,
        reason: str,
        body: Mapping[str, Any] | None,
    ) -> None:
        self.status_code = status_code
        """The HTTP status Lago answered with."""
        self.body: Mapping[str, Any] = body or {}
        """The parsed JSON error body, or an empty mapping."""
        self.code: str | None = _string_or_none(self.body.get("code"))
        """Lago's error code, such as ``plan_not_found``."""
        self.error_details: Any = self.body.get("error_details")
        """Lago's ``error_details``: field to codes, or batch index to those."""
        message = f"{method} {path} returned {status_code} {reason}"
        if self.code:
            message += f" (code {self.code})"
        details = describe_error_details(self.error_details) or _explanation(
            self.body.get("error"), reason
        )
        message += f": {details.rstrip('.')}." if details else "."
        super().__init__(message, method=method, path=path)


class BadRequestError(LagoStatusError):
    """HTTP 400: the request body lacked its root key or was malformed."""


class AuthenticationError(LagoStatusError):
    """HTTP 401: the API key is missing or unknown."""


class PermissionDeniedError(LagoStatusError):
    """HTTP 403: the key may not do this, or a premium feature is off."""


class NotFoundError(LagoStatusError):
    """HTTP 404: the resource does not exist (or was deleted)."""


class NotAllowedError(LagoStatusError):
    """HTTP 405: e.g. current usage of a subscription that is not active."""


class UnprocessableError(LagoStatusError):
    """HTTP 422: Lago rejected the payload; see ``error_details``."""


class RateLimitError(LagoStatusError):
    """HTTP 429: too many requests; ``retry_after_s`` says how long to wait."""

    retry_after_s: float | None = None
    """Seconds to wait from ``Retry-After`` or ``X-RateLimit-Reset``, if sent."""


class ServerError(LagoStatusError):
    """HTTP 5xx: Lago failed; the request may be retried."""


class SyncError(TokbillError):
    """A template could not be reconciled with Lago."""


class BlockedError(SyncError):
    """A safety rule stopped a change; the message names the rule and remedy."""


class DriftError(SyncError):
    """After an apply, Lago still differs from the template."""

    def __init__(self, message: str, *, writes: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.writes = writes
        """The writes the apply made before reading Lago back
        (``tokbill.sync.Write``), in order."""


class UsageError(TokbillError):
    """Current usage could not be served, even from a stale cached value."""


_STATUS_CLASSES: dict[int, type[LagoStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: NotAllowedError,
    422: UnprocessableError,
    429: RateLimitError,
}


def status_error(
    *,
    method: str,
    path: str,
    status_code: int,
    reason: str,
    body: Mapping[str, Any] | None,
) -> LagoStatusError:
    """Build the error class that matches ``status_code``."""
    if status_code >= 500:
        cls: type[LagoStatusError] = ServerError
    else:
        cls = _STATUS_CLASSES.get(status_code, LagoStatusError)
    return cls(
        method=method, path=path, status_code=status_code, reason=reason, body=body
    )


def describe_error_details(details: Any) -> str:
    """Render Lago's ``error_details`` as ``field: code, code; field: code``.

    Batch errors are keyed by event index and become ``event 3: field: code``.
    """
    if not details:
        return ""
    if not isinstance(details, Mapping):
        return str(details)
    parts = []
    for key, value in details.items():
        label = f"event {key}" if str(key).isdigit() else str(key)
        if isinstance(value, Mapping):
            parts.append(f"{label}: {describe_error_details(value)}")
        elif isinstance(value, list):
            parts.append(f"{label}: {', '.join(str(item) for item in value)}")
        else:
            parts.append(f"{label}: {value}")
    return "; ".join(parts)


def _explanation(error: object, reason: str) -> str:
    """Lago's ``error`` text when it says more than the status's reason.

    A 400 carries its only explanation there ("BadRequest: param is missing
    or the value is empty or invalid: plan"); other statuses repeat the
    reason phrase, which the message already has.
    """
    if not isinstance(error, str):
        return ""
    letters = "".join(c for c in error.lower() if c.isalpha())
    if letters == "".join(c for c in reason.lower() if c.isalpha()):
        return ""
    return error.strip()


def _string_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
