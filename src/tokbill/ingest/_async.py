"""AsyncTokenMeter: the same meter, with ``flush`` and ``close`` awaitable."""

from __future__ import annotations

import asyncio

from typing_extensions import Self

from tokbill.ingest._meter import MeterBase
from tokbill.ingest._report import FlushReport

__all__ = ["AsyncTokenMeter"]


class AsyncTokenMeter(MeterBase):
    """A :class:`TokenMeter` for asyncio code.

    ``record`` is the same synchronous call: it never blocks on I/O, so it is
    safe on the event loop. ``await flush()`` and ``await close()`` wait in a
    worker thread, so the loop keeps running while they do; both return by
    their deadline. ``pending_events`` is synchronous too (the usage
    estimate calls it so); it touches the disk only for events that wait in
    the spool alone, after an outage or a restart.
    """

    async def flush(self, timeout_s: float = 5.0) -> FlushReport:
        """Send everything recorded so far; wait at most ``timeout_s``."""
        return await asyncio.to_thread(self._flush_sync, timeout_s)

    async def close(self, timeout_s: float = 5.0) -> FlushReport:
        """Flush, then stop; see :meth:`TokenMeter.close`."""
        return await asyncio.to_thread(self._close_sync, timeout_s)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
