"""Usage arithmetic: bucket matching, aggregation, rounding and charge models.

Sources: lago-api ``app/services/charge_filters/event_matching_service.rb``,
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
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(", ", ": "))


def decimal_text(value: Decimal) -> str:
    """``BigDecimal#to_s`` as Rails renders it in JSON: ``"4.0"``, ``"0.5"``."""
    text = format(value.normalize(), "f")
    return text if "." in text else f"{text}.0"


@dataclass
class Bucket:
    """One priced bucket: a charge filter, or the default bucket (no filter)."""

    properties: dict[str, Any]
    matcher: dict[str, frozenset[str]] | None = None
    rank: tuple[int, int] = (0, 0)
    events: list[dict[str, Any]] = field(default_factory=list)

    def matches(self, properties: dict[str, Any]) -> bool:
        """Whether an event with ``properties`` falls in this filter."""
        if self.matcher is None:
            return False
        return all(
            property_text(properties.get(key)) in allowed
            for key, allowed in self.matcher.items()
        )


def filter_matcher(
    values: FilterValues, declared: FilterValues
) -> dict[str, frozenset[str]]:
    """A filter's values with ``__ALL_FILTER_VALUES__`` expanded."""
    return {
        key: frozenset(declared.get(key, ()) if items == [ALL_FILTER_VALUES] else items)
        for key, items in values.items()
    }


def assign(
    events: Sequence[dict[str, Any]], filters: list[Bucket], default: Bucket
) -> None:
    """Put each event in its most specific matching filter, else the default.

    Among matching filters the one with most keys wins; ties go to the filter
    created first, as Lago counts identical duplicates only once.
    """
    ranked = sorted(filters, key=lambda bucket: bucket.rank)
    for event in events:
        properties = event["properties"]
        winner = next(
            (bucket for bucket in ranked if bucket.matches(properties)), default
        )
        winner.events.append(event)


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
