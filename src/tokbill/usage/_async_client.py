"""The asyncio usage client, the twin of ``UsageClient``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import httpx

from tokbill._errors import LagoError, NotFoundError
from tokbill._settings import key_from_env, url_from_env
from tokbill.lago import AsyncLagoClient, api_path
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

__all__ = ["AsyncUsageClient"]


class AsyncUsageClient(UsageClientBase):
    """Current usage and budgets from Lago, cached and shared across tasks.

    The same guarantees as :class:`~tokbill.usage.UsageClient`, for asyncio
    tasks: concurrent tasks asking for one subscription await a single
    request. That request runs in a task of its own, so cancelling the task
    that started it (a timeout, a dropped web request) neither aborts it nor
    makes the others send another. Use one instance per event loop; its
    requests in flight belong to the loop that started them.
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
        transport: httpx.AsyncBaseTransport | None = None,
        lago_client: AsyncLagoClient | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            api_url=api_url,
            lago_client=lago_client,
            ttl_s=ttl_s,
            max_stale_s=max_stale_s,
            clock=clock,
        )
        self._lago = lago_client or AsyncLagoClient(
            str(api_url),
            api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            transport=transport,
        )
        self._in_flight: dict[SubscriptionKey, asyncio.Task[Usage]] = {}

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncUsageClient:
        """Build from ``LAGO_API_URL`` and ``LAGO_API_KEY``."""
        return cls(url_from_env(), key_from_env(), **kwargs)

    def __repr__(self) -> str:
        return f"AsyncUsageClient(lago={self._lago!r}, ttl_s={self.ttl_s:g})"

    async def current(self, customer_id: str, subscription_id: str) -> Usage:
        """The subscription's usage in its open period, cached for ``ttl_s``.

        Raises:
            UsageError: a subclass saying why no value, fresh or stale, could
                be served.
        """
        key = self._key(customer_id, subscription_id)
        served = self._cache.serve(key)
        if served is not None:
            return served
        # Shielded: a caller that is cancelled stops waiting, but the request
        # goes on for the others and its outcome is cached for the TTL.
        return await asyncio.shield(self._refresh_task(key))

    async def check_budget(
        self, customer_id: str, subscription_id: str, limit: Decimal | int | str
    ) -> BudgetStatus:
        """Compare this period's spend with ``limit`` (see BudgetStatus).

        Uses :meth:`current`, so it is cached and may be stale the same way.
        """
        usage = await self.current(customer_id, subscription_id)
        return self._budget(usage, limit)

    async def estimate(
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
        usage = await self.current(customer_id, subscription_id)
        events = meter.pending_events(subscription_id)
        return estimate_usage(usage, events, plan, templates)

    async def subscriptions(self, customer_id: str) -> list[Subscription]:
        """The customer's active subscriptions, uncached.

        Raises:
            CustomerNotFoundError: Lago has no such customer.
            LagoError: the list could not be fetched.
        """
        path, params = self._subscriptions_request(customer_id)
        pages = self._lago.paginate(path, "subscriptions", params)
        try:
            items = [item async for item in pages]
            if not items:
                # An empty list may mean an unknown customer; ask which.
                await self._lago.get(api_path("customers", customer_id))
        except NotFoundError as exc:
            # Older Lago versions answer the list itself with a 404.
            raise customer_not_found(customer_id) from exc
        return self._active(items, customer_id)

    async def aclose(self) -> None:
        """Close the HTTP client, unless it was passed in as ``lago_client``."""
        in_flight = list(self._in_flight.values())
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        if self._owns_client:
            await self._lago.aclose()

    async def __aenter__(self) -> AsyncUsageClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _refresh_task(self, key: SubscriptionKey) -> asyncio.Task[Usage]:
        """The refresh in flight for ``key``, started if there is none.

        No await between the lookup and the insert, so no task can race it.
        """
        task = self._in_flight.get(key)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._refresh(key))
            self._in_flight[key] = task
            task.add_done_callback(functools.partial(self._refreshed, key))
        return task

    def _refreshed(self, key: SubscriptionKey, task: asyncio.Task[Usage]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        if not task.cancelled():
            # Its callers have each been given the error; mark it retrieved so
            # asyncio does not also log it when no caller was left waiting.
            task.exception()

    async def _refresh(self, key: SubscriptionKey) -> Usage:
        path, params = self._usage_request(key)
        try:
            body = await self._lago.get(path, params)
        except LagoError as exc:
            found = await self._find(key[1]) if needs_lookup(exc) else None
            return self._fail(key, exc, found)
        return self._store(key, body)

    async def _find(self, subscription_id: str) -> Mapping[str, Any] | None:
        path = self._lookup_path(subscription_id)
        for status in LOOKUP_STATUSES:
            try:
                found = await self._lago.get(path, {"status": status})
            except NotFoundError:
                continue
            except LagoError:
                # Only an explanation is at stake; the generic one will do.
                return None
            return found.get("subscription")
        return None
