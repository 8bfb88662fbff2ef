"""Log lines that stay bounded when the same failure repeats all day."""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["LogLimiter"]


class LogLimiter:
    """At most one line per kind of failure per interval, with a count.

    A suppressed line is counted, and the next line of that kind says how many
    were left out, so sustained failure costs one line per interval.
    """

    def __init__(self, logger: logging.Logger, interval_s: float) -> None:
        self._logger = logger
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._next_at: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(
        self,
        level: int,
        kind: str,
        message: str,
        *args: object,
        exc_info: bool = False,
    ) -> None:
        """Log ``message % args`` unless ``kind`` was logged within the interval;
        ``exc_info`` adds the exception being handled, as in ``logging``."""
        now = time.monotonic()
        with self._lock:
            if now < self._next_at.get(kind, 0.0):
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._next_at[kind] = now + self._interval_s
            suppressed = self._suppressed.pop(kind, 0)
        if suppressed:
            message += " (%d similar lines suppressed)"
            args = (*args, suppressed)
        self._logger.log(level, message, *args, exc_info=exc_info)
