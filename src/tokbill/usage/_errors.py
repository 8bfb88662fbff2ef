"""Why current usage could not be served, in words a person can act on.

    UsageError                        (tokbill._errors)
    ├── CustomerNotFoundError         Lago has no such customer (404)
    ├── SubscriptionNotActiveError    405 no_active_subscription
    │   └── ForeignSubscriptionError  the subscription is another customer's
    └── UsageUnavailableError         Lago failed; nothing cached may stand in

Each is raised ``from`` the Lago error that caused it, so ``__cause__`` keeps
the method, path, status and Lago's error code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokbill._errors import (
    LagoConnectionError,
    LagoStatusError,
    NotAllowedError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TokbillError,
    UsageError,
)

__all__ = [
    "CustomerNotFoundError",
    "ForeignSubscriptionError",
    "SubscriptionNotActiveError",
    "UsageUnavailableError",
    "customer_not_found",
    "is_transient",
    "needs_lookup",
    "not_active_error",
    "unavailable_error",
    "usage_error",
]


class _SubscriptionUsageError(UsageError):
    def __init__(
        self, message: str, *, customer_id: str, subscription_id: str | None
    ) -> None:
        super().__init__(message)
        self.customer_id = customer_id
        """The external customer id that was asked for."""
        self.subscription_id = subscription_id
        """The external subscription id asked for; None when listing."""


class CustomerNotFoundError(_SubscriptionUsageError):
    """Lago has no customer with this external id (404 customer_not_found)."""


class SubscriptionNotActiveError(_SubscriptionUsageError):
    """Lago has no *active* subscription with this id for this customer.

    Lago answers 405 ``no_active_subscription`` when the subscription does not
    exist, is pending (starts in the future), was terminated or canceled, or
    belongs to another customer. ``status`` is the subscription's status when
    tokbill could find it (e.g. ``"pending"``), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        customer_id: str,
        subscription_id: str,
        status: str | None = None,
    ) -> None:
        super().__init__(
            message, customer_id=customer_id, subscription_id=subscription_id
        )
        self.status = status
        """The subscription's status in Lago, when tokbill could find it."""


class ForeignSubscriptionError(SubscriptionNotActiveError):
    """The subscription exists, but for another customer.

    ``status`` is its status there, usually ``"active"``.
    """

    def __init__(
        self,
        message: str,
        *,
        customer_id: str,
        subscription_id: str,
        owner_id: str,
        status: str | None = "active",
    ) -> None:
        super().__init__(
            message,
            customer_id=customer_id,
            subscription_id=subscription_id,
            status=status,
        )
        self.owner_id = owner_id
        """The external id of the customer the subscription belongs to."""


class UsageUnavailableError(_SubscriptionUsageError):
    """Lago failed, and no cached value may stand in.

    Either the failure is transient and the last good value is missing or
    older than ``max_stale_s``, or it is one an old figure must not hide,
    such as a rejected API key (401), a denied permission (403) or an answer
    tokbill could not read.

    ``stale_age_s`` is the age of the last good value that was too old to
    serve, or None when there was none.
    """

    def __init__(
        self,
        message: str,
        *,
        customer_id: str,
        subscription_id: str,
        stale_age_s: float | None = None,
    ) -> None:
        super().__init__(
            message, customer_id=customer_id, subscription_id=subscription_id
        )
        self.stale_age_s = stale_age_s
        """Age of the last good value, too old to serve; None if none."""


def is_transient(exc: TokbillError) -> bool:
    """Whether ``exc`` may clear up by itself, so a stale value may stand in.

    Connection failures, timeouts, 429 and 5xx are transient. A 401, 403, 404
    or 405 is a fact about the configuration, and serving an old figure would
    hide it.
    """
    return isinstance(exc, (LagoConnectionError, RateLimitError, ServerError)) or (
        isinstance(exc, LagoStatusError) and exc.status_code == 408
    )


def customer_not_found(
    customer_id: str, subscription_id: str | None = None
) -> UsageError:
    """The error for Lago's 404 ``customer_not_found``."""
    return CustomerNotFoundError(
        f"Lago has no customer with external id {customer_id!r}. Customers are "
        "created by their first subscription (POST /subscriptions) or by "
        "POST /customers; check the id and that this API key belongs to the "
        "organisation that holds the customer.",
        customer_id=customer_id,
        subscription_id=subscription_id,
    )


def not_active_error(
    customer_id: str,
    subscription_id: str,
    found: Mapping[str, Any] | None,
) -> SubscriptionNotActiveError:
    """The error for Lago's 405 ``no_active_subscription``.

    ``found`` is the subscription as ``GET /subscriptions/{id}`` returned it
    (trying ``_base.LOOKUP_STATUSES`` in order), or None when no
    lookup found it.
    """
    found = found or {}
    owner = str(found.get("external_customer_id") or "")
    status = str(found.get("status") or "") or None
    if owner and owner != customer_id:
        return _foreign_error(customer_id, subscription_id, owner, status)
    ids = {"customer_id": customer_id, "subscription_id": subscription_id}
    if status in _ENDED_AT:
        when = found.get(_ENDED_AT[status]) or "an earlier date"
        reason = f"was {status} at {when}"
    elif status == "pending":
        reason = f"is pending: it starts at {found.get('subscription_at')}"
    else:
        return SubscriptionNotActiveError(
            _unexplained(ids, status), status=status, **ids
        )
    return SubscriptionNotActiveError(
        f"Subscription {subscription_id!r} of customer {customer_id!r} {reason}, "
        "and Lago only reports usage of active subscriptions.",
        status=status,
        **ids,
    )


_ENDED_AT = {"terminated": "terminated_at", "canceled": "canceled_at"}
"""Statuses that end a subscription, and the field that says when."""


def _unexplained(ids: Mapping[str, str], status: str | None) -> str:
    seen = f"its status is {status}" if status else "tokbill found none with that id"
    return (
        f"Customer {ids['customer_id']!r} has no active subscription "
        f"{ids['subscription_id']!r} (Lago: 405 no_active_subscription): {seen}; "
        f"check GET /subscriptions?external_customer_id={ids['customer_id']} "
        "for its external id."
    )


def _foreign_error(
    customer_id: str, subscription_id: str, owner: str, status: str | None
) -> ForeignSubscriptionError:
    if status == "active":
        advice = f"ask for its usage with customer {owner!r}"
    else:
        advice = f"and it is {status or 'not active'} there"
    return ForeignSubscriptionError(
        f"Subscription {subscription_id!r} belongs to customer {owner!r}, "
        f"not {customer_id!r}; {advice}.",
        customer_id=customer_id,
        subscription_id=subscription_id,
        owner_id=owner,
        status=status,
    )


def unavailable_error(
    cause: TokbillError,
    customer_id: str,
    subscription_id: str,
    stale_age_s: float | None,
) -> UsageUnavailableError:
    """The error when Lago failed and nothing cached may stand in."""
    message = (
        f"Current usage of subscription {subscription_id!r} (customer "
        f"{customer_id!r}) is unavailable: {cause}"
    )
    if stale_age_s is not None:
        message += (
            f" The last good value is {stale_age_s:.0f} s old, older than "
            "the maximum staleness allowed."
        )
    return UsageUnavailableError(
        message,
        customer_id=customer_id,
        subscription_id=subscription_id,
        stale_age_s=stale_age_s,
    )


def usage_error(
    cause: TokbillError,
    customer_id: str,
    subscription_id: str,
    found: Mapping[str, Any] | None = None,
) -> UsageError:
    """The UsageError a definitive (non-transient) failure stands for."""
    if isinstance(cause, NotFoundError) and cause.code == "customer_not_found":
        return customer_not_found(customer_id, subscription_id)
    if isinstance(cause, NotAllowedError) and cause.code == "no_active_subscription":
        return not_active_error(customer_id, subscription_id, found)
    return unavailable_error(cause, customer_id, subscription_id, None)


def needs_lookup(cause: TokbillError) -> bool:
    """Whether explaining ``cause`` needs the subscription looked up."""
    return isinstance(cause, NotAllowedError) and cause.code == "no_active_subscription"
