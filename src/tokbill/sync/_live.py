"""What Lago holds, parsed into canonical, comparable values.

Lago's JSON is turned into frozen objects whose equality means "Lago would bill
the same": filter values are sorted tuples (Lago sorts them too), amounts are
canonical decimal strings (``"0.030"`` and ``"0.03"`` are one price), absent and
empty optional texts are both ``None``. The same canonical forms are built from
template specs (see :func:`charge_state`), so a diff is a plain comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tokbill.template._model import ChargeModel, ChargeSpec, PriceSpec, money_string

ValuesKey = tuple[tuple[str, tuple[str, ...]], ...]
"""A charge filter's identity: its keys and values, all sorted."""

PropertyItems = tuple[tuple[str, Any], ...]
"""Charge properties as sorted ``(key, value)`` pairs, amounts canonical."""

_AMOUNT_KEYS = frozenset({"amount", "fixed_amount", "per_unit_amount", "rate"})


def values_key(values: Mapping[str, Iterable[str]]) -> ValuesKey:
    """The canonical identity of a filter's values, order-insensitive."""
    return tuple(sorted((key, tuple(sorted(vals))) for key, vals in values.items()))


def canonical_properties(properties: Mapping[str, Any] | None) -> PropertyItems:
    """Properties with amounts canonical and empty entries dropped.

    Lago drops unknown keys and may echo optional ones as ``null``; neither
    changes what is billed, so neither may show as a difference.
    """
    items = []
    for key, value in (properties or {}).items():
        if value is None or value == [] or value == {}:
            continue
        if key in _AMOUNT_KEYS and isinstance(value, str | int | Decimal):
            value = _canonical_amount(value)
        items.append((key, value))
    return tuple(sorted(items))


def _canonical_amount(value: str | int | Decimal) -> str:
    try:
        return money_string(Decimal(str(value)))
    except InvalidOperation:
        return str(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Bucket:
    """One priced bucket of a charge: a filter, or the default bucket."""

    properties: PropertyItems
    invoice_display_name: str | None = None

    def get(self, key: str) -> Any:
        """The canonical value of one property, or ``None``."""
        return dict(self.properties).get(key)


@dataclass(frozen=True)
class ChargeState:
    """A charge as Lago bills it, comparable between template and Lago."""

    code: str
    billable_metric: str
    charge_model: str
    pay_in_advance: bool
    invoice_display_name: str | None
    default: Bucket
    filters: Mapping[ValuesKey, Bucket]


def _bucket(price: PriceSpec, charge_model: ChargeModel) -> Bucket:
    properties = price.properties(charge_model)
    return Bucket(canonical_properties(properties), _text(price.invoice_display_name))


def charge_state(spec: ChargeSpec) -> ChargeState:
    """The state a template charge asks Lago to hold."""
    filters = {
        values_key(price.filter_values()): _bucket(price, spec.charge_model)
        for price in spec.filters
    }
    return ChargeState(
        code=spec.code,
        billable_metric=spec.billable_metric,
        charge_model=spec.charge_model,
        pay_in_advance=spec.pay_in_advance,
        invoice_display_name=_text(spec.invoice_display_name),
        default=Bucket(_bucket(spec.default, spec.charge_model).properties),
        filters=filters,
    )


@dataclass(frozen=True)
class LiveCharge:
    """A charge in Lago: its state and the ids writes need."""

    state: ChargeState
    lago_id: str
    billable_metric_id: str


@dataclass(frozen=True)
class LivePlan:
    """A plan in Lago, with its charges keyed by charge code."""

    lago_id: str
    code: str
    name: str
    interval: str
    amount_cents: int
    amount_currency: str
    pay_in_advance: bool
    description: str | None
    invoice_display_name: str | None
    trial_period: Decimal
    charges: Mapping[str, LiveCharge]
    pending_deletion: bool = False

    def charge_filters(self, metric: str) -> Iterator[tuple[str, ValuesKey]]:
        """``(charge code, filter)`` for every filter of a charge on ``metric``."""
        for code, charge in sorted(self.charges.items()):
            if charge.state.billable_metric == metric:
                for key in sorted(charge.state.filters):
                    yield code, key

    def uses_metric(self, metric: str) -> bool:
        """Whether any charge of this plan is on ``metric``."""
        return any(c.state.billable_metric == metric for c in self.charges.values())


@dataclass(frozen=True)
class LiveMetric:
    """A billable metric in Lago."""

    lago_id: str
    code: str
    name: str
    description: str | None
    aggregation_type: str
    field_name: str | None
    recurring: bool
    filters: Mapping[str, tuple[str, ...]]
    rounding_function: str | None = None
    rounding_precision: int | None = None
    expression: str | None = None


@dataclass(frozen=True)
class SubscriptionCount:
    """How many subscriptions a plan has; Lago's own counters are always 0.

    ``ever`` counts every status, terminated included: Lago freezes a plan's
    interval, currency and the like once any subscription ever existed.
    """

    active: int
    ever: int


@dataclass(frozen=True)
class LiveState:
    """The part of a Lago organisation a set of templates touches.

    ``metrics`` holds the templates' metrics that exist (and, when pruning,
    every metric); ``plans`` the templates' plans plus every plan with a
    charge on one of those metrics (and, when pruning, every plan). Plans
    pending deletion are kept apart: they still hold their code.
    ``subscriptions`` is filled only for plans that have changes.
    """

    metrics: Mapping[str, LiveMetric] = field(default_factory=dict)
    plans: Mapping[str, LivePlan] = field(default_factory=dict)
    subscriptions: Mapping[str, SubscriptionCount] = field(default_factory=dict)
    pending_deletion: frozenset[str] = frozenset()

    @classmethod
    def from_lago(
        cls,
        metrics: Iterable[Mapping[str, Any]] = (),
        plans: Iterable[Mapping[str, Any]] = (),
        subscriptions: Mapping[str, SubscriptionCount] | None = None,
    ) -> LiveState:
        """Build the state from Lago's JSON objects (without root keys)."""
        parsed = [parse_plan(p) for p in plans]
        return cls(
            metrics={m.code: m for m in map(parse_metric, metrics)},
            plans={p.code: p for p in parsed if not p.pending_deletion},
            subscriptions=dict(subscriptions or {}),
            pending_deletion=frozenset(p.code for p in parsed if p.pending_deletion),
        )


def parse_metric(data: Mapping[str, Any]) -> LiveMetric:
    """A billable metric from Lago's ``billable_metric`` object."""
    return LiveMetric(
        lago_id=str(data["lago_id"]),
        code=str(data["code"]),
        name=str(data.get("name") or ""),
        description=_text(data.get("description")),
        aggregation_type=str(data.get("aggregation_type")),
        field_name=_text(data.get("field_name")),
        recurring=bool(data.get("recurring")),
        rounding_function=_text(data.get("rounding_function")),
        rounding_precision=_integer(data.get("rounding_precision")),
        expression=_text(data.get("expression")),
        filters={
            str(f["key"]): tuple(sorted(str(v) for v in f.get("values") or ()))
            for f in data.get("filters") or ()
        },
    )


def parse_charge(data: Mapping[str, Any]) -> LiveCharge:
    """A charge from Lago's ``charge`` object, filters keyed by values."""
    filters = {
        values_key(f.get("values") or {}): Bucket(
            canonical_properties(f.get("properties")),
            _text(f.get("invoice_display_name")),
        )
        for f in data.get("filters") or ()
    }
    state = ChargeState(
        code=str(data.get("code") or data.get("billable_metric_code")),
        billable_metric=str(data.get("billable_metric_code")),
        charge_model=str(data.get("charge_model")),
        pay_in_advance=bool(data.get("pay_in_advance")),
        invoice_display_name=_text(data.get("invoice_display_name")),
        default=Bucket(canonical_properties(data.get("properties"))),
        filters=filters,
    )
    return LiveCharge(
        state=state,
        lago_id=str(data["lago_id"]),
        billable_metric_id=str(data.get("lago_billable_metric_id")),
    )


def parse_plan(data: Mapping[str, Any]) -> LivePlan:
    """A plan from Lago's ``plan`` object, charges included."""
    charges = [parse_charge(c) for c in data.get("charges") or ()]
    return LivePlan(
        lago_id=str(data["lago_id"]),
        code=str(data["code"]),
        name=str(data.get("name") or ""),
        interval=str(data.get("interval")),
        amount_cents=int(data.get("amount_cents") or 0),
        amount_currency=str(data.get("amount_currency")),
        pay_in_advance=bool(data.get("pay_in_advance")),
        description=_text(data.get("description")),
        invoice_display_name=_text(data.get("invoice_display_name")),
        trial_period=Decimal(str(data.get("trial_period") or 0)).normalize(),
        charges={c.state.code: c for c in charges},
        pending_deletion=bool(data.get("pending_deletion")),
    )
