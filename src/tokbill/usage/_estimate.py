"""Live estimate: Lago's figure plus events recorded but not yet acknowledged.

Lago only counts an event once it has accepted it, and a meter batches events
for a moment before sending. The estimate prices those pending events the way
Lago will, per bucket, on top of the bucket's confirmed units: with the
package model the extra cost is ``price(units + pending) - price(units)``,
where ``price(u) = ceil((u - free_units) / package_size) * amount``
(lago-api.md §3.1), each rounded to the currency like a Lago fee. So 2,500
confirmed gpt-4 input tokens (3 packages) plus 400 pending ones cost nothing
more, while 600 pending ones start a fourth package.

What the estimate cannot see: events Lago acknowledged after the confirmed
figure was fetched (they are in neither part until the next refresh, up to
``ttl_s`` plus Lago's own lag of a few seconds), and taxes on the pending
part. The opposite error is possible too, for a moment: a batch Lago has
applied whose answer has not reached the meter yet is in both parts, since
nothing in Lago's usage answer says which events it counted. Prices come from
the templates, so they are only right if the templates are applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any, Protocol

from tokbill._currency import round_to_currency
from tokbill.template._model import ChargeSpec, PlanSpec, PriceSpec, TemplateSet
from tokbill.usage._model import (
    GroupKey,
    Usage,
    UsageLine,
    combine_lines,
    require_keys,
)

__all__ = [
    "EstimatedLine",
    "PendingEvents",
    "UsageEstimate",
    "choose_plan",
    "estimate_usage",
]

# Lago's PG store sums only values that look like this (lago-api.md §3.2).
_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")


class PendingEvents(Protocol):
    """Where the estimate reads events that Lago has not acknowledged yet."""

    def pending_events(self, subscription_id: str) -> Iterable[Mapping[str, Any]]:
        """Lago event bodies (``code``, ``properties``) not yet acknowledged."""
        ...


@dataclass(frozen=True)
class EstimatedLine:
    """One bucket: Lago's confirmed line, and the pending part on top of it."""

    confirmed: UsageLine
    pending_units: Decimal
    pending_events: int
    pending_amount: Decimal

    @property
    def units(self) -> Decimal:
        """Confirmed plus pending units."""
        return self.confirmed.units + self.pending_units

    @property
    def amount(self) -> Decimal:
        """Confirmed amount plus the estimated extra cost."""
        return self.confirmed.amount + self.pending_amount


@dataclass(frozen=True)
class UsageEstimate:
    """Lago's current usage plus an estimate for events it has not seen.

    ``confirmed`` is exactly what Lago reported; ``pending_amount`` is the
    estimated part, ``amount`` the sum. ``unpriced_events`` counts pending
    events left out of the estimate: their metric has no charge in the plan,
    their value is not a number Lago would sum, or their bucket is missing
    from Lago's figure (the templates are not what Lago holds).
    """

    confirmed: Usage
    lines: tuple[EstimatedLine, ...]
    pending_amount: Decimal
    pending_events: int
    unpriced_events: int

    @property
    def amount(self) -> Decimal:
        """Confirmed amount (before taxes) plus the estimated part."""
        return self.confirmed.amount + self.pending_amount

    @property
    def total_amount(self) -> Decimal:
        """Confirmed total with taxes, plus the estimated part without taxes."""
        return self.confirmed.total_amount + self.pending_amount

    def by(self, *keys: str) -> dict[GroupKey, EstimatedLine]:
        """Lines grouped by filter values, as :meth:`Usage.by` groups them."""
        require_keys(keys)
        groups: dict[GroupKey, list[EstimatedLine]] = {}
        for line in self.lines:
            group = tuple(line.confirmed.value(key) for key in keys)
            groups.setdefault(group, []).append(line)
        return {
            group: EstimatedLine(
                confirmed=combine_lines(
                    [line.confirmed for line in lines], keys, group
                ),
                pending_units=sum((line.pending_units for line in lines), Decimal(0)),
                pending_events=sum(line.pending_events for line in lines),
                pending_amount=sum((line.pending_amount for line in lines), Decimal(0)),
            )
            for group, lines in groups.items()
        }


def choose_plan(templates: TemplateSet, plan_code: str | None) -> PlanSpec:
    """The plan to price with: ``plan_code``, or the templates' only plan.

    Raises:
        ValueError: the code is unknown, or None while several plans exist.
    """
    codes = [plan.code for plan in templates.plans]
    if plan_code is None and len(codes) == 1:
        return templates.plans[0]
    if plan_code is not None and plan_code in codes:
        return templates.plan(plan_code)
    wanted = "a plan_code" if plan_code is None else f"a known plan, not {plan_code!r}"
    raise ValueError(
        f"The estimate needs {wanted}; the templates hold {', '.join(codes) or 'none'}."
    )


@dataclass
class _Pending:
    units: Decimal = Decimal(0)
    events: int = 0


_BucketKey = tuple[str, Any]


def estimate_usage(
    usage: Usage,
    events: Iterable[Mapping[str, Any]],
    plan: PlanSpec,
    templates: TemplateSet,
) -> UsageEstimate:
    """Price ``events`` with ``plan`` on top of ``usage`` (see module doc)."""
    pending: dict[_BucketKey, _Pending] = {}
    total_events = unpriced = 0
    for event in events:
        total_events += 1
        if not _add_event(pending, event, plan, templates):
            unpriced += 1
    lines = tuple(
        _estimated_line(line, pending, plan, usage.currency) for line in usage.lines
    )
    reported = {_bucket_key(line.charge_code, line.filters) for line in usage.lines}
    # A bucket Lago did not report means the templates and Lago disagree
    # (not applied, or another plan); its events cannot be priced here.
    unpriced += sum(p.events for key, p in pending.items() if key not in reported)
    return UsageEstimate(
        confirmed=usage,
        lines=lines,
        pending_amount=sum((line.pending_amount for line in lines), Decimal(0)),
        pending_events=total_events,
        unpriced_events=unpriced,
    )


def _add_event(
    pending: dict[_BucketKey, _Pending],
    event: Mapping[str, Any],
    plan: PlanSpec,
    templates: TemplateSet,
) -> bool:
    properties = event.get("properties") or {}
    charges = [c for c in plan.charges if c.billable_metric == event.get("code")]
    units = _event_units(templates, str(event.get("code")), properties)
    if not charges or units is None:
        return False
    values = {str(key): str(value) for key, value in properties.items()}
    for charge in charges:
        bucket = pending.setdefault(
            _bucket_key(charge.code, charge.price_for(values).values), _Pending()
        )
        bucket.units += units
        bucket.events += 1
    return True


def _event_units(
    templates: TemplateSet, metric_code: str, properties: Mapping[str, Any]
) -> Decimal | None:
    try:
        metric = templates.metric(metric_code)
    except KeyError:
        return None
    if metric.aggregation_type == "count_agg":
        return Decimal(1)
    raw = str(properties.get(metric.field_name or "", ""))
    return Decimal(raw) if _NUMERIC.match(raw) else None


def _bucket_key(
    charge_code: str, values: Mapping[str, tuple[str, ...]] | None
) -> _BucketKey:
    return (charge_code, None if values is None else tuple(sorted(values.items())))


def _estimated_line(
    line: UsageLine,
    pending: dict[_BucketKey, _Pending],
    plan: PlanSpec,
    currency: str,
) -> EstimatedLine:
    extra = pending.get(_bucket_key(line.charge_code, line.filters), _Pending())
    charge = next((c for c in plan.charges if c.code == line.charge_code), None)
    price = _price_of(charge, line) if charge else None
    amount = Decimal(0)
    if charge is not None and price is not None and extra.events:
        before = round_to_currency(_cost(charge, price, line.units), currency)
        after = round_to_currency(
            _cost(charge, price, line.units + extra.units), currency
        )
        amount = after - before
    return EstimatedLine(line, extra.units, extra.events, amount)


def _price_of(charge: ChargeSpec, line: UsageLine) -> PriceSpec | None:
    if line.filters is None:
        return charge.default
    return next((p for p in charge.filters if p.values == line.filters), None)


def _cost(charge: ChargeSpec, price: PriceSpec, units: Decimal) -> Decimal:
    if charge.charge_model == "standard":
        return max(units, Decimal(0)) * price.amount
    paid = units - price.free_units
    if paid <= 0 or not price.package_size:
        return Decimal(0)
    packages = (paid / price.package_size).to_integral_value(rounding=ROUND_CEILING)
    return packages * price.amount
