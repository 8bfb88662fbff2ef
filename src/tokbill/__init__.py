"""tokbill: bill LLM token usage on Lago."""

from __future__ import annotations

from tokbill._errors import (
    AuthenticationError,
    BadRequestError,
    BlockedError,
    ConfigurationError,
    DriftError,
    LagoConnectionError,
    LagoError,
    LagoStatusError,
    LagoTimeoutError,
    NotAllowedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SyncError,
    TemplateError,
    TokbillError,
    UnprocessableError,
    UsageError,
)

__version__ = "0.1.0"

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
    "__version__",
]
