"""The spool's housekeeper: recovery, read-back and fsync, off the hot path.

It runs only when the meter has a spool. It adopts spools of dead processes
at start and every ``adopt_interval_s``, reads events that wait on disk only
back into the queue when the queue has room, keeps the segment files ahead
of the writer (see ``Spool.maintain``) and applies the fsync policy.
"""

from __future__ import annotations

import logging
import threading
import time

from tokbill.ingest._logs import LogLimiter
from tokbill.ingest._options import MeterOptions
from tokbill.ingest._pipeline import Pipeline
from tokbill.ingest._spool import Spool

__all__ = ["Dispatcher"]

_TICK_S = 1.0


class Dispatcher:
    """Keeps the spool and the queue in step; ``run`` is a thread target."""

    def __init__(
        self,
        pipeline: Pipeline,
        spool: Spool,
        options: MeterOptions,
        limiter: LogLimiter,
        ready: threading.Event,
    ) -> None:
        self._pipeline = pipeline
        self._ready = ready
        self._spool = spool
        self._options = options
        self._limiter = limiter
        self._next_adoption = 0.0

    def run(self) -> None:
        """Loop until the pipeline stops; failures are logged, never raised.

        ``ready`` is set once the first pass has counted the events recovered
        from dead processes, so a ``flush`` right after a restart waits for
        them too.
        """
        try:
            self._tick_safely()
        finally:
            self._ready.set()
        while not self._pipeline.stopped:
            self._wait()
            self._tick_safely()

    def _tick_safely(self) -> None:
        try:
            self._tick(time.monotonic())
        except OSError as exc:
            self._limiter.log(logging.ERROR, "spool-io", "The spool failed: %s.", exc)
        except Exception:
            # Broad on purpose: if this thread died, full segments would never
            # be sealed and events waiting on disk never read back.
            self._limiter.log(
                logging.ERROR,
                "spool-unexpected",
                "Unexpected failure while maintaining the spool.",
                exc_info=True,
            )

    def _tick(self, now: float) -> None:
        if now >= self._next_adoption:
            self._pipeline.adopt_orphans()
            self._next_adoption = now + self._options.adopt_interval_s
        self._pipeline.load_backlog()
        self._spool.maintain()
        self._spool.sync_if_due(now)

    def _wait(self) -> None:
        timeout_s = _TICK_S
        if self._options.fsync_interval_s is not None:
            timeout_s = min(timeout_s, self._options.fsync_interval_s)
        wanted = self._pipeline.dispatcher_wanted
        wanted.wait(timeout_s)
        wanted.clear()
