"""The one retry policy for calls to Lago's management API.

What is retried:
- reads (GET): connection errors, timeouts, 408, 429 and 5xx;
- writes: only 429 and connections that failed before the request left.
  A write that timed out or got a 5xx may have been applied, and Lago's
  creates are not idempotent, so the caller decides (the reconciler re-reads).

How long: full-jitter exponential backoff (0.5 s base, 8 s cap), at most
``max_retries`` retries and never past ``budget_s`` in total. A 429 waits what
Lago asked for (``Retry-After`` or ``X-RateLimit-Reset``), capped at 30 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from tokbill._errors import LagoConnectionError, LagoStatusError, RateLimitError

__all__ = ["RETRYABLE_READ_STATUSES", "retry_options"]

logger = logging.getLogger(__name__)

RETRYABLE_READ_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_BASE_S: Final = 0.5
BACKOFF_CAP_S: Final = 8.0
RATE_LIMIT_CAP_S: Final = 30.0
DEFAULT_BUDGET_S: Final = 60.0

_jitter = wait_random_exponential(multiplier=BACKOFF_BASE_S, max=BACKOFF_CAP_S)


def is_retryable(exc: BaseException, *, is_write: bool) -> bool:
    """Whether ``exc`` is worth another attempt of the same request."""
    if isinstance(exc, LagoConnectionError):
        return not (is_write and exc.request_sent)
    if isinstance(exc, LagoStatusError):
        if is_write:
            return exc.status_code == 429
        return exc.status_code in RETRYABLE_READ_STATUSES
    return False


def _wait_s(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimitError) and exc.retry_after_s is not None:
        return min(max(exc.retry_after_s, 0.0), RATE_LIMIT_CAP_S)
    return float(_jitter(state))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    delay_s = state.next_action.sleep if state.next_action else 0.0
    logger.warning("%s Retrying in %.2f s.", exc, delay_s)


def retry_options(
    *,
    is_write: bool,
    max_retries: int,
    budget_s: float = DEFAULT_BUDGET_S,
    sleep: Callable[[float], Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``tenacity.Retrying`` or ``AsyncRetrying``.

    ``sleep`` replaces the real sleep, so tests run without waiting.
    """
    options: dict[str, Any] = {
        "retry": retry_if_exception(lambda e: is_retryable(e, is_write=is_write)),
        "stop": stop_after_attempt(max_retries + 1) | stop_after_delay(budget_s),
        "wait": _wait_s,
        "before_sleep": _log_retry,
        "reraise": True,
    }
    if sleep is not None:
        options["sleep"] = sleep
    return options
