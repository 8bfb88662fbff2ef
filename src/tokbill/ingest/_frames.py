"""The on-disk record format of the spool: length, CRC-32, payload.

A process killed in the middle of a write leaves a torn last record; its CRC
(or its length running past the end of the file) gives it away, and reading
stops there. Nothing after a bad record is trusted. A zero length ends the
records too: segments are preallocated, so their unused tail reads as zeros,
and no record is empty.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from array import array
from collections.abc import Iterable

__all__ = [
    "FRAME_OVERHEAD",
    "decode_indices",
    "encode_indices",
    "frame",
    "read_frames",
    "write_frame",
]

_HEADER = struct.Struct("<II")
FRAME_OVERHEAD = _HEADER.size
_pack = _HEADER.pack
_pack_into = _HEADER.pack_into
_crc32 = zlib.crc32


def frame(payload: bytes) -> bytes:
    """``payload`` with its length and CRC-32 in front."""
    return _pack(len(payload), _crc32(payload)) + payload


def write_frame(buffer: mmap.mmap, offset: int, payload: bytes) -> int:
    """Write ``payload``, framed, into ``buffer`` at ``offset``; return the
    offset after it.

    The payload is written before its header, so a writer killed between
    the two leaves a zero length, which ends the records, rather than a
    header in front of a partial payload. Nothing is allocated on the way:
    after the caller's thread slept, each allocation costs cache misses
    (measured, framing into a new buffer first: p99 88 µs instead of 42).
    """
    start = offset + FRAME_OVERHEAD
    end = start + len(payload)
    buffer[start:end] = payload
    _pack_into(buffer, offset, len(payload), _crc32(payload))
    return end


def read_frames(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of the intact records at the start of ``data``.

    Returns the payloads and the offset where intact data ends, which is
    ``len(data)`` unless the tail is torn or corrupt.
    """
    payloads: list[bytes] = []
    offset = 0
    size = len(data)
    while offset + _HEADER.size <= size:
        length, crc = _HEADER.unpack_from(data, offset)
        if length == 0:
            break
        start = offset + _HEADER.size
        end = start + length
        if end > size:
            break
        payload = data[start:end]
        if zlib.crc32(payload) != crc:
            break
        payloads.append(payload)
        offset = end
    return payloads, offset


def encode_indices(indices: Iterable[int]) -> bytes:
    """A framed list of record indices, as the ``.done`` files hold them."""
    return frame(array("I", indices).tobytes())


def decode_indices(data: bytes) -> list[int]:
    """Every index in the intact frames of a ``.done`` file."""
    payloads, _ = read_frames(data)
    indices: list[int] = []
    for payload in payloads:
        if len(payload) % 4 == 0:
            indices.extend(array("I", payload))
    return indices
