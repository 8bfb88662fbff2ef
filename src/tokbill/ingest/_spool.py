"""A write-ahead spool: what ``record`` accepted survives a killed process.

Layout under ``spool_dir``::

    lane-<pid>-<ns>/        one per live meter, locked with flock(2)
        lock
        00000001.seg        framed event JSON, append-only, rotated by size
        00000001.done       framed indices of the records Lago resolved
    dead-letter.jsonl       events Lago rejected, with its error, one a line

Guarantees and limits:

- ``append`` copies the record into a shared memory map of a preallocated
  segment, on the caller's thread: no system call (which would let another
  thread take the GIL mid-``record``), and the record is in the page cache
  when ``record`` returns, so it survives ``kill -9`` of the process. It
  survives a power loss only with ``fsync_interval_s`` set, and then only
  what was written more than that interval before the loss. Segments are
  reserved with ``posix_fallocate``, so a full disk is an error at rotation,
  never a fault while writing into the map.
- A lane is owned by one meter (flock). A lane whose lock is free belongs to
  a dead process and is adopted by the next meter on the same ``spool_dir``:
  its records not listed in a ``.done`` file are sent again. Lago dedupes on
  ``transaction_id``, so a record acked just before a crash is not billed
  twice.
- A segment is deleted once all its records are resolved (acked, dropped or
  quarantined) and it is no longer written to.
- Disk use is bounded by ``max_bytes``; ``append`` refuses past it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import mmap
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokbill.ingest._frames import (
    FRAME_OVERHEAD,
    decode_indices,
    encode_indices,
    frame,
    read_frames,
)

__all__ = ["DEAD_LETTER_NAME", "Ref", "Spool", "SpoolFullError"]

logger = logging.getLogger(__name__)

DEAD_LETTER_NAME = "dead-letter.jsonl"
_LANE_PREFIX = "lane-"
_LOCK_NAME = "lock"
_FILE_MODE = 0o600
_READ_CHUNK_BYTES = 1024 * 1024


class SpoolFullError(Exception):
    """The spool cannot take more records (its bound, or the disk, is full)."""


class _Segment:
    """One segment file and what is known about its records."""

    __slots__ = (
        "done",
        "capacity",
        "done_fd",
        "fd",
        "map",
        "lane",
        "number",
        "read_fd",
        "records",
        "sealed",
        "size",
        "unresolved",
    )

    def __init__(self, lane: _Lane, number: int) -> None:
        self.lane = lane
        self.number = number
        self.fd: int | None = None
        self.map: mmap.mmap | None = None
        self.capacity = 0
        self.read_fd: int | None = None
        self.done_fd: int | None = None
        self.size = 0
        self.records = 0
        self.unresolved = 0
        self.sealed = False
        self.done: bytearray | None = None

    def path(self, suffix: str) -> Path:
        return self.lane.path / f"{self.number:08d}{suffix}"


Ref = tuple[_Segment, int]
"""Where one record lives: its segment and its index there."""


class _Lane:
    """A directory of segments owned by one meter, held by an flock."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self.lock_fd: int | None = lock_fd
        self.segments: dict[int, _Segment] = {}


class _Cursor:
    """A position in a segment from which records are still to be read."""

    __slots__ = ("index", "offset", "segment")

    def __init__(self, segment: _Segment, offset: int, index: int) -> None:
        self.segment = segment
        self.offset = offset
        self.index = index


class Spool:
    """The durable side of a meter's buffer; see the module docstring.

    Thread safety: every method takes the spool's own lock, except the file
    reads of :meth:`read_backlog`, which only one thread (the dispatcher) runs.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        segment_bytes: int,
        fsync_interval_s: float | None,
    ) -> None:
        self.root = root
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync_interval_s = fsync_interval_s
        self._lock = threading.Lock()
        self._bytes = 0
        self._lane: _Lane | None = None
        self._head: _Segment | None = None
        self._adopted: list[_Lane] = []
        self._backlog: deque[_Cursor] = deque()
        self._spill: _Cursor | None = None
        self._unsynced = False
        self._last_sync = time.monotonic()
        self._closed = False

    @property
    def bytes_used(self) -> int:
        """Bytes of segments and ``.done`` files this spool owns or adopted."""
        return self._bytes

    @property
    def dead_letter_path(self) -> Path:
        """The file quarantined events are appended to."""
        return self.root / DEAD_LETTER_NAME

    def open(self) -> None:
        """Create and lock this meter's lane under ``root``."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{_LANE_PREFIX}{os.getpid()}-{time.time_ns()}"
        # Locked before it gets a name other meters look for, so no one can
        # mistake a lane being born for one whose owner died.
        nascent = self.root / f".{name}"
        nascent.mkdir()
        lock_fd = _try_lock(nascent / _LOCK_NAME)
        if lock_fd is None:
            raise OSError(f"The new spool lane {nascent} is locked by someone else.")
        path = self.root / name
        nascent.rename(path)
        self._lane = _Lane(path, lock_fd)
        self._head = self._new_segment(1)

    def append(self, payloads: Sequence[bytes]) -> list[Ref]:
        """Copy ``payloads`` into the segment map and return where they are.

        Raises:
            SpoolFullError: past ``max_bytes``, or the disk has no room for
                a new segment.
        """
        data = b"".join([frame(payload) for payload in payloads])
        with self._lock:
            head = self._writable_head(len(data))
            assert head.map is not None
            end = head.size + len(data)
            head.map[head.size : end] = data
            first = head.records
            head.size = end
            head.records += len(payloads)
            head.unresolved += len(payloads)
            self._unsynced = True
        return [(head, first + offset) for offset in range(len(payloads))]

    def begin_spill(self) -> None:
        """From now on, appended records also wait in the backlog."""
        with self._lock:
            head = self._head
            assert head is not None
            if self._spill is None:
                self._spill = _Cursor(head, head.size, head.records)
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

    def resolve(self, refs: Iterable[Ref]) -> None:
        """Record that Lago resolved these records; delete finished segments."""
        by_segment: dict[_Segment, list[int]] = {}
        for segment, index in refs:
            by_segment.setdefault(segment, []).append(index)
        with self._lock:
            for segment, indices in by_segment.items():
                self._resolve_in(segment, indices)
            for lane in {segment.lane for segment in by_segment}:
                self._release_if_drained(lane)

    def adopt_orphans(self) -> int:
        """Take over lanes of dead processes; return how many records await."""
        pending = 0
        owned = {lane.path for lane in self._adopted}
        if self._lane is not None:
            owned.add(self._lane.path)
        for path in sorted(self.root.glob(f"{_LANE_PREFIX}*")):
            if path in owned or not path.is_dir():
                continue
            lock_fd = _try_lock(path / _LOCK_NAME)
            if lock_fd is not None:
                pending += self._adopt(_Lane(path, lock_fd))
        return pending

    def read_backlog(self, limit: int) -> list[tuple[bytes, Ref]]:
        """Up to ``limit`` records that wait on disk only, oldest lanes first."""
        found: list[tuple[bytes, Ref]] = []
        while len(found) < limit:
            with self._lock:
                cursor = self._backlog[0] if self._backlog else None
                end = cursor.segment.size if cursor else 0
            if cursor is None:
                break
            start = cursor.offset
            found.extend(self._read_from(cursor, end, limit - len(found)))
            with self._lock:
                if self._is_exhausted(cursor):
                    self._backlog.popleft()
                    self._close_read_fd(cursor.segment)
                elif cursor.offset == start or cursor.offset >= end:
                    break
        return found

    def dead_letter(self, entries: Sequence[dict[str, Any]]) -> None:
        """Append ``entries`` as JSON lines to the dead-letter file."""
        data = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
        fd = os.open(
            self.dead_letter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE
        )
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

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
                _sync_directory(head.lane.path)

    def close(self) -> None:
        """Release every lane; delete the own lane if nothing in it is pending."""
        with self._lock:
            self._backlog.clear()
            self._spill = None
            for lane in [*self._adopted, *([self._lane] if self._lane else [])]:
                for segment in list(lane.segments.values()):
                    self._seal(segment)
                    self._delete_if_finished(segment)
                self._release(lane, remove=not lane.segments)
            self._adopted.clear()
            self._lane = None
            self._head = None
            self._closed = True

    def forget(self) -> None:
        """In a forked child: drop the parent's files without touching them."""
        for lane in [*self._adopted, *([self._lane] if self._lane else [])]:
            for segment in lane.segments.values():
                if segment.map is not None:
                    segment.map.close()
                for fd in (segment.fd, segment.read_fd, segment.done_fd):
                    _close_quietly(fd)
            _close_quietly(lane.lock_fd)
        self._adopted.clear()
        self._lane = None
        self._head = None
        self._backlog.clear()
        self._lock = threading.Lock()
        self._bytes = 0

    def _writable_head(self, incoming: int) -> _Segment:
        head = self._head
        if head is None:
            raise SpoolFullError("The spool is closed.")
        if head.size + incoming > head.capacity:
            head = self._rotate(head, incoming)
        return head

    def _rotate(self, head: _Segment, incoming: int) -> _Segment:
        new = self._new_segment(head.number + 1, incoming)
        self._seal(head)
        if self._spill is not None:
            self._backlog.append(_Cursor(new, 0, 0))
            self._spill = self._backlog[-1]
        self._delete_if_finished(head)
        return new

    def _seal(self, segment: _Segment) -> None:
        # Give back the reserved tail: the segment never grows again.
        segment.sealed = True
        if segment.map is not None:
            segment.map.close()
            segment.map = None
        if segment.fd is not None:
            os.ftruncate(segment.fd, segment.size)
            _close_quietly(segment.fd)
            segment.fd = None
            self._bytes -= segment.capacity - segment.size
            segment.capacity = segment.size

    def _new_segment(self, number: int, incoming: int = 0) -> _Segment:
        assert self._lane is not None
        capacity = max(min(self._segment_bytes, self._max_bytes), incoming)
        if self._bytes + capacity > self._max_bytes:
            raise SpoolFullError(f"The spool holds its limit of {self._max_bytes} B.")
        segment = _Segment(self._lane, number)
        fd = os.open(segment.path(".seg"), os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            os.posix_fallocate(fd, 0, capacity)
            segment.map = mmap.mmap(fd, capacity)
        except OSError as exc:
            os.close(fd)
            segment.path(".seg").unlink(missing_ok=True)
            raise SpoolFullError(f"No room for a spool segment: {exc}.") from exc
        segment.fd = fd
        segment.capacity = capacity
        self._bytes += capacity
        self._lane.segments[number] = segment
        self._head = segment
        return segment

    def _resolve_in(self, segment: _Segment, indices: list[int]) -> None:
        data = encode_indices(indices)
        if segment.done_fd is None:
            segment.done_fd = os.open(
                segment.path(".done"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                _FILE_MODE,
            )
        os.write(segment.done_fd, data)
        self._bytes += len(data)
        segment.unresolved -= len(indices)
        if not self._closed:
            self._delete_if_finished(segment)

    def _delete_if_finished(self, segment: _Segment) -> None:
        if not segment.sealed or segment.unresolved > 0:
            return
        if any(cursor.segment is segment for cursor in self._backlog):
            return
        for fd in (segment.fd, segment.read_fd, segment.done_fd):
            _close_quietly(fd)
        self._bytes -= segment.capacity + _size_or_zero(segment.path(".done"))
        for suffix in (".seg", ".done"):
            segment.path(suffix).unlink(missing_ok=True)
        segment.lane.segments.pop(segment.number, None)

    def _release_if_drained(self, lane: _Lane) -> None:
        if lane in self._adopted and not lane.segments:
            self._release(lane, remove=True)
            self._adopted.remove(lane)

    def _adopt(self, lane: _Lane) -> int:
        pending = 0
        with self._lock:
            self._adopted.append(lane)
            for seg_path in sorted(lane.path.glob("*.seg")):
                pending += self._adopt_segment(lane, int(seg_path.stem))
            self._release_if_drained(lane)
        return pending

    def _adopt_segment(self, lane: _Lane, number: int) -> int:
        segment = _Segment(lane, number)
        segment.sealed = True
        data = segment.path(".seg").read_bytes()
        payloads, valid = read_frames(data)
        if data.count(0, valid) < len(data) - valid:
            logger.warning(
                "Skipped a torn or corrupt tail of %d bytes in %s.",
                len(data) - valid,
                segment.path(".seg"),
            )
        segment.size = valid
        segment.capacity = len(data)
        segment.records = len(payloads)
        segment.done = bytearray(len(payloads))
        done_path = segment.path(".done")
        if done_path.exists():
            for index in decode_indices(done_path.read_bytes()):
                if index < len(payloads):
                    segment.done[index] = 1
        segment.unresolved = len(payloads) - sum(segment.done)
        lane.segments[number] = segment
        self._bytes += len(data) + _size_or_zero(done_path)
        if segment.unresolved:
            self._backlog.appendleft(_Cursor(segment, 0, 0))
        else:
            self._delete_if_finished(segment)
        return segment.unresolved

    def _read_from(
        self, cursor: _Cursor, end: int, limit: int
    ) -> list[tuple[bytes, Ref]]:
        segment = cursor.segment
        if segment.read_fd is None:
            segment.read_fd = os.open(segment.path(".seg"), os.O_RDONLY)
        size = min(end - cursor.offset, _READ_CHUNK_BYTES)
        payloads, _ = read_frames(os.pread(segment.read_fd, size, cursor.offset))
        found: list[tuple[bytes, Ref]] = []
        for payload in payloads:
            if len(found) >= limit:
                break
            index = cursor.index
            cursor.index += 1
            cursor.offset += FRAME_OVERHEAD + len(payload)
            if segment.done is None or not segment.done[index]:
                found.append((payload, (segment, index)))
        return found

    def _is_exhausted(self, cursor: _Cursor) -> bool:
        segment = cursor.segment
        return (
            segment.sealed
            and cursor.offset >= segment.size
            and cursor is not self._spill
        )

    def _close_read_fd(self, segment: _Segment) -> None:
        _close_quietly(segment.read_fd)
        segment.read_fd = None
        self._delete_if_finished(segment)
        self._release_if_drained(segment.lane)

    def _release(self, lane: _Lane, *, remove: bool) -> None:
        if remove:
            (lane.path / _LOCK_NAME).unlink(missing_ok=True)
            try:
                lane.path.rmdir()
            except OSError:
                logger.warning("Could not remove the spool lane %s.", lane.path)
        _close_quietly(lane.lock_fd)
        lane.lock_fd = None


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _close_quietly(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            # Closing can only fail for a descriptor already gone; nothing
            # is pending on it.
            pass


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sync_directory(path: Path) -> None:
    # A new segment file survives a power loss only once its directory
    # entry is on disk too.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
