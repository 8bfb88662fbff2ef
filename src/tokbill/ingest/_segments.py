"""Spool files: lanes and segments, preallocated, memory-mapped, faulted in
ahead of use, and read back after a crash.

``record`` copies events into a shared memory map of the current segment.
The first write to each 4 KiB page of a fresh map is a page fault (the
kernel allocates the page and marks it writable), which costs tens of
microseconds on a busy machine and happened on about one ``record`` call in
seven. :class:`Prefaulter` takes those faults on the spool's housekeeping
thread instead, ahead of the writer, with ``MADV_POPULATE_WRITE`` (Linux
5.14+) called through ctypes so that the GIL is released meanwhile; where
that is unavailable, the writer simply takes the faults itself.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import mmap
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from tokbill.ingest._frames import decode_indices, read_frames

__all__ = [
    "Item",
    "Lane",
    "Prefaulter",
    "Segment",
    "close_quietly",
    "events_in",
    "load_segment",
    "open_segment",
    "seal",
    "size_or_zero",
    "sync_directory",
    "try_lock",
]

logger = logging.getLogger(__name__)

FILE_MODE: Final = 0o600
NEVER: Final = sys.maxsize
"""A ``wake_at`` offset no write reaches."""
_MADV_POPULATE_WRITE: Final = 23
_PAGE: Final = mmap.PAGESIZE
_POPULATE_STEP: Final = 256 * 1024


Item = tuple[bytes | int, "Segment | None", int, int, int]
"""One queued record (see ``_records``): its JSON, or the offset of its frame
in the segment when only the spool holds it; the segment and index that
hold it on disk (``None, 0`` without a spool); its event count; its size."""


def events_in(items: Iterable[Item]) -> int:
    """The events the ``items`` hold together (an item is one call's record)."""
    return sum(item[3] for item in items)


class Lane:
    """A directory of segments owned by one meter, held by an flock."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self.lock_fd: int | None = lock_fd
        self.segments: dict[int, Segment] = {}


class Segment:
    """One segment file and what is known about its records.

    ``records`` is written only by the appending thread and ``resolved``
    only under the spool's lock, so neither update can lose the other.
    """

    __slots__ = (
        "address",
        "capacity",
        "done",
        "done_fd",
        "fd",
        "lane",
        "map",
        "number",
        "prefaulted",
        "read_fd",
        "records",
        "resolved",
        "sealed",
        "send_fd",
        "size",
        "wake_at",
    )

    def __init__(self, lane: Lane, number: int) -> None:
        self.lane = lane
        self.number = number
        self.fd: int | None = None
        self.map: mmap.mmap | None = None
        self.address = 0
        self.capacity = 0
        self.read_fd: int | None = None
        self.done_fd: int | None = None
        self.send_fd: int | None = None
        self.size = 0
        self.records = 0
        self.resolved = 0
        self.sealed = False
        self.done: bytearray | None = None
        self.prefaulted = 0
        self.wake_at = NEVER

    @property
    def unresolved(self) -> int:
        """Records neither acked, dropped nor quarantined yet."""
        return self.records - self.resolved

    def path(self, suffix: str) -> Path:
        return self.lane.path / f"{self.number:08d}{suffix}"


def open_segment(lane: Lane, number: int, capacity: int) -> Segment:
    """Create, preallocate and map a segment file of ``capacity`` bytes.

    Raises:
        OSError: the file cannot be created or the disk has no room for it.
    """
    segment = Segment(lane, number)
    fd = os.open(segment.path(".seg"), os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.posix_fallocate(fd, 0, capacity)
        segment.map = mmap.mmap(fd, capacity)
    except OSError:
        os.close(fd)
        segment.path(".seg").unlink(missing_ok=True)
        raise
    # The address is read once through a temporary buffer export, which is
    # released at once so that the map can still be closed.
    segment.address = ctypes.addressof(ctypes.c_char.from_buffer(segment.map))
    segment.fd = fd
    segment.capacity = capacity
    return segment


def seal(segment: Segment, memory: mmap.mmap | None) -> int:
    """Unmap ``memory``, the map a segment that takes no more records was
    detached from, and give back the segment's unused tail; return the
    bytes given back."""
    if memory is not None:
        memory.close()
    if segment.fd is None:
        return 0
    os.ftruncate(segment.fd, segment.size)
    close_quietly(segment.fd)
    segment.fd = None
    freed = segment.capacity - segment.size
    segment.capacity = segment.size
    return freed


class Prefaulter:
    """Faults the pages of a segment map in for writing, the GIL released.

    Only one thread may use it, and only that thread may unmap segments
    while it runs: an unmapped range would make the call fail harmlessly,
    but a range mapped again meanwhile would be populated needlessly.
    """

    def __init__(self) -> None:
        self._madvise = _libc_madvise()

    def populate(self, segment: Segment, end: int) -> None:
        """Fault in the pages of ``segment`` up to offset ``end``."""
        if self._madvise is None or segment.map is None:
            segment.prefaulted = max(segment.prefaulted, end)
            return
        start = segment.prefaulted - segment.prefaulted % _PAGE
        end = min(-(-end // _PAGE) * _PAGE, segment.capacity)
        # In steps, because the kernel holds the process's memory-map lock
        # for each call, and the writer's allocator may need it meanwhile.
        for step in range(start, end, _POPULATE_STEP):
            length = min(_POPULATE_STEP, end - step)
            if self._madvise(segment.address + step, length, _MADV_POPULATE_WRITE):
                code = ctypes.get_errno()
                if code in (errno.EINVAL, errno.ENOSYS, errno.EPERM):
                    # An older kernel: the writer takes the page faults.
                    logger.debug("The spool is not prefaulted: %s.", os.strerror(code))
                    self._madvise = None
                break
        segment.prefaulted = max(segment.prefaulted, end)


def load_segment(lane: Lane, number: int) -> tuple[Segment, list[bytes]]:
    """A segment left by another process, sealed, with the records it holds
    and which of them its ``.done`` file lists as resolved."""
    segment = Segment(lane, number)
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
    segment.resolved = sum(segment.done)
    return segment, payloads


def close_quietly(fd: int | None) -> None:
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            # Closing can only fail for a descriptor already gone; nothing
            # is pending on it.
            pass


def _libc_madvise() -> Callable[[int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


def try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def sync_directory(path: Path) -> None:
    # A new segment file survives a power loss only once its directory
    # entry is on disk too.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
