"""Current usage: ``GET /customers/{id}/current_usage``, in Lago's shape.

Computed on every request from the stored events, so there is none of Lago's
cache lag: a 200 from ``/events`` is visible at once. Shape and rules from
lago-api ``app/services/invoices/customer_usage_service.rb`` and
``app/serializers/v1/customers/{usage,charge_usage}_serializer.rb``
(lago-api.md §5.1). Taxes are not emulated, so ``taxes_amount_cents`` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokbill.emulator import _customers, _errors, _events, _filters, _pricing
from tokbill.emulator._charges import for_plan
from tokbill.emulator._common import Call, loads, require_found
from tokbill.emulator._pricing import Bucket, decimal_text
from tokbill.emulator._store import Database, Row, iso
from tokbill.emulator._subscriptions import period_of, refresh_statuses


def current(call: Call) -> dict[str, Any]:
    """Usage of the subscription's current period, one entry per charge."""
    db = call.db
    subscription = _active_subscription(call)
    plan = require_found(db.by_id("plans", subscription["plan_id"]), "plan")
    period = period_of(db, subscription, plan)
    events = _events.window(db, subscription["external_id"], period.start, period.end)
    currency = plan["amount_currency"]
    usages = [
        _charge_usage(db, charge, metric, events, currency)
        for charge, metric in _selected_charges(call, db, plan["id"])
    ]
    usages.sort(key=lambda usage: usage["billable_metric"]["name"].lower())
    amount_cents = sum(usage["amount_cents"] for usage in usages)
    body = {
        "from_datetime": iso(period.start),
        "to_datetime": iso(period.last_second),
        "issuing_date": period.last_second.date().isoformat(),
        "currency": currency,
        "amount_cents": amount_cents,
        "taxes_amount_cents": 0,
        "total_amount_cents": amount_cents,
        "lago_invoice_id": None,
        "charges_usage": usages,
    }
    return {"customer_usage": body}


def _active_subscription(call: Call) -> Row:
    """The customer's active subscription asked for, or Lago's 404 or 405."""
    db = call.db
    customer = _customers.require(db, call.params[0])
    refresh_statuses(db)
    subscription = db.one(
        "SELECT * FROM subscriptions WHERE external_id = ? AND customer_id = ?"
        " AND status = 'active' ORDER BY seq DESC LIMIT 1",
        (call.query.get("external_subscription_id") or "", customer["id"]),
    )
    if subscription is None:
        raise _errors.not_allowed("no_active_subscription")
    return subscription


def _selected_charges(call: Call, db: Database, plan_id: str) -> list[tuple[Row, Row]]:
    """The plan's charges with their metrics, narrowed by the charge filters."""
    pairs = []
    for charge in for_plan(db, plan_id):
        metric = db.by_id("billable_metrics", charge["billable_metric_id"])
        if metric is not None:
            pairs.append((charge, metric))
    for name in ("charge_id", "charge_code", "billable_metric_code"):
        wanted = call.query.get(name)
        if wanted:
            pairs = [pair for pair in pairs if _selector(name, *pair) == wanted]
            if not pairs:
                raise _errors.not_found("charge")
    return pairs


def _selector(name: str, charge: Row, metric: Row) -> Any:
    if name == "billable_metric_code":
        return metric["code"]
    return charge["id"] if name == "charge_id" else charge["code"]


def _charge_usage(
    db: Database,
    charge: Row,
    metric: Row,
    events: list[Row],
    currency: str,
) -> dict[str, Any]:
    stored = _filters.load(db, charge["id"])
    priced = _priced_buckets(stored, charge, metric, events, currency)
    units = sum((bucket.units for bucket in priced), Decimal(0))
    entries = [
        _filter_entry(bucket, row)
        for bucket, row in zip(priced, [*stored, None], strict=True)
    ]
    return {
        "units": decimal_text(units),
        "total_aggregated_units": decimal_text(units),
        "events_count": sum(bucket.events_count for bucket in priced),
        "amount_cents": sum(bucket.amount_cents for bucket in priced),
        "amount_currency": currency,
        "pricing_unit_details": None,
        "charge": {
            "lago_id": charge["id"],
            "code": charge["code"],
            "charge_model": charge["charge_model"],
            "invoice_display_name": charge["invoice_display_name"],
        },
        "billable_metric": {
            "lago_id": metric["id"],
            "name": metric["name"],
            "code": metric["code"],
            "aggregation_type": metric["aggregation_type"],
        },
        "filters": entries if stored else [],
        "grouped_usage": [],
        "presentation_breakdowns": [],
    }


def _priced_buckets(
    stored: list[Row], charge: Row, metric: Row, events: list[Row], currency: str
) -> list[_Priced]:
    """One priced bucket per stored filter, in that order, then the default."""
    declared = _filters.metric_filters(metric)
    specs = [
        _pricing.filter_spec(row["values"], declared, row["seq"]) for row in stored
    ]
    filters = [
        _pricing.filter_bucket(
            spec, specs[:index] + specs[index + 1 :], row["properties"]
        )
        for index, (spec, row) in enumerate(zip(specs, stored, strict=True))
    ]
    default = Bucket(properties=loads(charge["properties"]))
    own_events = [event for event in events if event["code"] == metric["code"]]
    _pricing.assign(own_events, filters, default)
    return [_price(bucket, metric, charge, currency) for bucket in (*filters, default)]


@dataclass(frozen=True)
class _Priced:
    units: Decimal
    events_count: int
    amount_cents: int


def _price(bucket: Bucket, metric: Row, charge: Row, currency: str) -> _Priced:
    units = _pricing.aggregate(
        metric["aggregation_type"], metric["field_name"], bucket.events
    )
    units = _pricing.apply_rounding(
        units, metric["rounding_function"], metric["rounding_precision"]
    )
    # Negative totals are billed as zero units (fees/charge_service.rb#init_fee).
    units = max(units, Decimal(0))
    amount = _pricing.price(charge["charge_model"], bucket.properties, units)
    return _Priced(units, len(bucket.events), _pricing.to_cents(amount, currency))


def _filter_entry(bucket: _Priced, row: Row | None) -> dict[str, Any]:
    """One ``filters[]`` entry; ``row`` is None for the default bucket."""
    return {
        "units": decimal_text(bucket.units),
        "total_aggregated_units": decimal_text(bucket.units),
        "events_count": bucket.events_count,
        "amount_cents": bucket.amount_cents,
        "pricing_unit_details": None,
        "invoice_display_name": row["invoice_display_name"] if row else None,
        "values": row["values"] if row else None,
        "presentation_breakdowns": [],
    }
