"""Everything a meter runs in one process: threads, connections, spool.

A runtime starts nothing until its first use, so building a meter in a
gunicorn or uWSGI master (``--preload``) starts no thread there. A forked
child throws the inherited runtime away (without closing the parent's
connections or touching its spool) and builds a fresh one on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import httpx

from tokbill import __version__
from tokbill._secrets import ApiKey
from tokbill.ingest._dispatcher import Dispatcher
from tokbill.ingest._events import IdSource
from tokbill.ingest._hooks import Hooks
from tokbill.ingest._logs import LogLimiter
from tokbill.ingest._options import MeterOptions
from tokbill.ingest._pipeline import Pipeline
from tokbill.ingest._report import FlushReport, MeterStats
from tokbill.ingest._sender import Sender
from tokbill.ingest._spool import Spool, SpoolFullError

__all__ = ["Connection", "Runtime"]

logger = logging.getLogger(__name__)

USER_AGENT: Final = f"tokbill-ingest/{__version__}"
_STOP_SHARE_S: Final = 0.1


class Connection:
    """Where to send, with which key; the key is only revealed to a header."""

    def __init__(
        self,
        api_url: str,
        api_key: ApiKey,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.api_url = api_url
        self.api_key = api_key
        self.transport = transport

    def client(self, options: MeterOptions) -> httpx.Client:
        """A keep-alive pool with one connection per sender."""
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key.reveal()}"
        return httpx.Client(
            base_url=self.api_url,
            headers=headers,
            timeout=httpx.Timeout(
                options.request_timeout_s, connect=options.connect_timeout_s
            ),
            limits=httpx.Limits(
                max_connections=options.senders,
                max_keepalive_connections=options.senders,
            ),
            transport=self.transport,
        )


class Runtime:
    """The per-process machinery of one meter; see the module docstring."""

    def __init__(
        self,
        *,
        options: MeterOptions,
        connection: Connection,
        spool_dir: Path | None,
        make_hooks: Callable[[LogLimiter], Hooks],
        limiter: LogLimiter,
    ) -> None:
        self._options = options
        self._connection = connection
        self._spool_dir = spool_dir
        self.ids = IdSource()
        self._hooks = make_hooks(limiter)
        self.pipeline = Pipeline(options, self._hooks, limiter)
        self._limiter = limiter
        self.started = False
        self._start_lock = threading.Lock()
        self._stop_event = threading.Event()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self._client: httpx.Client | None = None
        self._closed = False

    def start(self) -> None:
        """Open the spool and start the threads, once, unless closed."""
        with self._start_lock:
            if self.started or self._closed:
                return
            spool = self._open_spool()
            self._client = self._connection.client(self._options)
            for number in range(self._options.senders):
                sender = Sender(
                    pipeline=self.pipeline,
                    client=self._client,
                    options=self._options,
                    hooks=self._hooks,
                    limiter=self._limiter,
                    stop_event=self._stop_event,
                )
                self._spawn(f"tokbill-ingest-send-{number}", sender.run)
            if spool is not None:
                dispatcher = Dispatcher(
                    self.pipeline, spool, self._options, self._limiter, self._ready
                )
                self._spawn("tokbill-ingest", dispatcher.run)
            else:
                self._ready.set()
            self.started = True

    def flush(self, timeout_s: float) -> FlushReport:
        """Wait until what was recorded so far is resolved, or the deadline."""
        deadline = time.monotonic() + timeout_s
        self.start()
        self._ready.wait(max(deadline - time.monotonic(), 0.0))
        target = self.pipeline.recorded_count()
        complete = self.pipeline.wait_resolved(target, deadline)
        return FlushReport.from_stats(self.stats(), complete=complete)

    def close(self, timeout_s: float) -> FlushReport:
        """Stop taking events, drain until the deadline, then stop the threads."""
        deadline = time.monotonic() + timeout_s
        with self._start_lock:
            closed, self._closed = self._closed, True
        if closed:
            stats = self.stats()
            return FlushReport.from_stats(stats, complete=stats.pending == 0)
        complete = True
        # Keep a slice of the deadline for the threads to stop, so that they
        # usually exit (and release the spool) before close returns.
        drain_deadline = deadline - min(_STOP_SHARE_S, timeout_s / 10)
        if self.started:
            self._ready.wait(max(drain_deadline - time.monotonic(), 0.0))
            self.pipeline.close_admission()
            complete = self.pipeline.wait_drained(drain_deadline)
        else:
            self._ready.set()
            self.pipeline.close_admission()
        self.pipeline.stop()
        self._stop_event.set()
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        if not self._threads:
            self._release()
        return FlushReport.from_stats(self.stats(), complete=complete)

    def stats(self) -> MeterStats:
        """The pipeline's counters and the spool's size."""
        spool = self.pipeline.spool
        return self.pipeline.stats(spool.bytes_used if spool is not None else 0)

    def forget_after_fork(self) -> None:
        """In a forked child: let go of the parent's spool files, untouched.

        The inherited connections are not closed: closing them could talk on
        sockets the parent still uses. They are left to the garbage collector.
        """
        if self.pipeline.spool is not None:
            self.pipeline.spool.forget()

    def _open_spool(self) -> Spool | None:
        # A spool that cannot be opened (the directory gone or unwritable,
        # the disk full) must not make record raise: the meter runs on
        # memory alone, bounded as without a spool, and says so once.
        if self._spool_dir is None:
            return None
        spool = Spool(
            self._spool_dir,
            max_bytes=self._options.spool_max_bytes,
            segment_bytes=self._options.spool_segment_bytes,
            dead_letter_max_bytes=self._options.dead_letter_max_bytes,
            fsync_interval_s=self._options.fsync_interval_s,
            wake=self.pipeline.dispatcher_wanted.set,
        )
        try:
            spool.open()
        except (OSError, SpoolFullError) as exc:
            logger.error(
                "The spool in %s cannot be opened (%s); events are kept in "
                "memory only and do not survive a crash of this process.",
                self._spool_dir,
                exc,
            )
            return None
        self.pipeline.spool = spool
        return spool

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        def main() -> None:
            try:
                target()
            finally:
                self._thread_exited()

        thread = threading.Thread(target=main, name=name, daemon=True)
        self._running += 1
        self._threads.append(thread)
        thread.start()

    def _thread_exited(self) -> None:
        with self._start_lock:
            self._running -= 1
            last = self._running == 0
        if last and self._closed:
            self._release()

    def _release(self) -> None:
        # The last thread out closes what the threads shared, so a sender
        # still waiting on a hung request at close never finds them closed.
        if self.pipeline.spool is not None:
            self.pipeline.spool.close()
        if self._client is not None:
            self._client.close()
