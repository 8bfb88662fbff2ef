"""Spend against a limit, decided on exact ``Decimal`` money."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from tokbill.usage._model import Usage

__all__ = ["BudgetStatus", "budget_status", "to_limit"]


@dataclass(frozen=True)
class BudgetStatus:
    """How a subscription's spend this period compares with a limit.

    ``spent`` is Lago's ``total_amount`` (usage charges with taxes, in
    currency units; the plan's fixed fee is not part of current usage).
    ``exceeded`` is True once ``spent >= limit``: a budget that is used up
    exactly is exhausted, because the next request would take it over.
    ``remaining`` is ``limit - spent``, never below zero. ``as_of`` is when
    the figure was fetched from Lago, and ``stale`` says it is a last good
    value served because the last refresh failed (``age_s`` old).
    """

    spent: Decimal
    limit: Decimal
    remaining: Decimal
    exceeded: bool
    currency: str
    as_of: datetime
    stale: bool
    age_s: float


def to_limit(limit: Decimal | int | str) -> Decimal:
    """``limit`` as a Decimal; floats are refused because they are inexact.

    Raises:
        TypeError: ``limit`` is a float or another non-decimal type.
        ValueError: ``limit`` is negative, NaN or infinite.
    """
    if isinstance(limit, bool) or not isinstance(limit, (Decimal, int, str)):
        raise TypeError(
            f"A budget limit must be a Decimal, int or decimal string, not "
            f"{type(limit).__name__} ({limit!r}); floats cannot hold 0.1 exactly."
        )
    try:
        value = Decimal(limit)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise ValueError(f"A budget limit must be a finite amount >= 0, not {limit!r}.")
    return value


def budget_status(usage: Usage, limit: Decimal) -> BudgetStatus:
    """Compare ``usage.total_amount`` with ``limit`` (same currency units)."""
    spent = usage.total_amount
    return BudgetStatus(
        spent=spent,
        limit=limit,
        remaining=max(limit - spent, Decimal(0)),
        exceeded=spent >= limit,
        currency=usage.currency,
        as_of=usage.fetched_at,
        stale=usage.stale,
        age_s=usage.age_s,
    )
