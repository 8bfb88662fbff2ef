"""What the sync and async usage clients share: settings, requests, parsing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Final

from tokbill._errors import TokbillError, UsageError
from tokbill.lago import api_path
from tokbill.usage._budget import BudgetStatus, budget_status, to_limit
from tokbill.usage._cache import Failure, SubscriptionKey, UsageCache
from tokbill.usage._model import Subscription, Usage, parse_usage

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_MAX_STALE_S",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TTL_S",
    "LOOKUP_STATUSES",
    "UsageClientBase",
]

logger = logging.getLogger(__name__)

DEFAULT_TTL_S: Final = 5.0
DEFAULT_MAX_STALE_S: Final = 300.0
# Shorter than the management client's defaults: a caller with a cached value
# is better served by that value, marked stale, than by a minute of retries.
DEFAULT_TIMEOUT_S: Final = 5.0
DEFAULT_MAX_RETRIES: Final = 1
LOOKUP_STATUSES: Final = ("active", "pending", "terminated", "canceled")
"""Statuses tried, in order, to explain a 405 ``no_active_subscription``."""


class UsageClientBase:
    """Settings, cache and the I/O-free steps of a usage fetch."""

    def __init__(
        self,
        *,
        api_url: str | None,
        lago_client: object | None,
        ttl_s: float,
        max_stale_s: float,
        clock: Callable[[], float] | None,
    ) -> None:
        self._cache = UsageCache(
            ttl_s=ttl_s, max_stale_s=max_stale_s, clock=clock or time.monotonic
        )
        if lago_client is None and not api_url:
            raise ValueError(f"{type(self).__name__} needs api_url, or lago_client.")
        self._owns_client = lago_client is None
        """Whether ``close`` closes the HTTP client: only one made here."""

    @property
    def ttl_s(self) -> float:
        """Seconds a fetched value (or failure) is served before a refresh."""
        return self._cache.ttl_s

    @property
    def max_stale_s(self) -> float:
        """Oldest a last good value may be to stand in while Lago fails."""
        return self._cache.max_stale_s

    @staticmethod
    def _key(customer_id: str, subscription_id: str) -> SubscriptionKey:
        if not customer_id or not subscription_id:
            raise ValueError(
                "Both customer_id and subscription_id are needed (Lago's "
                f"external ids); got {customer_id!r} and {subscription_id!r}."
            )
        return (customer_id, subscription_id)

    @staticmethod
    def _usage_request(key: SubscriptionKey) -> tuple[str, dict[str, str]]:
        path = api_path("customers", key[0], "current_usage")
        return path, {"external_subscription_id": key[1]}

    @staticmethod
    def _lookup_path(subscription_id: str) -> str:
        return api_path("subscriptions", subscription_id)

    @staticmethod
    def _subscriptions_request(customer_id: str) -> tuple[str, dict[str, Any]]:
        return "/subscriptions", {
            "external_customer_id": customer_id,
            "status[]": "active",
        }

    def _store(self, key: SubscriptionKey, body: Mapping[str, Any]) -> Usage:
        try:
            usage = parse_usage(
                body,
                customer_id=key[0],
                subscription_id=key[1],
                fetched_at=datetime.now(timezone.utc),
            )
        except (ValueError, TypeError, ArithmeticError) as exc:
            # Remembered like any failure, so the callers waiting for this
            # refresh do not each ask Lago again for the same bad answer.
            return self._fail(key, _unreadable(exc), None)
        logger.debug(
            "Fetched current usage of subscription %r: %s %s.",
            key[1],
            usage.total_amount,
            usage.currency,
        )
        return self._cache.store(key, usage)

    def _fail(
        self, key: SubscriptionKey, exc: TokbillError, found: Mapping[str, Any] | None
    ) -> Usage:
        return self._cache.fail(key, Failure(exc, found))

    @staticmethod
    def _active(items: list[dict[str, Any]], customer_id: str) -> list[Subscription]:
        subscriptions = [Subscription.from_lago(item) for item in items]
        return [
            s
            for s in subscriptions
            if s.status in ("active", "") and s.customer_id == customer_id
        ]

    @staticmethod
    def _budget(usage: Usage, limit: Decimal | int | str) -> BudgetStatus:
        return budget_status(usage, to_limit(limit))


def _unreadable(exc: Exception) -> UsageError:
    error = UsageError(f"Lago's answer could not be read: {exc}")
    error.__cause__ = exc
    return error
