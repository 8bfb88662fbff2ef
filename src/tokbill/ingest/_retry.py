"""When the meter sends a batch again, and how long it waits first.

Transient failures are retried with the same body, hence the same
``transaction_id`` and ``timestamp`` (Lago dedupes on them, so a request that
timed out after Lago committed it is not billed twice): connection errors,
timeouts, 408, 429 and 5xx. A POST that timed out is safe to resend here,
unlike in ``tokbill.lago``, because every event carries its idempotency key.

Waits: full-jitter exponential backoff from ``retry_initial_delay_s`` up to
``retry_max_delay_s``. A 429 waits what Lago asked for (``Retry-After`` or
``X-RateLimit-Reset``, capped) and pauses every sender of the meter. It waits
at least ``retry_initial_delay_s``: Lago Cloud's reset counts whole seconds,
so it reads 0 in the last fraction of a window, and resending at once would
only meet the limit again. Rate-limit waits do not count against
``retry_budget_s``, the time one batch may spend retrying before it goes to
the back of the queue. Closing the meter cuts any wait short.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception
from tenacity.wait import wait_random_exponential

from tokbill._errors import LagoConnectionError, LagoStatusError, RateLimitError
from tokbill.ingest._options import MeterOptions

__all__ = ["DeliveryRetry", "Stopped", "is_transient", "rate_limit_wait_s"]

T = TypeVar("T")


class Stopped(Exception):
    """The meter is closing; the sender gives its batch back."""


class _SharedPause(Protocol):
    def pause_for(self, seconds: float) -> None: ...

    def pause_remaining_s(self) -> float: ...


def is_transient(exc: BaseException) -> bool:
    """Whether the same batch may succeed if sent again later."""
    if isinstance(exc, LagoConnectionError):
        return True
    if isinstance(exc, LagoStatusError):
        return exc.status_code in (408, 429) or exc.status_code >= 500
    return False


def rate_limit_wait_s(hinted_s: float, options: MeterOptions) -> float:
    """The wait for a 429 whose headers asked for ``hinted_s``."""
    floor_s = min(options.retry_initial_delay_s, options.max_rate_limit_wait_s)
    return min(max(hinted_s, floor_s), options.max_rate_limit_wait_s)


class DeliveryRetry:
    """The tenacity policy for one sender; see the module docstring."""

    def __init__(
        self,
        options: MeterOptions,
        pause: _SharedPause,
        stop_event: threading.Event,
        on_retry: Callable[[BaseException, float], None],
    ) -> None:
        self._options = options
        self._pause = pause
        self._stop_event = stop_event
        self._on_retry = on_retry
        self._backoff = wait_random_exponential(
            multiplier=options.retry_initial_delay_s, max=options.retry_max_delay_s
        )

    def call(self, attempt: Callable[[], T]) -> T:
        """Run ``attempt`` until it succeeds or fails for good.

        Raises:
            Stopped: the meter closed during a wait.
            LagoError: a permanent failure, or the last transient one once
                the budget is spent.
        """
        rate_limited_s = 0.0

        def wait_s(state: RetryCallState) -> float:
            nonlocal rate_limited_s
            exc = state.outcome.exception() if state.outcome else None
            delay_s = self._delay_s(state, exc)
            if isinstance(exc, RateLimitError):
                rate_limited_s += delay_s
            return delay_s

        def should_stop(state: RetryCallState) -> bool:
            if self._stop_event.is_set():
                return True
            spent_s = (state.seconds_since_start or 0.0) - rate_limited_s
            return spent_s >= self._options.retry_budget_s

        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_s,
            stop=should_stop,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _delay_s(self, state: RetryCallState, exc: BaseException | None) -> float:
        if isinstance(exc, RateLimitError):
            hinted_s = exc.retry_after_s
            if hinted_s is None:
                hinted_s = float(self._backoff(state))
            self._pause.pause_for(rate_limit_wait_s(hinted_s, self._options))
            return self._pause.pause_remaining_s()
        return max(float(self._backoff(state)), self._pause.pause_remaining_s())

    def _sleep(self, seconds: float) -> None:
        if self._stop_event.wait(seconds):
            raise Stopped

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay_s = state.next_action.sleep if state.next_action else 0.0
        if exc is not None:
            self._on_retry(exc, delay_s)
