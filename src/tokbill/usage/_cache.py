"""The per-subscription cache rules, shared by the sync and async clients.

This module does no I/O and takes no locks: the clients hold one lock per
subscription around a refresh (that is what makes concurrent callers share a
single request), and ask :class:`UsageCache` what to serve.

The rules, with ``now`` from the injected monotonic clock:

- A subscription is refreshed at most once per ``ttl_s``, whether the last
  attempt succeeded or failed: within the TTL the outcome of the last attempt
  is served again, so Lago sees at most one call per subscription per TTL
  even while it is failing.
- After a transient failure (connection, timeout, 408, 429, 5xx) the last good
  value is served with ``stale=True`` and its age, for as long as it is at
  most ``max_stale_s`` old; after that, or with no good value at all,
  :class:`~tokbill.usage.UsageUnavailableError` is raised.
- A definitive failure (unknown customer, subscription not active, 401, 403,
  an answer that cannot be read) is raised as it is; serving an old figure
  would hide it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tokbill._errors import TokbillError
from tokbill.usage._errors import is_transient, unavailable_error, usage_error
from tokbill.usage._model import Usage

__all__ = ["Failure", "SubscriptionKey", "UsageCache"]

logger = logging.getLogger(__name__)

SubscriptionKey = tuple[str, str]
"""``(customer_id, subscription_id)``: Lago's answer depends on both."""


@dataclass(frozen=True)
class Failure:
    """A failed refresh: why, and the subscription if it was looked up.

    ``cause`` is the Lago error, or the UsageError for an answer that could
    not be read.
    """

    cause: TokbillError
    found: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class _Entry:
    # One immutable snapshot per key, replaced whole, so a reader without
    # the lock never sees a half-updated entry.
    last_attempt: Usage | Failure
    attempted_at_s: float
    last_good: Usage | None
    fetched_at_s: float


class UsageCache:
    """What to serve for a subscription, given when it was last fetched."""

    def __init__(
        self, *, ttl_s: float, max_stale_s: float, clock: Callable[[], float]
    ) -> None:
        if ttl_s < 0 or max_stale_s < 0:
            raise ValueError(
                f"ttl_s ({ttl_s}) and max_stale_s ({max_stale_s}) must be >= 0."
            )
        self.ttl_s = ttl_s
        self.max_stale_s = max_stale_s
        self._clock = clock
        self._entries: dict[SubscriptionKey, _Entry] = {}

    def serve(self, key: SubscriptionKey) -> Usage | None:
        """The value to serve without asking Lago, or None to refresh now.

        Raises:
            UsageError: the last attempt, within the TTL, failed and no stale
                value may stand in.
        """
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or now - entry.attempted_at_s >= self.ttl_s:
            return None
        outcome = entry.last_attempt
        if isinstance(outcome, Failure):
            return self._fallback(key, entry, outcome, now)
        return outcome.marked(stale=False, age_s=now - entry.fetched_at_s)

    def store(self, key: SubscriptionKey, usage: Usage) -> Usage:
        """Record a fresh value from Lago and return it."""
        now = self._clock()
        self._entries[key] = _Entry(usage, now, usage, now)
        return usage

    def fail(self, key: SubscriptionKey, failure: Failure) -> Usage:
        """Record a failed refresh; return the stale value or raise.

        Raises:
            UsageError: no stale value may stand in (chained from the cause).
        """
        now = self._clock()
        previous = self._entries.get(key)
        if previous is None:
            entry = _Entry(failure, now, None, -math.inf)
        else:
            entry = _Entry(failure, now, previous.last_good, previous.fetched_at_s)
        self._entries[key] = entry
        served = self._fallback(key, entry, failure, now)
        logger.warning(
            "%s Serving the usage of subscription %r from %.1f s ago, marked stale.",
            failure.cause,
            key[1],
            served.age_s,
        )
        return served

    def _fallback(
        self, key: SubscriptionKey, entry: _Entry, failure: Failure, now: float
    ) -> Usage:
        """The last good value, marked stale, or the error ``failure`` means."""
        cause = failure.cause
        customer_id, subscription_id = key
        if not is_transient(cause):
            error = usage_error(cause, customer_id, subscription_id, failure.found)
            raise error from cause
        age_s = now - entry.fetched_at_s
        if entry.last_good is None or age_s > self.max_stale_s:
            stale_age_s = age_s if entry.last_good is not None else None
            raise unavailable_error(
                cause, customer_id, subscription_id, stale_age_s
            ) from cause
        return entry.last_good.marked(stale=True, age_s=age_s)
