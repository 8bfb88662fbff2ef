"""A subscription's current usage, as Lago computes it, in currency units.

Lago's ``customer_usage`` (lago-api.md §5.1) carries one ``charges_usage``
entry per charge, each with one ``filters`` entry per filter bucket plus the
default bucket (``values: null``). :func:`parse_usage` flattens that into one
:class:`UsageLine` per bucket; a charge without filters is a single bucket.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from tokbill._currency import from_subunits
from tokbill.template._model import FilterValues, money_string

__all__ = [
    "Subscription",
    "Usage",
    "UsageLine",
    "combine_lines",
    "parse_usage",
    "require_keys",
]

GroupKey = tuple[str | None, ...]


@dataclass(frozen=True)
class UsageLine:
    """One priced bucket: a charge filter, or a charge's default bucket.

    ``filters`` maps each filter key to the values the bucket covers, e.g.
    ``{"model": ("gpt-4",), "type": ("input",)}``, sorted like the template
    model's ``FilterValues``; it is ``None`` for the default bucket (events
    that match no filter) and for a charge without filters. ``units`` is the
    bucket's aggregated value (tokens, for a token metric) and ``amount`` its
    price in currency units, already rounded by Lago.
    """

    metric_code: str
    charge_code: str
    filters: FilterValues | None
    units: Decimal
    amount: Decimal
    events_count: int
    display_name: str | None = None

    def value(self, key: str) -> str | None:
        """The bucket's value for filter ``key``; None when it has no such key.

        A filter that covers several values reports them joined with ``|``,
        e.g. ``"gpt-4|gpt-4-0613"``, since they share one price and one count.
        """
        if self.filters is None or key not in self.filters:
            return None
        return "|".join(self.filters[key])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document: units and amount as decimal strings."""
        filters = self.filters
        return {
            "metric_code": self.metric_code,
            "charge_code": self.charge_code,
            "filters": None
            if filters is None
            else {k: list(v) for k, v in filters.items()},
            "units": money_string(self.units),
            "amount": str(self.amount),
            "events_count": self.events_count,
        }


@dataclass(frozen=True)
class Usage:
    """Current usage of one subscription in its open billing period.

    Money is ``Decimal`` in currency units (``Decimal("0.09")`` USD), exact:
    Lago sends integer subunits. ``amount`` excludes taxes, ``total_amount``
    includes them, and neither includes the plan's fixed fee, which Lago's
    current usage leaves out.

    ``fetched_at`` is when tokbill received the figure from Lago. ``stale``
    is True when the last refresh failed and this is the last good value,
    ``age_s`` seconds old (0 for a fresh fetch; up to the TTL for a cached one).
    """

    customer_id: str
    subscription_id: str
    period_start: datetime
    period_end: datetime
    currency: str
    amount: Decimal
    taxes_amount: Decimal
    total_amount: Decimal
    lines: tuple[UsageLine, ...]
    fetched_at: datetime
    stale: bool = False
    age_s: float = 0.0

    @property
    def units(self) -> Decimal:
        """Units summed over every line (tokens, for a token metric)."""
        return sum((line.units for line in self.lines), Decimal(0))

    def by(self, *keys: str) -> dict[GroupKey, UsageLine]:
        """Lines grouped by filter values: ``by("model", "type")``.

        Returns ``{("gpt-4", "input"): line, ...}`` with one element per key
        (see :meth:`UsageLine.value`; None where a line has no such filter
        key, so the default bucket is ``(None, None)``). Lines that share a
        group, such as two charges pricing the same model, or every type of
        a model under ``by("model")``, are combined into one line whose units,
        amount and events are summed. Groups keep the order of first
        appearance.
        """
        require_keys(keys)
        groups: dict[GroupKey, list[UsageLine]] = {}
        for line in self.lines:
            group = tuple(line.value(key) for key in keys)
            groups.setdefault(group, []).append(line)
        return {
            group: combine_lines(lines, keys, group) for group, lines in groups.items()
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document: money and units as decimal strings."""
        return {
            "customer_id": self.customer_id,
            "subscription_id": self.subscription_id,
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "currency": self.currency,
            "amount": str(self.amount),
            "taxes_amount": str(self.taxes_amount),
            "total_amount": str(self.total_amount),
            "units": money_string(self.units),
            "fetched_at": self.fetched_at.isoformat(),
            "stale": self.stale,
            "age_s": round(self.age_s, 3),
            "lines": [line.to_dict() for line in self.lines],
        }

    def marked(self, *, stale: bool, age_s: float) -> Usage:
        """A copy with the staleness and age of this serving."""
        return dataclasses.replace(self, stale=stale, age_s=age_s)


def require_keys(keys: tuple[str, ...]) -> None:
    """Refuse ``by()`` without keys, which would lump every line into one."""
    if not keys:
        raise ValueError("by() needs at least one filter key, e.g. 'model'.")


def combine_lines(
    lines: list[UsageLine], keys: tuple[str, ...], group: GroupKey
) -> UsageLine:
    """One line standing for a group: the line itself, or the lines summed."""
    if len(lines) == 1:
        return lines[0]
    filters = {
        key: tuple(value.split("|"))
        for key, value in zip(keys, group, strict=True)
        if value is not None
    }
    return UsageLine(
        metric_code=_joined(line.metric_code for line in lines),
        charge_code=_joined(line.charge_code for line in lines),
        filters=filters or None,
        units=sum((line.units for line in lines), Decimal(0)),
        amount=sum((line.amount for line in lines), Decimal(0)),
        events_count=sum(line.events_count for line in lines),
    )


def _joined(codes: Iterable[str]) -> str:
    return ",".join(dict.fromkeys(codes))


def parse_usage(
    body: Mapping[str, Any],
    *,
    customer_id: str,
    subscription_id: str,
    fetched_at: datetime,
) -> Usage:
    """Build a :class:`Usage` from Lago's ``{"customer_usage": {...}}`` body.

    Raises:
        ValueError: the body lacks a field Lago always sends; the message
            names it.
    """
    data = _field(body, "customer_usage")
    currency = str(_field(data, "currency"))
    lines = tuple(
        line
        for charge in data.get("charges_usage") or []
        for line in _charge_lines(charge, currency)
    )
    return Usage(
        customer_id=customer_id,
        subscription_id=subscription_id,
        period_start=_datetime(_field(data, "from_datetime")),
        period_end=_datetime(_field(data, "to_datetime")),
        currency=currency,
        amount=from_subunits(_field(data, "amount_cents"), currency),
        taxes_amount=from_subunits(data.get("taxes_amount_cents") or 0, currency),
        total_amount=from_subunits(_field(data, "total_amount_cents"), currency),
        lines=lines,
        fetched_at=fetched_at,
    )


def _charge_lines(charge: Mapping[str, Any], currency: str) -> list[UsageLine]:
    metric_code = str(_field(_field(charge, "billable_metric"), "code"))
    charge_info = _field(charge, "charge")
    # Charges created before Lago had charge codes carry none; the metric
    # code is what such a charge is known by in templates.
    charge_code = str(charge_info.get("code") or metric_code)
    buckets = charge.get("filters") or [{**charge, "values": None}]
    return [
        UsageLine(
            metric_code=metric_code,
            charge_code=charge_code,
            filters=_filter_values(bucket.get("values")),
            units=Decimal(str(_field(bucket, "units"))),
            amount=from_subunits(_field(bucket, "amount_cents"), currency),
            events_count=int(bucket.get("events_count") or 0),
            display_name=bucket.get("invoice_display_name")
            or charge_info.get("invoice_display_name"),
        )
        for bucket in buckets
    ]


def _filter_values(values: Mapping[str, Any] | None) -> FilterValues | None:
    if not values:
        return None
    return {
        str(key): tuple(sorted(str(v) for v in _as_list(raw)))
        for key, raw in sorted(values.items())
    }


def _as_list(raw: Any) -> list[Any]:
    return list(raw) if isinstance(raw, (list, tuple)) else [raw]


def _field(data: Mapping[str, Any], name: str) -> Any:
    if not isinstance(data, Mapping) or data.get(name) is None:
        raise ValueError(f"Lago's current usage has no {name!r} field.")
    return data[name]


def _datetime(text: str) -> datetime:
    # Python 3.10's fromisoformat does not accept the "Z" suffix Lago uses.
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


@dataclass(frozen=True)
class Subscription:
    """A customer's subscription, as listed by Lago."""

    subscription_id: str
    customer_id: str
    plan_code: str
    status: str
    name: str | None = None

    @classmethod
    def from_lago(cls, data: Mapping[str, Any]) -> Subscription:
        """Build from one item of Lago's ``subscriptions`` list."""
        return cls(
            subscription_id=str(_field(data, "external_id")),
            customer_id=str(_field(data, "external_customer_id")),
            plan_code=str(data.get("plan_code") or ""),
            status=str(data.get("status") or ""),
            name=data.get("name") or None,
        )
