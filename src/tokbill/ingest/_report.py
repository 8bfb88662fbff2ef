"""What a meter tells its caller: counters, flush reports, rate-limit info."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DropReason", "FlushReport", "MeterStats", "RateLimitInfo"]


class DropReason:
    """The reasons an event can be dropped, as keys of ``MeterStats.dropped``."""

    BUFFER_FULL = "buffer_full"
    """No spool, and the memory buffer was full when ``record`` was called."""
    SPOOL_FULL = "spool_full"
    """The spool had reached ``spool_max_bytes``."""
    CLOSED = "closed"
    """``record`` was called after ``close``."""
    SHUTDOWN = "shutdown"
    """No spool, and the event was still unsent when ``close`` gave up."""


@dataclass(frozen=True)
class MeterStats:
    """A consistent snapshot of a meter's counters.

    Always ``recorded == acked + sum(dropped.values()) + quarantined +
    pending``: every event ``record`` accepted is in exactly one of those.
    ``pending`` is counted from what is queued, in flight and on disk, not
    derived from the others, so the equation is a real check.
    """

    recorded: int = 0
    """Events accepted by ``record``, plus those recovered from a spool."""
    acked: int = 0
    """Events Lago confirmed, including ones it already had (duplicates)."""
    retried: int = 0
    """Event sends repeated after a transient failure (one per event per retry)."""
    dropped: Mapping[str, int] = field(default_factory=dict)
    """Dropped events by :class:`DropReason`."""
    quarantined: int = 0
    """Events Lago rejected as invalid; see ``on_drop`` and the dead-letter file."""
    pending: int = 0
    """Events not yet resolved: queued, in flight, or waiting on disk."""
    recovered: int = 0
    """Events found in a spool left by an earlier or dead process."""
    spool_bytes: int = 0
    """Disk used by the spool segments this meter owns or adopted."""
    unpriced: Mapping[str, int] = field(default_factory=dict)
    """Events per model or type value that the template does not price."""
    blocked: str | None = None
    """Why sending is suspended (a redirect, 401, 403, 404, 405 or 407),
    or None while it runs."""

    @property
    def dropped_total(self) -> int:
        """All dropped events, whatever the reason."""
        return sum(self.dropped.values())


@dataclass(frozen=True)
class FlushReport:
    """The state when ``flush`` or ``close`` returned.

    Counts are totals since the meter started, so the equation of
    :class:`MeterStats` holds here too. ``complete`` is True when as many
    events were resolved (acked, dropped or quarantined) as had been
    recorded before the call (``flush``), or nothing is pending (``close``).
    """

    complete: bool
    recorded: int
    acked: int
    pending: int
    dropped: int
    quarantined: int

    @classmethod
    def from_stats(cls, stats: MeterStats, *, complete: bool) -> FlushReport:
        """The report for ``stats``."""
        return cls(
            complete=complete,
            recorded=stats.recorded,
            acked=stats.acked,
            pending=stats.pending,
            dropped=stats.dropped_total,
            quarantined=stats.quarantined,
        )


@dataclass(frozen=True)
class RateLimitInfo:
    """Lago's rate-limit headers of one response (Lago Cloud sends them).

    ``wait_s`` is what the meter will wait before any sender sends again,
    or None when the response was not a 429.
    """

    limit: int | None
    remaining: int | None
    reset_s: float | None
    wait_s: float | None
