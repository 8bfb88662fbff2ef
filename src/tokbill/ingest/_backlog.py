"""Reading records that wait on disk only: recovered, or spilled past the
memory buffer. The spool holds the cursors; these functions do the reads."""

from __future__ import annotations

import os
from typing import Final

from tokbill.ingest._frames import FRAME_OVERHEAD, read_frames
from tokbill.ingest._records import event_count
from tokbill.ingest._segments import Item, Segment

__all__ = ["Cursor", "read_from", "unresolved_records"]

_READ_CHUNK_BYTES: Final = 1024 * 1024
"""Bytes read from a segment at a time, to bound the memory of one read."""


class Cursor:
    """A position in a segment from which records are still to be read."""

    __slots__ = ("index", "offset", "segment")

    def __init__(self, segment: Segment, offset: int, index: int) -> None:
        self.segment = segment
        self.offset = offset
        self.index = index


def read_from(cursor: Cursor, end: int, limit: int) -> list[Item]:
    """Unresolved records between the cursor and ``end``, until they hold
    ``limit`` events (or three more, a record holding up to four), advancing
    the cursor past what was read; on one thread only."""
    segment = cursor.segment
    if segment.read_fd is None:
        segment.read_fd = os.open(segment.path(".seg"), os.O_RDONLY)
    size = min(end - cursor.offset, _READ_CHUNK_BYTES)
    payloads, _ = read_frames(os.pread(segment.read_fd, size, cursor.offset))
    found: list[Item] = []
    events = 0
    for payload in payloads:
        if events >= limit:
            break
        index = cursor.index
        cursor.index += 1
        cursor.offset += FRAME_OVERHEAD + len(payload)
        if segment.done is None or not segment.done[index]:
            count = event_count(payload)
            found.append((payload, segment, index, count, len(payload)))
            events += count
    return found


def unresolved_records(
    segment: Segment, offset: int, index: int, end: int
) -> list[bytes]:
    """The unresolved records of ``segment`` from ``offset`` (the record
    numbered ``index``) to ``end``, read without moving any cursor."""
    try:
        fd = os.open(segment.path(".seg"), os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        payloads, _ = read_frames(os.pread(fd, end - offset, offset))
    finally:
        os.close(fd)
    done = segment.done
    return [
        payload
        for number, payload in enumerate(payloads, start=index)
        if done is None or not done[number]
    ]
