"""The boundary with Lago: HTTP clients, path building and the retry policy."""

from __future__ import annotations

from tokbill.lago._client import (
    AsyncLagoClient,
    LagoClient,
    api_path,
    error_from_response,
    retry_after_s,
)

__all__ = [
    "AsyncLagoClient",
    "LagoClient",
    "api_path",
    "error_from_response",
    "retry_after_s",
]
