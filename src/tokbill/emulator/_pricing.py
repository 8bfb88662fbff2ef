"""Usage arithmetic: bucket matching, aggregation, rounding and charge models.

Sources: lago-api ``app/services/charge_filters/matching_and_ignored_service.rb``,
``app/services/events/stores/postgres_store.rb``,
``app/services/billable_metrics/aggregations/*`` and
``app/services/charge_models/{package,standard}_service.rb`` (lago-api.md §3).
Everything is ``Decimal``. Package pricing divides exactly where Lago divides
in floating point; the two differ only past float precision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from tokbill._currency import exponent, round_to_currency
from tokbill.emulator._filters import ALL_FILTER_VALUES, FilterValues

# Lago's PG store sums only properties that look like this (numeric_condition).
_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")
_ROUNDING_MODES = {"round": ROUND_HALF_UP, "ceil": ROUND_CEILING, "floor": ROUND_FLOOR}


def property_text(value: Any) -> str | None:
    """A JSON property as Postgres ``properties ->> key`` renders it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        # jsonb keeps a JSON number as numeric, which prints without an
        # exponent: 1e-07 reads back as 0.0000001 and is summed.
        return format(Decimal(repr(value)), "f")
    return json.dumps(value, separators=(", ", ": "))


def decimal_text(value: Decimal) -> str:
    """``BigDecimal#to_s`` as Rails renders it in JSON: ``"4.0"``, ``"0.5"``."""
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"


Conditions = dict[str, frozenset[str]]


@dataclass
class Bucket:
    """One priced bucket: a charge filter, or the default bucket (no filter).

    A filter bucket counts the events that match ``matcher`` and none of
    ``ignored``; the default bucket counts the events no filter matches.
    """

    properties: dict[str, Any]
    matcher: Conditions | None = None
    ignored: list[Conditions] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def matched(self, properties: dict[str, Any]) -> bool:
        """Whether an event with ``properties`` has this filter's values."""
        return self.matcher is not None and _matches(self.matcher, properties)

    def counts(self, properties: dict[str, Any]) -> bool:
        """Whether an event with ``properties`` is counted in this filter."""
        if not self.matched(properties):
            return False
        return not any(_ignores(item, properties) for item in self.ignored)


def _matches(conditions: Conditions, properties: dict[str, Any]) -> bool:
    # ``properties ->> key IN (...)``: a missing key is NULL and never matches.
    return all(
        property_text(properties.get(key)) in allowed
        for key, allowed in conditions.items()
    )


def _ignores(conditions: Conditions, properties: dict[str, Any]) -> bool:
    # ``coalesce(properties ->> key, '') IN (...)``, as Lago excludes children.
    return all(
        (property_text(properties.get(key)) or "") in allowed
        for key, allowed in conditions.items()
    )


@dataclass(frozen=True)
class FilterSpec:
    """A stored charge filter, as the bucket rules need it."""

    values: FilterValues
    """The values as stored, ``__ALL_FILTER_VALUES__`` unexpanded."""
    expanded: FilterValues
    """The values with the sentinel expanded to the metric's declared values."""
    order: int
    """Creation order: a smaller number is an older filter."""


def filter_spec(values: FilterValues, declared: FilterValues, order: int) -> FilterSpec:
    """A filter's spec, with ``__ALL_FILTER_VALUES__`` expanded."""
    expanded = {
        key: list(declared.get(key, ())) if items == [ALL_FILTER_VALUES] else items
        for key, items in values.items()
    }
    return FilterSpec(values, expanded, order)


def filter_bucket(
    spec: FilterSpec, others: Sequence[FilterSpec], properties: dict[str, Any]
) -> Bucket:
    """The bucket of one filter, excluding the events of its "children".

    Lago's ``ChargeFilters::MatchingAndIgnoredService``: another filter is a
    child when it has every key of this one with an overlapping value; its
    events are excluded here, so a nested filter wins over a broader one.
    Children on the same keys lose the shared values first, and of identical
    filters only the oldest counts. Filters that overlap without nesting
    (``{model: [a]}`` and ``{type: [x]}``) both count the shared events, as
    Lago does.
    """
    ignored = []
    for other in others:
        if _is_child(other, spec):
            conditions = _ignored_part(other, spec)
            if conditions:
                ignored.append(conditions)
    matcher = {key: frozenset(items) for key, items in spec.expanded.items()}
    return Bucket(properties=properties, matcher=matcher, ignored=ignored)


def _is_child(other: FilterSpec, spec: FilterSpec) -> bool:
    return all(
        any(value in other.expanded.get(key, ()) for value in items)
        for key, items in spec.expanded.items()
    )


def _ignored_part(child: FilterSpec, spec: FilterSpec) -> Conditions | None:
    own, theirs = spec.expanded, child.expanded
    part = dict(theirs)
    if sorted(theirs) == sorted(own):
        if all(sorted(items) == sorted(own[key]) for key, items in theirs.items()):
            if child.order > spec.order:
                return None
        elif not all(set(items) <= set(own[key]) for key, items in theirs.items()):
            part = {
                key: items
                if spec.values.get(key) == [ALL_FILTER_VALUES]
                else [item for item in items if item not in own[key]]
                for key, items in theirs.items()
            }
    # Lago skips emptied keys, and a child left with none excludes nothing.
    return {key: frozenset(items) for key, items in part.items() if items} or None


def assign(
    events: Sequence[dict[str, Any]], filters: list[Bucket], default: Bucket
) -> None:
    """Put each event in every filter bucket that counts it, else the default."""
    for event in events:
        properties = event["properties"]
        for bucket in filters:
            if bucket.counts(properties):
                bucket.events.append(event)
        # The default bucket ignores every filter, children of none.
        if not any(bucket.matched(properties) for bucket in filters):
            default.events.append(event)


def aggregate(
    aggregation: str, field_name: str | None, events: Sequence[dict[str, Any]]
) -> Decimal:
    """The bucket's units for the metric's aggregation type."""
    if aggregation == "count_agg":
        return Decimal(len(events))
    texts = [
        property_text(event["properties"].get(field_name or "")) for event in events
    ]
    if aggregation == "unique_count_agg":
        return Decimal(len({text for text in texts if text is not None}))
    numbers = [
        Decimal(text) for text in texts if text is not None and _NUMERIC.match(text)
    ]
    if aggregation == "max_agg":
        return max(numbers, default=Decimal(0))
    if aggregation == "latest_agg":
        return numbers[-1] if numbers else Decimal(0)
    return sum(numbers, Decimal(0))


def apply_rounding(
    units: Decimal, function: str | None, precision: int | None
) -> Decimal:
    """The metric's rounding, applied to one bucket's units."""
    if function not in _ROUNDING_MODES:
        return units
    quantum = Decimal(1).scaleb(-(precision or 0))
    return units.quantize(quantum, rounding=_ROUNDING_MODES[function])


def price(charge_model: str, properties: dict[str, Any], units: Decimal) -> Decimal:
    """The amount of one bucket, in currency units, before rounding to cents."""
    unit_amount = Decimal(str(properties.get("amount", "0")))
    if charge_model == "package":
        paid_units = units - Decimal(properties.get("free_units", 0))
        if paid_units <= 0:
            return Decimal(0)
        package_size = Decimal(properties.get("package_size", 1))
        packages = (paid_units / package_size).to_integral_value(rounding=ROUND_CEILING)
        return packages * unit_amount
    return units * unit_amount


def to_cents(amount: Decimal, currency: str) -> int:
    """``round(amount, exponent) * subunit_to_unit``, half up as BigDecimal."""
    return int(round_to_currency(amount, currency).scaleb(exponent(currency)))
