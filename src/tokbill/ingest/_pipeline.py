"""The meter's shared state: the buffer, the counters and who waits for what.

Invariants, all kept under one lock:

- every event ``submit`` accepted is, at any moment, in exactly one of:
  acked, dropped (by reason), quarantined, or pending; pending is the sum of
  the queue, the batches in flight and the events that wait on disk only
  (each queued item is one call's record, see ``_records``, and counts its
  events);
- the queue holds at most ``max_buffered_events`` events taken by ``submit``
  (a batch put back after a failure may exceed it briefly); past that, events
  wait in the spool only, or without a spool are dropped as ``buffer_full``;
- a batch is never put back at the head of the queue after a failure, so
  one batch Lago keeps failing on cannot hold the others up.

Waiting is on conditions of that lock, with deadlines, never a busy poll.
``submit`` (the caller's thread) takes that one lock and wakes a sender only
when its events complete a batch: waking a thread costs the caller a context
switch (about 20 µs measured). The linger is kept by one idle sender, the
timekeeper, which waits at most ``linger_s`` at a time, so the first event
of a partial batch needs no wake-up to be sent within ``linger_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import cast

from tokbill.ingest._hooks import Hooks
from tokbill.ingest._logs import LogLimiter
from tokbill.ingest._options import MeterOptions
from tokbill.ingest._records import EVENT_KEYS_BYTES, keepable, split_record
from tokbill.ingest._report import DropReason, MeterStats
from tokbill.ingest._segments import events_in
from tokbill.ingest._spool import Item, Spool, SpoolFullError

__all__ = ["Item", "Pipeline"]

logger = logging.getLogger(__name__)

_IDLE_RECHECK_S = 1.0
"""Idle senders re-check their state this often, whatever they were told."""
_BACKLOG_CHUNK = 4096
"""Events read back from disk at a time, to bound the memory of one read."""
_SHORTEST_POLL_S = 0.005
"""Below this ``linger_s``, ``submit`` wakes a sender for the first event of
a batch rather than have the timekeeper poll that often."""

_monotonic = time.monotonic


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
        # Held while events move from disk to memory, so that a snapshot of
        # the pending events sees each of them in exactly one place.
        self._disk_lock = threading.Lock()
        self.dispatcher_wanted = threading.Event()
        self._batch_size = options.batch_size
        self._max_buffered = options.max_buffered_events
        self._wake_on_first = options.linger_s < _SHORTEST_POLL_S
        self._queue: deque[Item] = deque()
        self._queued = 0
        self._queue_since = 0.0
        self._in_flight: dict[int, Item] = {}
        self._flying = 0
        self._idle = 0
        self._timekeeper = False
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

    def submit(self, record: bytes, events: int) -> None:
        """Take the record of one call with ``events`` events; never blocks
        on I/O but a page-cache write."""
        with self._lock:
            self._recorded += events
            before = self._queued
            reason = self._admit(record, events, before)
            if reason is None:
                after = self._queued
                if not before and after:
                    self._queue_since = _monotonic()
                    if self._wake_on_first and self._idle:
                        self._work.notify()
                size = self._batch_size
                if after // size > before // size and self._idle:
                    self._work.notify()
                return
            self._dropped[reason] += events
        self._limiter.log(
            logging.WARNING,
            f"drop-{reason}",
            "Dropped %d event(s): %s.",
            events,
            reason,
        )
        self._hooks.dropped([record], reason)

    def _admit(self, record: bytes, events: int, queued: int) -> str | None:
        if self._closing:
            return DropReason.CLOSED
        full = queued + events > self._max_buffered
        spool = self.spool
        if spool is None:
            if full:
                return DropReason.BUFFER_FULL
            self._queue.append((keepable(record), None, 0, events, len(record)))
            self._queued = queued + events
            return None
        if full and not self._spilling:
            spool.begin_spill()
            self._spilling = True
        try:
            segment, index, offset = spool.append(record)
        except SpoolFullError:
            return DropReason.SPOOL_FULL
        if self._spilling:
            self._disk_only += events
        else:
            # The record lives in the segment map; keeping a copy in memory
            # as well would cost record() an allocation that, cold, costs
            # as much as the encoding (senders read it back instead).
            self._queue.append((offset, segment, index, events, len(record)))
            self._queued = queued + events
        return None

    def count_unpriced(self, value: str, events: int) -> bool:
        """Count events whose model or type the template does not price;
        True the first time ``value`` is counted."""
        with self._lock:
            first = value not in self._unpriced
            self._unpriced[value] += events
        return first

    def take_batch(self) -> list[Item] | None:
        """The next batch to send, waiting for it; None once stopped."""
        with self._lock:
            while not self.stopped:
                wait_s = self._wait_before_taking(_monotonic())
                if wait_s is None:
                    return self._cut_batch()
                self._wait_idle(wait_s)
        return None

    def _wait_before_taking(self, now: float) -> float | None:
        if self.blocked is not None:
            return _IDLE_RECHECK_S
        if now < self._pause_until:
            return self._pause_until - now
        queued = self._queued
        if not queued:
            return _IDLE_RECHECK_S if self._wake_on_first else self._options.linger_s
        if queued >= self._batch_size or self._flushers or self._closing:
            return None
        left_s = self._options.linger_s - (now - self._queue_since)
        return None if left_s <= 0 else left_s

    def _wait_idle(self, wait_s: float) -> None:
        # One idle sender keeps time (linger, pause); the others sleep until
        # a batch fills, a flush, a stop, or the periodic re-check.
        keeper = not self._timekeeper
        if keeper:
            self._timekeeper = True
        self._idle += 1
        try:
            self._work.wait(min(wait_s, _IDLE_RECHECK_S) if keeper else _IDLE_RECHECK_S)
        finally:
            self._idle -= 1
            if keeper:
                self._timekeeper = False

    def _cut_batch(self) -> list[Item]:
        # Whole records only, up to batch_size events and about
        # max_batch_bytes of JSON (bounded from the records' sizes).
        batch: list[Item] = []
        events = size = 0
        limit_events = self._batch_size
        limit_bytes = self._options.max_batch_bytes
        queue = self._queue
        while queue:
            _, _, _, count, record_size = queue[0]
            grown = size + (record_size + EVENT_KEYS_BYTES) * count
            if batch and (events + count > limit_events or grown > limit_bytes):
                break
            batch.append(queue.popleft())
            events += count
            size = grown
        self._queued -= events
        self._fly(batch)
        # Hand over what this sender leaves: a full batch, or the clock.
        if self._idle and (self._queued >= limit_events or not self._timekeeper):
            self._work.notify()
        if self._disk_only and self._queued < self._max_buffered // 2:
            self.dispatcher_wanted.set()
        return batch

    def records_of(self, items: Sequence[Item]) -> list[bytes]:
        """The record of each item (see ``_records``)."""
        if self.spool is None:
            # Without a spool every item holds its record.
            return [cast(bytes, data) for data, _, _, _, _ in items]
        return self.spool.records(items)

    def split(self, item: Item) -> list[Item]:
        """Replace an in-flight record by one in-flight item per event, so
        that Lago's answer can be applied event by event."""
        _, segment, index, _, _ = item
        parts = split_record(self.records_of([item])[0])
        if segment is not None and self.spool is not None:
            self.spool.split(segment, index, len(parts))
        items: list[Item] = [(part, segment, index, 1, len(part)) for part in parts]
        with self._lock:
            self._land([item])
            self._fly(items)
        return items

    def acked(self, items: Sequence[Item]) -> None:
        """Lago stored these events (or already had them)."""
        self._resolve_on_disk(items)
        with self._lock:
            self._land(items)
            self._acked += events_in(items)
            self._notify_progress()

    def quarantined(self, items: Sequence[Item]) -> None:
        """Lago rejected these events for good; the sender reported them."""
        self._resolve_on_disk(items)
        with self._lock:
            self._land(items)
            self._quarantined += events_in(items)
            self._notify_progress()

    def requeue(self, items: Sequence[Item]) -> None:
        """Put a batch back at the end of the queue, to be sent again later."""
        with self._lock:
            self._land(items)
            if not self._queued:
                self._queue_since = _monotonic()
            self._queue.extend(items)
            self._queued += events_in(items)
            self._work.notify()

    def abandon(self, items: Sequence[Item]) -> None:
        """A sender stopped mid-delivery: keep the events if spooled, else drop."""
        if self.spool is not None:
            with self._lock:
                self._land(items)
                self._queue.extendleft(reversed(items))
                self._queued += events_in(items)
            return
        # Reported first, so that once the events count as dropped on_drop
        # has returned (see Sender._quarantine).
        self._report_shutdown_drop(items)
        with self._lock:
            self._land(items)
            self._dropped[DropReason.SHUTDOWN] += events_in(items)
            self._notify_progress()

    def count_retry(self, events: int) -> None:
        """Count ``events`` sent again after a transient failure."""
        with self._lock:
            self._retried += events

    def pause_for(self, seconds: float) -> None:
        """Hold every sender for ``seconds`` (Lago asked for it with a 429)."""
        with self._lock:
            self._pause_until = max(self._pause_until, _monotonic() + seconds)

    def pause_remaining_s(self) -> float:
        """How long the shared rate-limit pause still lasts."""
        return max(self._pause_until - _monotonic(), 0.0)

    def block(self, reason: str) -> None:
        """Suspend taking new batches until :meth:`unblock` (key or URL refused)."""
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
        if spool is None:
            return
        with self._disk_lock:
            with self._lock:
                room = self._max_buffered - self._queued
                if not self._disk_only or room < self._batch_size:
                    return
            found = spool.read_backlog(min(room, _BACKLOG_CHUNK))
            with self._lock:
                if not self._queued and found:
                    self._queue_since = _monotonic()
                self._queue.extend(found)
                events = events_in(found)
                self._queued += events
                self._disk_only -= events
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
        self.dispatcher_wanted.set()

    def pending_records(self) -> list[bytes]:
        """The records of every event not resolved yet: queued, in flight or
        on disk only; a snapshot, taken with ``record`` held off only while
        the in-memory part is copied."""
        with self._disk_lock:
            with self._lock:
                items = [*self._queue, *self._in_flight.values()]
            records = self.records_of(items)
            if self.spool is not None and self._disk_only:
                records += self.spool.peek_backlog()
        return records

    def recorded_count(self) -> int:
        """Events accepted so far, recovered ones included."""
        with self._lock:
            return self._recorded

    def wait_resolved(self, target: int, deadline: float) -> bool:
        """Wait until ``target`` events are resolved, or the deadline passes.

        Senders send partial batches at once while anyone waits here.
        """
        return self._wait_until(lambda: self._resolved() >= target, deadline)

    def wait_drained(self, deadline: float) -> bool:
        """Wait until no event is pending, or the deadline passes; for close.

        Counting resolved events instead would let the events ``record``
        refuses meanwhile (dropped as ``closed``) end the wait early.
        """
        return self._wait_until(lambda: not self._pending(), deadline)

    def _wait_until(self, done: Callable[[], bool], deadline: float) -> bool:
        with self._lock:
            self._flushers += 1
            self._work.notify_all()
            try:
                while not done():
                    remaining_s = deadline - _monotonic()
                    if remaining_s <= 0:
                        return False
                    self._progress.wait(remaining_s)
                return True
            finally:
                self._flushers -= 1

    def close_admission(self) -> None:
        """Refuse new events from now on."""
        with self._lock:
            self._closing = True
            self._work.notify_all()

    def stop(self) -> None:
        """Stop the senders; without a spool, queued events are dropped."""
        with self._lock:
            self.stopped = True
            self._work.notify_all()
            dropped: list[Item] = []
            if self.spool is None and self._queue:
                dropped = list(self._queue)
                self._queue.clear()
                self._dropped[DropReason.SHUTDOWN] += self._queued
                self._queued = 0
            self._notify_progress()
        self.dispatcher_wanted.set()
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
                pending=self._pending(),
                recovered=self._recovered,
                spool_bytes=spool_bytes,
                unpriced=dict(self._unpriced),
                blocked=self.blocked,
            )

    def _fly(self, items: Sequence[Item]) -> None:
        in_flight = self._in_flight
        for item in items:
            in_flight[id(item)] = item
        self._flying += events_in(items)

    def _land(self, items: Sequence[Item]) -> None:
        in_flight = self._in_flight
        for item in items:
            if in_flight.pop(id(item), None) is not None:
                self._flying -= item[3]

    def _pending(self) -> int:
        return self._queued + self._flying + self._disk_only

    def _resolved(self) -> int:
        return self._acked + self._quarantined + sum(self._dropped.values())

    def _notify_progress(self) -> None:
        if self._flushers:
            self._progress.notify_all()

    def _resolve_on_disk(self, items: Sequence[Item]) -> None:
        if self.spool is not None:
            self.spool.resolve(items)

    def _report_shutdown_drop(self, items: Sequence[Item]) -> None:
        logger.error(
            "Dropped %d unsent event(s) at close: no spool_dir was configured.",
            events_in(items),
        )
        self._hooks.dropped(self.records_of(items), DropReason.SHUTDOWN)
