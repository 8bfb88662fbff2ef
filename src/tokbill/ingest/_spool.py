"""A write-ahead spool: what ``record`` accepted survives a killed process.

Layout under ``spool_dir``::

    lane-<pid>-<ns>/        one per live meter, locked with flock(2)
        lock
        00000001.seg        framed call records (see ``_records``), append-only
        00000001.done       framed indices of the records Lago resolved
    dead-letter.jsonl       events Lago rejected, with its error, and records
                            of dead lanes this version cannot read, one a
                            line, up to ``dead_letter_max_bytes``

Guarantees and limits:

- ``append`` copies the record into a shared memory map of a preallocated
  segment, on the caller's thread, with no system call and no lock of its
  own (the caller serialises appends), so ``record`` never gives up the
  GIL mid-call. The record is in the page cache when ``record`` returns, so
  it survives ``kill -9`` of the process. It survives a power loss only
  with ``fsync_interval_s`` set, and then only what was written more than
  that interval before the loss. Segments are reserved with
  ``posix_fallocate``, so a full disk is an error at rotation, never a
  fault while writing into the map.
- The slow work happens on the housekeeping thread (:meth:`Spool.maintain`):
  faulting pages in ahead of the writer, preparing the next segment while
  the current one fills, sealing full ones (about 1.5 ms each). ``append``
  creates a segment itself only if that thread fell behind.
- A lane is owned by one meter (flock). A lane whose lock is free belongs to
  a dead process and is adopted by the next meter on the same ``spool_dir``:
  its records not listed in a ``.done`` file are sent again. Lago dedupes on
  ``transaction_id``, so a record acked just before a crash is not billed
  twice.
- A segment is deleted once all its records are resolved (acked, dropped or
  quarantined) and it is sealed.
- Disk use is bounded by ``max_bytes``, the prepared next segment included;
  ``append`` refuses past it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from tokbill.ingest._backlog import Cursor, read_from, unresolved_records
from tokbill.ingest._frames import FRAME_OVERHEAD, encode_indices, write_frame
from tokbill.ingest._records import event_count
from tokbill.ingest._segments import (
    FILE_MODE,
    NEVER,
    Item,
    Lane,
    Prefaulter,
    Segment,
    close_quietly,
    events_in,
    load_segment,
    open_segment,
    seal,
    size_or_zero,
    sync_directory,
    try_lock,
)

__all__ = ["DEAD_LETTER_NAME", "Item", "Spool", "SpoolFullError"]

logger = logging.getLogger(__name__)

DEAD_LETTER_NAME = "dead-letter.jsonl"
_LANE_PREFIX = "lane-"
_LOCK_NAME = "lock"
_PREFAULT_AHEAD: Final = 1024 * 1024
"""Bytes of the current segment kept faulted in ahead of the writer: at
8,000 events/s (about 80 bytes each) that is over a second of writing."""


class SpoolFullError(Exception):
    """The spool cannot take more records (its bound, or the disk, is full)."""


class Spool:
    """The durable side of a meter's buffer; see the module docstring.

    Thread safety: :meth:`append` must be serialised by the caller (the
    pipeline's lock) and takes the spool's lock only to switch segments;
    every other method takes the spool's lock. :meth:`read_backlog` and
    :meth:`maintain` run on one thread only (the dispatcher).
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        segment_bytes: int,
        dead_letter_max_bytes: int,
        fsync_interval_s: float | None,
        wake: Callable[[], object],
    ) -> None:
        self.root = root
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._dead_letter_max_bytes = dead_letter_max_bytes
        self._fsync_interval_s = fsync_interval_s
        self._wake = wake
        self._lock = threading.Lock()
        self._bytes = 0
        self._lane: Lane | None = None
        self._head: Segment | None = None
        self._spare: Segment | None = None
        self._full: list[Segment] = []
        self._parts: dict[tuple[Segment, int], int] = {}
        self._next_number = 1
        self._adopted: list[Lane] = []
        self._backlog: deque[Cursor] = deque()
        self._spill: Cursor | None = None
        self._unsynced = False
        self._last_sync = time.monotonic()
        self._closed = False
        self._prefaulter = Prefaulter()

    @property
    def bytes_used(self) -> int:
        """Bytes of segments and ``.done`` files this spool owns or adopted."""
        return self._bytes

    @property
    def dead_letter_path(self) -> Path:
        """The file quarantined events are appended to."""
        return self.root / DEAD_LETTER_NAME

    def open(self) -> None:
        """Create and lock this meter's lane under ``root``.

        Raises:
            OSError: the lane cannot be created.
            SpoolFullError: there is no room for its first segment.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{_LANE_PREFIX}{os.getpid()}-{time.time_ns()}"
        # Locked before it gets a name other meters look for, so no one can
        # mistake a lane being born for one whose owner died.
        nascent = self.root / f".{name}"
        nascent.mkdir()
        lock_fd = try_lock(nascent / _LOCK_NAME)
        if lock_fd is None:
            raise OSError(f"The new spool lane {nascent} is locked by someone else.")
        path = self.root / name
        nascent.rename(path)
        self._lane = Lane(path, lock_fd)
        try:
            self._head = self._new_segment(0)
        except SpoolFullError:
            self._release(self._lane, remove=True)
            self._lane = None
            raise

    def append(self, record: bytes) -> tuple[Segment, int, int]:
        """Copy ``record`` into the segment map; return the segment, the
        record's index there and the offset of its frame (see :meth:`records`).

        Raises:
            SpoolFullError: past ``max_bytes``, or the disk has no room for
                a new segment.
        """
        head = self._head
        framed = FRAME_OVERHEAD + len(record)
        if head is None or head.size + framed > head.capacity:
            head = self._rotate(framed)
        offset = head.size
        end = write_frame(head.map, offset, record)  # type: ignore[arg-type]
        index = head.records
        head.records = index + 1
        head.size = end
        self._unsynced = True
        if end >= head.wake_at:
            head.wake_at = NEVER
            self._wake()
        return head, index, offset

    def begin_spill(self) -> None:
        """From now on, appended records also wait in the backlog."""
        with self._lock:
            head = self._head
            assert head is not None
            if self._spill is None:
                self._spill = Cursor(head, head.size, head.records)
                self._backlog.append(self._spill)

    def end_spill_if_caught_up(self) -> bool:
        """Stop spilling if the backlog holds nothing written since it began.

        The caller holds the lock that serialises ``append``, so no record
        can slip in between this check and the switch.
        """
        with self._lock:
            spill = self._spill
            if spill is None:
                return True
            if spill.segment is not self._head or spill.offset < spill.segment.size:
                return False
            self._backlog.remove(spill)
            self._spill = None
            return True

    def split(self, segment: Segment, index: int, parts: int) -> None:
        """The record at ``index`` now travels as ``parts`` items; it is
        resolved on disk once all of them are."""
        with self._lock:
            key = (segment, index)
            self._parts[key] = self._parts.get(key, 1) - 1 + parts

    def resolve(self, items: Iterable[Item]) -> None:
        """Record that Lago resolved these items; delete finished segments."""
        by_segment: dict[Segment, list[int]] = {}
        with self._lock:
            for _, segment, index, _, _ in items:
                if segment is not None and self._last_part(segment, index):
                    by_segment.setdefault(segment, []).append(index)
            if not by_segment:
                return
            for segment, indices in by_segment.items():
                self._resolve_in(segment, indices)
            for lane in {segment.lane for segment in by_segment}:
                self._release_if_drained(lane)

    def records(self, items: Sequence[Item]) -> list[bytes]:
        """The record of each item, read from the segment when the item only
        points there."""
        found: list[bytes] = []
        with self._lock:
            for data, segment, _, _, size in items:
                if isinstance(data, bytes):
                    found.append(data)
                    continue
                assert segment is not None
                start = data + FRAME_OVERHEAD
                if segment.map is not None:
                    found.append(segment.map[start : start + size])
                else:
                    found.append(self._pread(segment, start, size))
        return found

    def maintain(self) -> None:
        """Seal full segments, prepare the next one, and fault pages in
        ahead of the writer; on the dispatcher's thread only."""
        self._seal_full()
        self._keep_ahead_of_writer()

    def adopt_orphans(self) -> int:
        """Take over lanes of dead processes; return how many events await."""
        pending = 0
        owned = {lane.path for lane in self._adopted}
        if self._lane is not None:
            owned.add(self._lane.path)
        for path in sorted(self.root.glob(f"{_LANE_PREFIX}*")):
            if path in owned or not path.is_dir():
                continue
            lock_fd = try_lock(path / _LOCK_NAME)
            if lock_fd is not None:
                pending += self._adopt(Lane(path, lock_fd))
        return pending

    def read_backlog(self, limit: int) -> list[Item]:
        """Records that wait on disk only, oldest lanes first, until they
        hold ``limit`` events (or up to three more)."""
        found: list[Item] = []
        events = 0
        while events < limit:
            with self._lock:
                cursor = self._backlog[0] if self._backlog else None
                end = cursor.segment.size if cursor else 0
            if cursor is None:
                break
            start = cursor.offset
            read = read_from(cursor, end, limit - events)
            found.extend(read)
            events += events_in(read)
            with self._lock:
                if self._is_exhausted(cursor):
                    self._backlog.popleft()
                    self._close_read_fd(cursor.segment)
                elif cursor.offset == start or cursor.offset >= end:
                    break
        return found

    def peek_backlog(self) -> list[bytes]:
        """The records that wait on disk only, without taking them.

        The caller keeps :meth:`read_backlog` from running meanwhile, so no
        record moves between the disk and memory unseen. Costs a read of
        the backlog's segments.
        """
        with self._lock:
            spans = [
                (c.segment, c.offset, c.index, c.segment.size) for c in self._backlog
            ]
        return [record for span in spans for record in unresolved_records(*span)]

    def dead_letter(self, entries: Sequence[dict[str, Any]]) -> int:
        """Append ``entries`` as JSON lines to the dead-letter file, as many
        as fit in its bound; return how many were left out."""
        lines = [(json.dumps(entry) + "\n").encode() for entry in entries]
        fd = os.open(
            self.dead_letter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE
        )
        try:
            room = self._dead_letter_max_bytes - os.fstat(fd).st_size
            kept = 0
            while kept < len(lines) and len(lines[kept]) <= room:
                room -= len(lines[kept])
                kept += 1
            if kept:
                os.write(fd, b"".join(lines[:kept]))
        finally:
            os.close(fd)
        return len(lines) - kept

    def sync_if_due(self, now: float) -> None:
        """fsync the segment being written, at most once per interval."""
        if self._fsync_interval_s is None or not self._unsynced:
            return
        if now - self._last_sync < self._fsync_interval_s:
            return
        with self._lock:
            head = self._head
            self._unsynced = False
            self._last_sync = now
            if head is not None and head.map is not None:
                head.map.flush()
                sync_directory(head.lane.path)

    def close(self) -> None:
        """Release every lane; delete the own lane if nothing in it is pending."""
        with self._lock:
            self._backlog.clear()
            self._spill = None
            for lane in self._lanes():
                for segment in list(lane.segments.values()):
                    memory, segment.map = segment.map, None
                    self._mark_sealed(segment, seal(segment, memory))
                self._release(lane, remove=not lane.segments)
            self._adopted.clear()
            self._lane = None
            self._head = self._spare = None
            self._full = []
            self._closed = True

    def forget(self) -> None:
        """In a forked child: drop the parent's files without touching them."""
        for lane in self._lanes():
            for segment in lane.segments.values():
                if segment.map is not None:
                    segment.map.close()
                for fd in (segment.fd, segment.read_fd, segment.done_fd):
                    close_quietly(fd)
                close_quietly(segment.send_fd)
            close_quietly(lane.lock_fd)
        self._adopted.clear()
        self._lane = None
        self._head = self._spare = None
        self._full = []
        self._backlog.clear()
        self._lock = threading.Lock()
        self._bytes = 0

    def _lanes(self) -> list[Lane]:
        return [*self._adopted, *([self._lane] if self._lane else [])]

    def _pread(self, segment: Segment, start: int, size: int) -> bytes:
        # The segment outlives every unresolved record in it, and its
        # descriptor is opened and closed under the lock held here.
        if segment.send_fd is None:
            segment.send_fd = os.open(segment.path(".seg"), os.O_RDONLY)
        return os.pread(segment.send_fd, size, start)

    def _last_part(self, segment: Segment, index: int) -> bool:
        remaining = self._parts.get((segment, index))
        if remaining is None:
            return True
        if remaining > 1:
            self._parts[(segment, index)] = remaining - 1
            return False
        del self._parts[(segment, index)]
        return True

    def _rotate(self, incoming: int) -> Segment:
        with self._lock:
            old = self._head
            if old is None:
                raise SpoolFullError("The spool is closed.")
            spare = self._spare
            if spare is not None and incoming <= spare.capacity:
                self._spare = None
                new = spare
            else:
                new = self._new_segment(incoming)
            self._head = new
            self._full.append(old)
            if self._spill is not None:
                self._backlog.append(Cursor(new, 0, 0))
                self._spill = self._backlog[-1]
        self._wake()
        return new

    def _new_segment(self, incoming: int) -> Segment:
        assert self._lane is not None
        capacity = max(min(self._segment_bytes, self._max_bytes), incoming)
        if self._bytes + capacity > self._max_bytes:
            raise SpoolFullError(f"The spool holds its limit of {self._max_bytes} B.")
        try:
            segment = open_segment(self._lane, self._next_number, capacity)
        except OSError as exc:
            raise SpoolFullError(f"No room for a spool segment: {exc}.") from exc
        self._next_number += 1
        self._bytes += capacity
        self._lane.segments[segment.number] = segment
        return segment

    def _seal_full(self) -> None:
        with self._lock:
            full, self._full = self._full, []
            # Detached under the lock, so that readers see a map or none.
            detached = [(segment, segment.map) for segment in full]
            for segment in full:
                segment.map = None
        for segment, memory in detached:
            # Nothing writes to a full segment any more, so the slow unmap
            # and truncation run outside the lock.
            freed = seal(segment, memory)
            with self._lock:
                self._mark_sealed(segment, freed)

    def _keep_ahead_of_writer(self) -> None:
        with self._lock:
            head = self._head
            if head is None:
                return
            if self._spare is None and head.size * 2 >= head.capacity:
                self._spare = self._spare_or_none()
            spare = self._spare
        for ahead in (head, spare):
            if ahead is not None:
                self._prefaulter.populate(ahead, ahead.size + _PREFAULT_AHEAD)
        head.wake_at = self._next_wake(head, spare is not None)

    def _spare_or_none(self) -> Segment | None:
        try:
            return self._new_segment(0)
        except SpoolFullError:
            # No room for a spare now: the writer will try when it needs one.
            return None

    def _next_wake(self, head: Segment, has_spare: bool) -> int:
        # The offsets at which the writer should call for this thread again:
        # half-way through the prefaulted stretch, and half-way through the
        # segment while no spare is ready. Past both, the periodic tick does.
        marks = []
        if head.prefaulted < head.capacity:
            marks.append(head.prefaulted - _PREFAULT_AHEAD // 2)
        if not has_spare:
            marks.append(head.capacity // 2)
        return min((mark for mark in marks if mark > head.size), default=NEVER)

    def _resolve_in(self, segment: Segment, indices: list[int]) -> None:
        data = encode_indices(indices)
        if segment.done_fd is None:
            segment.done_fd = os.open(
                segment.path(".done"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                FILE_MODE,
            )
        os.write(segment.done_fd, data)
        self._bytes += len(data)
        segment.resolved += len(indices)
        if not self._closed:
            self._delete_if_finished(segment)

    def _mark_sealed(self, segment: Segment, freed: int) -> None:
        segment.sealed = True
        self._bytes -= freed
        self._delete_if_finished(segment)

    def _delete_if_finished(self, segment: Segment) -> None:
        if not segment.sealed or segment.unresolved > 0:
            return
        if segment.lane.segments.get(segment.number) is not segment:
            return  # deleted already
        if any(cursor.segment is segment for cursor in self._backlog):
            return
        for fd in (segment.fd, segment.read_fd, segment.done_fd, segment.send_fd):
            close_quietly(fd)
        self._bytes -= segment.capacity + size_or_zero(segment.path(".done"))
        for suffix in (".seg", ".done"):
            segment.path(suffix).unlink(missing_ok=True)
        segment.lane.segments.pop(segment.number, None)

    def _release_if_drained(self, lane: Lane) -> None:
        if lane in self._adopted and not lane.segments:
            self._release(lane, remove=True)
            self._adopted.remove(lane)

    def _adopt(self, lane: Lane) -> int:
        pending = 0
        with self._lock:
            self._adopted.append(lane)
            for done_path in lane.path.glob("*.done"):
                # Its owner died between deleting the segment and this file.
                if not done_path.with_suffix(".seg").exists():
                    done_path.unlink(missing_ok=True)
            for seg_path in sorted(lane.path.glob("*.seg")):
                pending += self._adopt_segment(lane, int(seg_path.stem))
            self._release_if_drained(lane)
        return pending

    def _adopt_segment(self, lane: Lane, number: int) -> int:
        segment, payloads = load_segment(lane, number)
        lane.segments[number] = segment
        self._bytes += segment.capacity + size_or_zero(segment.path(".done"))
        done = segment.done or bytearray(len(payloads))
        pending = 0
        unreadable: list[int] = []
        for index, (payload, resolved) in enumerate(zip(payloads, done, strict=True)):
            if resolved:
                continue
            try:
                pending += event_count(payload)
            except ValueError:
                unreadable.append(index)
        if unreadable:
            self._set_aside(segment, payloads, unreadable)
        if not segment.unresolved:
            self._delete_if_finished(segment)
            return 0
        self._backlog.appendleft(Cursor(segment, 0, 0))
        return pending

    def _set_aside(
        self, segment: Segment, payloads: list[bytes], indices: list[int]
    ) -> None:
        # A record whose frame is intact but whose content this version
        # cannot read (another version's format, a hand edit) must not hold
        # back the records after it. It is copied to the dead-letter file and
        # then marked resolved; if the copy fails it is only skipped in this
        # process, so its segment stays on disk for the next one.
        assert segment.done is not None
        entries = [
            {
                "record": payloads[index].decode("utf-8", "replace"),
                "error": "unreadable spool record",
                "segment": str(segment.path(".seg")),
                "index": index,
                "quarantined_at": time.time(),
            }
            for index in indices
        ]
        try:
            kept = self.dead_letter(entries) == 0
        except OSError:
            kept = False
        for index in indices:
            segment.done[index] = 1
        if kept:
            self._resolve_in(segment, indices)
        logger.error(
            "Set aside %d unreadable record(s) in %s, %s; they are not sent.",
            len(indices),
            segment.path(".seg"),
            f"copied to {self.dead_letter_path}" if kept else "left in place",
        )

    def _is_exhausted(self, cursor: Cursor) -> bool:
        # A segment other than the head takes no more records.
        return (
            cursor.segment is not self._head
            and cursor.offset >= cursor.segment.size
            and cursor is not self._spill
        )

    def _close_read_fd(self, segment: Segment) -> None:
        close_quietly(segment.read_fd)
        segment.read_fd = None
        self._delete_if_finished(segment)
        self._release_if_drained(segment.lane)

    def _release(self, lane: Lane, *, remove: bool) -> None:
        if remove:
            (lane.path / _LOCK_NAME).unlink(missing_ok=True)
            try:
                lane.path.rmdir()
            except OSError:
                logger.warning("Could not remove the spool lane %s.", lane.path)
        close_quietly(lane.lock_fd)
        lane.lock_fd = None
