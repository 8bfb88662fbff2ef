"""The synchronous usage client."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import httpx

from tokbill._errors import LagoError, NotFoundError
from tokbill._settings import key_from_env, url_from_env
from tokbill.lago import LagoClient, api_path
from tokbill.template._model import TemplateSet
from tokbill.usage._base import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_STALE_S,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TTL_S,
    LOOKUP_STATUSES,
    UsageClientBase,
)
from tokbill.usage._budget import BudgetStatus
from tokbill.usage._cache import SubscriptionKey
from tokbill.usage._errors import customer_not_found, needs_lookup
from tokbill.usage._estimate import (
    PendingEvents,
    UsageEstimate,
    choose_plan,
    estimate_usage,
)
from tokbill.usage._model import Subscription, Usage

__all__ = ["UsageClient"]


class UsageClient(UsageClientBase):
    """Current usage and budgets from Lago, cached and shared across threads.

    Guarantees, per ``(customer, subscription)``:

    - At most one call to Lago per ``ttl_s``: the first caller after the TTL
      fetches while concurrent callers wait for its result, and a failure is
      remembered for the TTL too, so a failing Lago is not hammered.
    - When Lago fails transiently, the last good value is returned with
      ``stale=True`` and its ``age_s`` for up to ``max_stale_s``; after that
      :class:`~tokbill.usage.UsageUnavailableError` is raised.
    - An unknown customer, a subscription that is not active or belongs to
      another customer raise a :class:`~tokbill.UsageError` subclass that
      says so (see ``tokbill.usage._errors``), chained from Lago's error.
      Explaining Lago's 405 takes up to four ``GET /subscriptions/{id}``
      lookups (one per status), and the error is remembered for the TTL.

    A caller waits at most about ``timeout_s * (max_retries + 1)`` plus the
    retry backoff for a refresh. The cache holds one entry per subscription
    asked for and is never pruned; a process watching millions of distinct
    subscriptions should use one client per batch.

    ``clock`` (monotonic seconds) is injectable so tests need no sleeps.
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        max_stale_s: float = DEFAULT_MAX_STALE_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.BaseTransport | None = None,
        lago_client: LagoClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            api_url=api_url,
            lago_client=lago_client,
            ttl_s=ttl_s,
            max_stale_s=max_stale_s,
            clock=clock,
        )
        self._lago = lago_client or LagoClient(
            str(api_url),
            api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            transport=transport,
        )
        self._locks: dict[SubscriptionKey, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_env(cls, **kwargs: Any) -> UsageClient:
        """Build from ``LAGO_API_URL`` and ``LAGO_API_KEY``."""
        return cls(url_from_env(), key_from_env(), **kwargs)

    def __repr__(self) -> str:
        return f"UsageClient(lago={self._lago!r}, ttl_s={self.ttl_s:g})"

    def current(self, customer_id: str, subscription_id: str) -> Usage:
        """The subscription's usage in its open period, cached for ``ttl_s``.

        Raises:
            UsageError: a subclass saying why no value, fresh or stale, could
                be served.
        """
        key = self._key(customer_id, subscription_id)
        served = self._cache.serve(key)
        if served is not None:
            return served
        with self._lock(key):
            # Another thread may have refreshed while this one waited.
            served = self._cache.serve(key)
            if served is not None:
                return served
            return self._refresh(key)

    def check_budget(
        self, customer_id: str, subscription_id: str, limit: Decimal | int | str
    ) -> BudgetStatus:
        """Compare this period's spend with ``limit`` (see BudgetStatus).

        Uses :meth:`current`, so it is cached and may be stale the same way.
        """
        return self._budget(self.current(customer_id, subscription_id), limit)

    def estimate(
        self,
        customer_id: str,
        subscription_id: str,
        *,
        meter: PendingEvents,
        templates: TemplateSet,
        plan_code: str | None = None,
    ) -> UsageEstimate:
        """:meth:`current` plus the events ``meter`` holds but Lago has not seen.

        The pending events are priced with ``plan_code`` from ``templates``
        (the only plan when there is one) using Lago's package formula per
        bucket; ``UsageEstimate.pending_amount`` is the estimated part. See
        ``tokbill.usage._estimate`` for what the estimate cannot see.

        Raises:
            ValueError: ``plan_code`` is missing or unknown (see choose_plan).
            UsageError: as :meth:`current`.
        """
        plan = choose_plan(templates, plan_code)
        usage = self.current(customer_id, subscription_id)
        events = meter.pending_events(subscription_id)
        return estimate_usage(usage, events, plan, templates)

    def subscriptions(self, customer_id: str) -> list[Subscription]:
        """The customer's active subscriptions, uncached.

        Raises:
            CustomerNotFoundError: Lago has no such customer.
            LagoError: the list could not be fetched.
        """
        path, params = self._subscriptions_request(customer_id)
        try:
            items = list(self._lago.paginate(path, "subscriptions", params))
            if not items:
                # An empty list may mean an unknown customer; ask which.
                self._lago.get(api_path("customers", customer_id))
        except NotFoundError as exc:
            # Older Lago versions answer the list itself with a 404.
            raise customer_not_found(customer_id) from exc
        return self._active(items, customer_id)

    def close(self) -> None:
        """Close the HTTP client, unless it was passed in as ``lago_client``."""
        if self._owns_client:
            self._lago.close()

    def __enter__(self) -> UsageClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _lock(self, key: SubscriptionKey) -> threading.Lock:
        lock = self._locks.get(key)
        if lock is None:
            with self._locks_guard:
                lock = self._locks.setdefault(key, threading.Lock())
        return lock

    def _refresh(self, key: SubscriptionKey) -> Usage:
        path, params = self._usage_request(key)
        try:
            body = self._lago.get(path, params)
        except LagoError as exc:
            found = self._find(key[1]) if needs_lookup(exc) else None
            return self._fail(key, exc, found)
        return self._store(key, body)

    def _find(self, subscription_id: str) -> Mapping[str, Any] | None:
        path = self._lookup_path(subscription_id)
        for status in LOOKUP_STATUSES:
            try:
                found = self._lago.get(path, {"status": status})
            except NotFoundError:
                continue
            except LagoError:
                # Only an explanation is at stake; the generic one will do.
                return None
            return found.get("subscription")
        return None
