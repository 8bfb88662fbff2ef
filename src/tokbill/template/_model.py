"""The desired state a template describes, in Lago's own terms.

These frozen objects are what the template package hands to the reconciler, the
meter and the usage estimator. They are already validated and canonical:

- filter values are sorted tuples and filter keys are sorted, so comparing with
  what Lago returns (which Lago also sorts) is a plain equality;
- money is ``Decimal`` and renders through :func:`money_string`, so the same
  price always travels as the same string;
- ``package_size`` and ``free_units`` are ``int``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

ChargeModel = Literal["package", "standard"]
AggregationType = Literal["sum_agg", "count_agg"]
Interval = Literal["weekly", "monthly", "quarterly", "semiannual", "yearly"]

FilterValues = Mapping[str, tuple[str, ...]]
"""Filter key to its sorted values, e.g. ``{"model": ("gpt-4",)}``."""


@dataclass(frozen=True)
class SourceRef:
    """Where a template object was declared, for messages that point at it."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def money_string(amount: Decimal) -> str:
    """Render ``amount`` without exponent or trailing zeros: ``0.030`` -> ``0.03``.

    Exact for any number of digits (``Decimal.normalize`` would round to the
    context's 28 significant digits). Raises ``ValueError`` for NaN or infinity.
    """
    if not amount.is_finite():
        raise ValueError(f"{amount} is not an amount of money.")
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class MetricSpec:
    """One billable metric as the template wants it.

    Templates cannot set ``recurring``, rounding or an ``expression`` yet, so
    a template metric always wants none of them; holding them here lets the
    reconciler see (and reset) them when they were set in Lago.
    """

    code: str
    name: str
    aggregation_type: AggregationType
    field_name: str | None
    description: str | None = None
    recurring: bool = False
    filters: FilterValues = field(default_factory=dict)
    rounding_function: str | None = None
    rounding_precision: int | None = None
    expression: str | None = None
    source: SourceRef | None = field(default=None, compare=False)

    def payload(self) -> dict[str, Any]:
        """The ``billable_metric`` body for a create or update."""
        return {
            "code": self.code,
            "name": self.name,
            "description": self.description,
            "aggregation_type": self.aggregation_type,
            "field_name": self.field_name,
            "recurring": self.recurring,
            "rounding_function": self.rounding_function,
            "rounding_precision": self.rounding_precision,
            "expression": self.expression,
            "filters": [
                {"key": key, "values": list(values)}
                for key, values in sorted(self.filters.items())
            ],
        }


@dataclass(frozen=True)
class PriceSpec:
    """The price of one bucket: a charge filter, or the charge's default bucket.

    ``values`` is ``None`` for the default bucket, which Lago prices with the
    charge-level properties. ``package_size`` is ``None`` for ``standard``, and
    ``free_units`` is then 0. ``source`` is where the price was written (the
    charge, for the default bucket).
    """

    amount: Decimal
    free_units: int = 0
    package_size: int | None = None
    values: FilterValues | None = None
    invoice_display_name: str | None = None
    source: SourceRef | None = field(default=None, compare=False)

    def properties(self, charge_model: ChargeModel) -> dict[str, Any]:
        """Lago's ``properties`` object for this price under ``charge_model``."""
        if charge_model == "standard":
            return {"amount": money_string(self.amount)}
        return {
            "amount": money_string(self.amount),
            "package_size": self.package_size,
            "free_units": self.free_units,
        }

    def filter_values(self) -> FilterValues:
        """``values`` of a charge filter; ValueError for the default bucket."""
        if self.values is None:
            raise ValueError("The default bucket is not a charge filter.")
        return self.values

    def matches(self, values: Mapping[str, str]) -> bool:
        """Whether an event with these property values falls in this filter.

        The default bucket is no filter, so it matches nothing here.
        """
        if self.values is None:
            return False
        return all(values.get(k) in vals for k, vals in self.values.items())

    def filter_payload(self, charge_model: ChargeModel) -> dict[str, Any]:
        """One entry of a charge's ``filters`` list, values in canonical order."""
        values = self.filter_values()
        return {
            "invoice_display_name": self.invoice_display_name,
            "properties": self.properties(charge_model),
            "values": {key: list(vals) for key, vals in sorted(values.items())},
        }


@dataclass(frozen=True)
class ChargeSpec:
    """One charge of a plan: its metric, model, default price and filter prices.

    ``filters`` is sorted by values so its order is stable across runs.
    """

    code: str
    billable_metric: str
    charge_model: ChargeModel
    default: PriceSpec
    filters: tuple[PriceSpec, ...] = ()
    price_by: tuple[str, ...] = ()
    pay_in_advance: bool = False
    invoice_display_name: str | None = None
    source: SourceRef | None = field(default=None, compare=False)

    def payload(self, billable_metric_id: str) -> dict[str, Any]:
        """The charge body for Lago, given the metric's ``lago_id``."""
        return {
            "code": self.code,
            "billable_metric_id": billable_metric_id,
            "charge_model": self.charge_model,
            "pay_in_advance": self.pay_in_advance,
            "invoice_display_name": self.invoice_display_name,
            "properties": self.default.properties(self.charge_model),
            "filters": [f.filter_payload(self.charge_model) for f in self.filters],
        }

    def price_for(self, values: Mapping[str, str]) -> PriceSpec:
        """The price Lago applies to an event with these property values.

        The most specific matching filter wins, as in Lago; an event that
        matches no filter is priced by the default bucket.
        """
        matching = [price for price in self.filters if price.matches(values)]
        # max() keeps the first of equals: the filter sorted first wins a tie.
        return max(
            matching, key=lambda price: len(price.values or {}), default=self.default
        )


@dataclass(frozen=True)
class PlanSpec:
    """One plan and its charges."""

    code: str
    name: str
    interval: Interval
    amount_cents: int
    amount_currency: str
    pay_in_advance: bool
    charges: tuple[ChargeSpec, ...] = ()
    description: str | None = None
    invoice_display_name: str | None = None
    trial_period: float | None = None
    source: SourceRef | None = field(default=None, compare=False)

    def payload(self, metric_ids: Mapping[str, str]) -> dict[str, Any]:
        """The ``plan`` body for a create, given metric code to ``lago_id``."""
        return {
            "code": self.code,
            "name": self.name,
            "interval": self.interval,
            "amount_cents": self.amount_cents,
            "amount_currency": self.amount_currency,
            "pay_in_advance": self.pay_in_advance,
            "description": self.description,
            "invoice_display_name": self.invoice_display_name,
            "trial_period": self.trial_period,
            "charges": [
                charge.payload(metric_ids[charge.billable_metric])
                for charge in self.charges
            ],
        }


@dataclass(frozen=True)
class TemplateSet:
    """Everything one or more template files declare, merged and checked.

    ``warnings`` are located sentences about things that are legal but likely
    unintended, such as a declared combination without a price.
    """

    metrics: tuple[MetricSpec, ...] = ()
    plans: tuple[PlanSpec, ...] = ()
    warnings: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def metric(self, code: str) -> MetricSpec:
        """The metric with this code; ``KeyError`` if the templates lack it."""
        for metric in self.metrics:
            if metric.code == code:
                return metric
        raise KeyError(code)

    def plan(self, code: str) -> PlanSpec:
        """The plan with this code; ``KeyError`` if the templates lack it."""
        for plan in self.plans:
            if plan.code == code:
                return plan
        raise KeyError(code)
