"""The user's callbacks, called so that their failures never reach the meter."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from tokbill.ingest._logs import LogLimiter
from tokbill.ingest._records import events_of
from tokbill.ingest._report import RateLimitInfo

__all__ = ["DropCallback", "ErrorCallback", "Hooks", "RateLimitCallback"]

logger = logging.getLogger(__name__)

DropCallback = Callable[[list[dict[str, Any]], str], object]
"""``on_drop(events, reason)``: events that will never reach Lago.

Events Lago rejected, and events a sender drops at close, count in
``stats()`` only once the call returned, so a ``flush`` or ``close`` that
reports them has seen it. Events ``record`` refuses are counted first, on
the recording thread, then reported."""
ErrorCallback = Callable[[Exception], object]
"""``on_error(exc)``: one failed request (a tokbill ``LagoError``)."""
RateLimitCallback = Callable[[RateLimitInfo], object]
"""``on_rate_limit(info)``: a response that carried rate-limit headers."""


class Hooks:
    """Calls the optional callbacks on the meter's threads, guarding each one."""

    def __init__(
        self,
        *,
        on_drop: DropCallback | None,
        on_error: ErrorCallback | None,
        on_rate_limit: RateLimitCallback | None,
        limiter: LogLimiter,
    ) -> None:
        self.on_drop = on_drop
        self.on_error = on_error
        self.on_rate_limit = on_rate_limit
        self._limiter = limiter

    def dropped(self, records: Sequence[bytes], reason: str) -> None:
        """Hand the events of dropped records to ``on_drop``, as Lago dicts."""
        if self.on_drop is not None and records:
            events = [event for record in records for event in events_of(record)]
            self._call("on_drop", self.on_drop, events, reason)

    def error(self, exc: Exception) -> None:
        """Hand a failed request's error to ``on_error``."""
        if self.on_error is not None:
            self._call("on_error", self.on_error, exc)

    def rate_limited(self, info: RateLimitInfo) -> None:
        """Hand rate-limit headers to ``on_rate_limit``."""
        if self.on_rate_limit is not None:
            self._call("on_rate_limit", self.on_rate_limit, info)

    def _call(self, name: str, callback: Callable[..., object], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            # Broad on purpose: a callback is user code, and its failure must
            # not stop a sender or lose the events it holds.
            self._limiter.log(
                logging.ERROR, f"callback-{name}", "The %s callback raised.", name
            )
            logger.debug("The %s callback raised.", name, exc_info=True)
