"""tokbill: bill LLM token usage on Lago."""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from tokbill.ingest import AsyncTokenMeter, TokenMeter
    from tokbill.usage import AsyncUsageClient, UsageClient

__version__ = "0.1.0"

# The meters and usage clients load httpx and machinery of their own;
# importing them lazily keeps `import tokbill` and `tokbill-sync --help` light.
_LAZY = {
    "TokenMeter": "tokbill.ingest",
    "AsyncTokenMeter": "tokbill.ingest",
    "UsageClient": "tokbill.usage",
    "AsyncUsageClient": "tokbill.usage",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokbill' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "AsyncTokenMeter",
    "AsyncUsageClient",
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
    "TokenMeter",
    "UnprocessableError",
    "UsageClient",
    "UsageError",
    "__version__",
]
