"""Tuning knobs of the meter, with the defaults and why they are what they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["DEFAULT_METRIC_CODE", "LAGO_BATCH_LIMIT", "MeterOptions"]

DEFAULT_METRIC_CODE: Final = "llm_tokens"
LAGO_BATCH_LIMIT: Final = 100
"""Lago rejects larger batches (``LAGO_EVENTS_BATCH_MAX_LENGTH``, default 100)."""

CacheTokens = Literal["input", "separate"]


@dataclass(frozen=True)
class MeterOptions:
    """How a meter batches, retries, buffers and spools.

    Every duration is in seconds. The defaults suit a long-running server;
    tests shrink the delays so failures are exercised without waiting.
    """

    senders: int = 8
    """Concurrent batch requests; they share one keep-alive connection pool.

    Throughput is about ``senders * batch_size / round_trip``: 8 senders
    carry ~30,000 events/s at 20 ms. An idle sender costs a parked thread
    and no connection; a 429 pauses them all at once."""
    batch_size: int = LAGO_BATCH_LIMIT
    max_batch_bytes: int = 512 * 1024
    """A batch is cut before its body would exceed this many bytes."""
    max_event_bytes: int = 32 * 1024
    """A larger event is refused by ``record`` with ``ValueError``."""
    linger_s: float = 0.5
    """How long a partial batch waits for company before it is sent."""
    max_buffered_events: int = 100_000
    """Events held in memory. Without a spool, more are dropped (counted);
    with one, more wait on disk only and are read back as the buffer drains."""
    connect_timeout_s: float = 3.0
    request_timeout_s: float = 15.0
    retry_initial_delay_s: float = 0.5
    retry_max_delay_s: float = 30.0
    retry_budget_s: float = 600.0
    """Time one batch spends retrying (rate-limit waits excluded) before it
    goes back to the end of the queue, so a batch Lago keeps failing on
    never holds the others up. Events are never dropped for transient errors."""
    max_rate_limit_wait_s: float = 300.0
    """Cap on a wait Lago asks for with ``Retry-After``/``X-RateLimit-Reset``."""
    auth_probe_interval_s: float = 60.0
    """After a refused key or URL (a redirect, 401, 403, 404, 405, 407), how
    often one request probes whether it is fixed."""
    log_interval_s: float = 60.0
    """At most one log line per kind of failure per interval."""
    spool_max_bytes: int = 256 * 1024 * 1024
    """Disk bound of the spool; when full, new events are dropped and counted
    as ``spool_full`` (the events already on disk are kept)."""
    spool_segment_bytes: int = 8 * 1024 * 1024
    dead_letter_max_bytes: int = 64 * 1024 * 1024
    """Bound of the spool's dead-letter file; quarantined events past it are
    counted and given to ``on_drop`` but not written (an ERROR line says so)."""
    fsync_interval_s: float | None = None
    """None: the spool survives a killed process (page cache), not a power
    loss. A number: the spool is fsynced that often, which bounds the loss
    on power failure to that window."""
    adopt_interval_s: float = 60.0
    """How often a live meter looks for spools left by dead processes."""
    atexit_timeout_s: float = 2.0
    """Deadline of the close that runs at interpreter exit."""
    cache_tokens: CacheTokens = "input"
    """``input``: cached prompt tokens are billed as ``input`` (OpenAI's
    ``prompt_tokens`` semantics); ``separate``: they travel as the types
    ``cache_read`` and ``cache_write`` so they can be priced apart."""

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= LAGO_BATCH_LIMIT:
            raise ValueError(
                f"batch_size must be between 1 and {LAGO_BATCH_LIMIT}, "
                f"Lago's limit; got {self.batch_size!r}."
            )
        if self.senders < 1:
            raise ValueError(f"senders must be at least 1; got {self.senders!r}.")
        if self.max_buffered_events < self.batch_size:
            raise ValueError(
                "max_buffered_events must hold at least one batch; got "
                f"{self.max_buffered_events!r} for batch_size {self.batch_size!r}."
            )
        if self.cache_tokens not in ("input", "separate"):
            raise ValueError(
                "cache_tokens must be 'input' or 'separate'; "
                f"got {self.cache_tokens!r}."
            )
