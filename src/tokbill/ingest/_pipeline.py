"""The meter's shared state: the buffer, the counters and who waits for what.

Invariants, all kept under one lock:

- every event ``submit`` accepted is, at any moment, in exactly one of:
  acked, dropped (by reason), quarantined, or pending; pending is the sum of
  the queue, the batches in flight and the events that wait on disk only;
- the queue holds at most ``max_buffered_events`` events taken by ``submit``
  (a batch put back after a failure may exceed it briefly); past that, events
  wait in the spool only, or without a spool are dropped as ``buffer_full``;
- a batch is never put back at the head of the queue after a failure, so
  one batch Lago keeps failing on cannot hold the others up.

Waiting is on conditions of that lock, with deadlines, never a busy poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence

from tokbill.ingest._hooks import Hooks
from tokbill.ingest._logs import LogLimiter
from tokbill.ingest._options import MeterOptions
from tokbill.ingest._report import DropReason, MeterStats
from tokbill.ingest._spool import Ref, Spool, SpoolFullError

__all__ = ["Item", "Pipeline"]

logger = logging.getLogger(__name__)

Item = tuple[bytes, Ref | None]
"""One event: its JSON, and where the spool holds it (None without spool)."""

_IDLE_RECHECK_S = 1.0
"""Idle senders re-check their state this often, whatever they were told."""
_BACKLOG_CHUNK = 4096
"""Events read back from disk at a time, to bound the memory of one read."""


class Pipeline:
    """The buffer between ``record`` and the senders; see the module docstring."""

    def __init__(
        self,
        options: MeterOptions,
        hooks: Hooks,
        limiter: LogLimiter,
        spool: Spool | None = None,
    ) -> None:
        self._options = options
        self._hooks = hooks
        self._limiter = limiter
        self.spool = spool
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self.backlog_wanted = threading.Event()
        self._queue: deque[Item] = deque()
        self._queue_since = 0.0
        self._in_flight = 0
        self._disk_only = 0
        self._spilling = False
        self._recorded = 0
        self._recovered = 0
        self._acked = 0
        self._retried = 0
        self._quarantined = 0
        self._dropped: Counter[str] = Counter()
        self._unpriced: Counter[str] = Counter()
        self._flushers = 0
        self._closing = False
        self.stopped = False
        self._pause_until = 0.0
        self.blocked: str | None = None

    def submit(self, payloads: Sequence[bytes]) -> None:
        """Take the events of one call; never blocks on I/O but a page-cache write."""
        count = len(payloads)
        with self._lock:
            self._recorded += count
            reason = self._admit(payloads)
            if reason is None:
                self._wake_for(count)
                return
            self._dropped[reason] += count
        self._limiter.log(
            logging.WARNING, f"drop-{reason}", "Dropped %d event(s): %s.", count, reason
        )
        self._hooks.dropped(payloads, reason)

    def _wake_for(self, added: int) -> None:
        # Wake a sender only when a batch fills (or a linger starts), so the
        # common call costs no notification.
        queued = len(self._queue)
        size = self._options.batch_size
        if queued == added and added:
            self._queue_since = time.monotonic()
            self._work.notify()
        elif queued // size > (queued - added) // size:
            self._work.notify()

    def _admit(self, payloads: Sequence[bytes]) -> str | None:
        if self._closing:
            return DropReason.CLOSED
        full = len(self._queue) + len(payloads) > self._options.max_buffered_events
        if self.spool is None:
            if full:
                return DropReason.BUFFER_FULL
            self._queue.extend([(payload, None) for payload in payloads])
            return None
        if full and not self._spilling:
            self.spool.begin_spill()
            self._spilling = True
        try:
            refs = self.spool.append(payloads)
        except SpoolFullError:
            return DropReason.SPOOL_FULL
        if self._spilling:
            self._disk_only += len(payloads)
        else:
            self._queue.extend(zip(payloads, refs, strict=True))
        return None

    def count_unpriced(self, value: str, count: int) -> None:
        """Count events whose model or type the template does not price."""
        with self._lock:
            self._unpriced[value] += count

    def take_batch(self) -> list[Item] | None:
        """The next batch to send, waiting for it; None once stopped."""
        with self._lock:
            while not self.stopped:
                wait_s = self._wait_before_taking(time.monotonic())
                if wait_s is None:
                    return self._cut_batch()
                self._work.wait(min(wait_s, _IDLE_RECHECK_S))
        return None

    def _wait_before_taking(self, now: float) -> float | None:
        if self.blocked is not None:
            return _IDLE_RECHECK_S
        if now < self._pause_until:
            return self._pause_until - now
        queued = len(self._queue)
        if not queued:
            return _IDLE_RECHECK_S
        if queued >= self._options.batch_size or self._flushers or self._closing:
            return None
        left_s = self._options.linger_s - (now - self._queue_since)
        return None if left_s <= 0 else left_s

    def _cut_batch(self) -> list[Item]:
        batch: list[Item] = []
        size = 0
        limit_bytes = self._options.max_batch_bytes
        while self._queue and len(batch) < self._options.batch_size:
            payload_size = len(self._queue[0][0]) + 1
            if batch and size + payload_size > limit_bytes:
                break
            batch.append(self._queue.popleft())
            size += payload_size
        self._in_flight += len(batch)
        if len(self._queue) >= self._options.batch_size:
            self._work.notify()
        low_water = self._options.max_buffered_events // 2
        if self._disk_only and len(self._queue) < low_water:
            self.backlog_wanted.set()
        return batch

    def acked(self, items: Sequence[Item]) -> None:
        """Lago stored these events (or already had them)."""
        self._resolve_on_disk(items)
        with self._lock:
            self._in_flight -= len(items)
            self._acked += len(items)
            self._notify_progress()

    def quarantined(self, items: Sequence[Item]) -> None:
        """Lago rejected these events for good; the sender reported them."""
        self._resolve_on_disk(items)
        with self._lock:
            self._in_flight -= len(items)
            self._quarantined += len(items)
            self._notify_progress()

    def requeue(self, items: Sequence[Item]) -> None:
        """Put a batch back at the end of the queue, to be sent again later."""
        with self._lock:
            self._in_flight -= len(items)
            if not self._queue:
                self._queue_since = time.monotonic()
            self._queue.extend(items)
            self._work.notify()

    def abandon(self, items: Sequence[Item]) -> None:
        """A sender stopped mid-delivery: keep the events if spooled, else drop."""
        if self.spool is not None:
            with self._lock:
                self._in_flight -= len(items)
                self._queue.extendleft(reversed(items))
            return
        with self._lock:
            self._in_flight -= len(items)
            self._dropped[DropReason.SHUTDOWN] += len(items)
            self._notify_progress()
        self._report_shutdown_drop([payload for payload, _ in items])

    def count_retry(self, events: int) -> None:
        """Count ``events`` sent again after a transient failure."""
        with self._lock:
            self._retried += events

    def pause_for(self, seconds: float) -> None:
        """Hold every sender for ``seconds`` (Lago asked for it with a 429)."""
        with self._lock:
            self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    def pause_remaining_s(self) -> float:
        """How long the shared rate-limit pause still lasts."""
        return max(self._pause_until - time.monotonic(), 0.0)

    def block(self, reason: str) -> None:
        """Suspend taking new batches until :meth:`unblock` (401/403/404)."""
        with self._lock:
            self.blocked = reason

    def unblock(self) -> None:
        """Resume sending after a successful probe."""
        with self._lock:
            self.blocked = None
            self._work.notify_all()

    def load_backlog(self) -> None:
        """Move events that wait on disk only into the queue, while it has room."""
        spool = self.spool
        with self._lock:
            room = self._options.max_buffered_events - len(self._queue)
            if spool is None or not self._disk_only or room < self._options.batch_size:
                return
        found = spool.read_backlog(min(room, _BACKLOG_CHUNK))
        with self._lock:
            if not self._queue and found:
                self._queue_since = time.monotonic()
            self._queue.extend(found)
            self._disk_only -= len(found)
            if self._spilling and spool.end_spill_if_caught_up():
                self._spilling = False
            self._work.notify_all()

    def adopt_orphans(self) -> None:
        """Count events found in spools of dead processes as recorded, on disk."""
        if self.spool is None:
            return
        found = self.spool.adopt_orphans()
        if not found:
            return
        logger.info("Recovered %d unsent event(s) from %s.", found, self.spool.root)
        with self._lock:
            self._recorded += found
            self._recovered += found
            self._disk_only += found
        self.backlog_wanted.set()

    def recorded_count(self) -> int:
        """Events accepted so far, recovered ones included."""
        with self._lock:
            return self._recorded

    def wait_resolved(self, target: int, deadline: float) -> bool:
        """Wait until ``target`` events are resolved, or the deadline passes.

        Senders send partial batches at once while anyone waits here.
        """
        with self._lock:
            self._flushers += 1
            self._work.notify_all()
            try:
                while self._resolved() < target:
                    remaining_s = deadline - time.monotonic()
                    if remaining_s <= 0:
                        return False
                    self._progress.wait(remaining_s)
                return True
            finally:
                self._flushers -= 1

    def close_admission(self) -> int:
        """Refuse new events from now on; return how many were recorded."""
        with self._lock:
            self._closing = True
            self._work.notify_all()
            return self._recorded

    def stop(self) -> None:
        """Stop the senders; without a spool, queued events are dropped."""
        with self._lock:
            self.stopped = True
            self._work.notify_all()
            dropped: list[bytes] = []
            if self.spool is None and self._queue:
                dropped = [payload for payload, _ in self._queue]
                self._queue.clear()
                self._dropped[DropReason.SHUTDOWN] += len(dropped)
            self._notify_progress()
        self.backlog_wanted.set()
        if dropped:
            self._report_shutdown_drop(dropped)

    def stats(self, spool_bytes: int) -> MeterStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return MeterStats(
                recorded=self._recorded,
                acked=self._acked,
                retried=self._retried,
                dropped=dict(self._dropped),
                quarantined=self._quarantined,
                pending=len(self._queue) + self._in_flight + self._disk_only,
                recovered=self._recovered,
                spool_bytes=spool_bytes,
                unpriced=dict(self._unpriced),
                blocked=self.blocked,
            )

    def _resolved(self) -> int:
        return self._acked + self._quarantined + sum(self._dropped.values())

    def _notify_progress(self) -> None:
        if self._flushers:
            self._progress.notify_all()

    def _resolve_on_disk(self, items: Sequence[Item]) -> None:
        if self.spool is not None:
            self.spool.resolve([ref for _, ref in items if ref is not None])

    def _report_shutdown_drop(self, payloads: list[bytes]) -> None:
        logger.error(
            "Dropped %d unsent event(s) at close: no spool_dir was configured.",
            len(payloads),
        )
        self._hooks.dropped(payloads, DropReason.SHUTDOWN)
