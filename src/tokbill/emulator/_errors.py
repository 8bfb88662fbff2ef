"""Lago's error bodies, raised by handlers and rendered by the app.

The shapes follow lago-api ``app/controllers/concerns/api_errors.rb``: every
error body carries ``status`` and ``error``; most carry a ``code``; 422 adds
``error_details``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokbill._errors import TokbillError

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ApiError(TokbillError):
    """An emulated Lago error response; the app renders ``body`` with ``status``.

    Raised inside a handler, it rolls back the handler's transaction, so a
    request answered with an error never changes state.
    """

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"The emulator answers {status}: {body.get('error')}.")
        self.status = status
        """The HTTP status of the response."""
        self.body = dict(body)
        """The JSON body of the response."""


def reason(status: int) -> str:
    """The reason phrase Lago puts in ``error`` for ``status``."""
    return _REASONS.get(status, "Error")


def bad_request(missing_key: str) -> ApiError:
    """400 for a missing root key, worded as Rails' ``ParameterMissing``."""
    message = (
        f"BadRequest: param is missing or the value is empty or invalid: {missing_key}"
    )
    return ApiError(400, {"status": 400, "error": message})


def unauthorized() -> ApiError:
    """401 for a missing or unknown API key."""
    return ApiError(401, {"status": 401, "error": "Unauthorized"})


def not_found(resource: str) -> ApiError:
    """404 with code ``<resource>_not_found``."""
    body = {"status": 404, "error": "Not Found", "code": f"{resource}_not_found"}
    return ApiError(404, body)


def not_allowed(code: str) -> ApiError:
    """405 with a Lago code such as ``no_active_subscription``."""
    body = {"status": 405, "error": "Method Not Allowed", "code": code}
    return ApiError(405, body)


def invalid(details: Mapping[str, Any]) -> ApiError:
    """422 ``validation_errors`` with ``details`` as ``error_details``."""
    body = {
        "status": 422,
        "error": "Unprocessable Entity",
        "code": "validation_errors",
        "error_details": dict(details),
    }
    return ApiError(422, body)


def field_error(field: str, code: str) -> ApiError:
    """422 for one field with one error code, the commonest validation error."""
    return invalid({field: [code]})


def status_body(status: int) -> dict[str, Any]:
    """A bare ``{"status", "error"}`` body, used for injected faults."""
    return {"status": status, "error": reason(status)}


def forbidden(code: str) -> ApiError:
    """403 with a Lago code such as ``feature_unavailable``."""
    return ApiError(403, {"status": 403, "error": "Forbidden", "code": code})


class Problems:
    """Collects field errors like a Rails model, then raises them as one 422."""

    def __init__(self) -> None:
        self.details: dict[str, list[str]] = {}

    def add(self, field: str, code: str) -> None:
        """Record ``code`` for ``field`` once."""
        codes = self.details.setdefault(field, [])
        if code not in codes:
            codes.append(code)

    def raise_if_any(self) -> None:
        """Raise the collected errors as 422 ``validation_errors``, if any."""
        if self.details:
            raise invalid(self.details)
