"""Charge filters: validation, the batch upsert, trimming, and serialization.

Rules from lago-api ``app/services/charge_filters/create_or_update_batch_service.rb``
and ``app/services/billable_metric_filters/create_or_update_batch_service.rb``
(see lago-api.md §1.5 and §2.5).
"""

from __future__ import annotations

from typing import Any

from tokbill.emulator import _errors, _properties
from tokbill.emulator._common import dumps, loads, optional_str
from tokbill.emulator._store import Database, Row, iso, new_id

ALL_FILTER_VALUES = "__ALL_FILTER_VALUES__"

FilterValues = dict[str, list[str]]


def metric_filters(metric: Row) -> FilterValues:
    """A metric's filters as ``{key: [values]}``, in stored order."""
    return {item["key"]: list(item["values"]) for item in loads(metric["filters"])}


def load(db: Database, charge_id: str) -> list[Row]:
    """The live filters of a charge in Lago's order, ``values`` decoded."""
    rows = db.all(
        "SELECT * FROM charge_filters WHERE charge_id = ? AND deleted_at IS NULL"
        " ORDER BY position, seq",
        (charge_id,),
    )
    for row in rows:
        row["values"] = loads(row["filter_values"])
        row["properties"] = loads(row["properties"])
    return rows


def serialize(row: Row, charge_code: str) -> dict[str, Any]:
    """The filter as Lago's ``ChargeFilterSerializer`` renders it."""
    return {
        "lago_id": row["id"],
        "charge_code": charge_code,
        "invoice_display_name": row["invoice_display_name"],
        "properties": row["properties"],
        "values": row["values"],
        "created_at": row["created_at"],
    }


def validate(
    payload: Any, charge_model: str, declared: FilterValues
) -> tuple[FilterValues, dict[str, Any]]:
    """Check one filter payload; return its ``(values, properties)`` or raise 422.

    Every key must be a metric filter key and every value a declared value of
    it, or the single sentinel ``__ALL_FILTER_VALUES__``.
    """
    if not isinstance(payload, dict):
        raise _errors.field_error("values", "value_is_mandatory")
    values = payload.get("values")
    if not isinstance(values, dict) or not values:
        raise _errors.field_error("values", "value_is_mandatory")
    problems = _errors.Problems()
    clean: FilterValues = {}
    for key, items in values.items():
        if not isinstance(items, list) or not items:
            problems.add("values", "value_is_mandatory")
            continue
        clean[key] = [str(item) for item in items]
        if not _values_declared(key, clean[key], declared):
            problems.add("values", "value_is_invalid")
    properties = _properties.slice_properties(
        charge_model, payload.get("properties"), for_filter=True
    )
    for code in _properties.problems(charge_model, properties):
        problems.add("properties", code)
    problems.raise_if_any()
    return clean, properties


def _values_declared(key: str, values: list[str], declared: FilterValues) -> bool:
    if key not in declared:
        return False
    if values == [ALL_FILTER_VALUES]:
        return True
    return all(value in declared[key] for value in values)


def same_values(left: FilterValues, right: FilterValues) -> bool:
    """Lago's match: keys sorted, but the order inside each list matters."""
    return sorted(left.items()) == sorted(right.items())


def insert(
    db: Database,
    charge_id: str,
    position: int,
    values: FilterValues,
    payload: dict[str, Any],
    properties: dict[str, Any],
) -> Row:
    """Store a new filter and return it decoded."""
    row = db.insert(
        "charge_filters",
        {
            "id": new_id(),
            "charge_id": charge_id,
            "position": position,
            "invoice_display_name": optional_str(payload.get("invoice_display_name")),
            "properties": dumps(properties),
            "filter_values": dumps(values),
            "created_at": iso(db.now()),
        },
    )
    return {**row, "values": values, "properties": properties}


def replace_all(
    db: Database, charge: Row, payloads: Any, declared: FilterValues
) -> None:
    """Apply a charge's ``filters`` list: match by values, create, delete the rest.

    A matched filter keeps its ``lago_id`` and gets the new display name and
    properties; the order becomes the payload's order.
    """
    if not isinstance(payloads, list):
        raise _errors.field_error("filters", "value_is_invalid")
    existing = load(db, charge["id"])
    kept: set[str] = set()
    for position, payload in enumerate(payloads):
        values, properties = validate(payload, charge["charge_model"], declared)
        unclaimed = (row for row in existing if row["id"] not in kept)
        match = next(
            (row for row in unclaimed if same_values(row["values"], values)), None
        )
        if match is None:
            match = insert(db, charge["id"], position, values, payload, properties)
        else:
            _update_in_place(db, match["id"], position, payload, properties)
        kept.add(match["id"])
    for row in existing:
        if row["id"] not in kept:
            discard(db, row["id"])


def _update_in_place(
    db: Database,
    filter_id: str,
    position: int,
    payload: dict[str, Any],
    properties: dict[str, Any],
) -> None:
    changes = {
        "position": position,
        "invoice_display_name": optional_str(payload.get("invoice_display_name")),
        "properties": dumps(properties),
    }
    db.update("charge_filters", filter_id, changes)


def discard(db: Database, filter_id: str) -> None:
    """Soft-delete one charge filter."""
    db.update("charge_filters", filter_id, {"deleted_at": iso(db.now())})


def discard_for_charge(db: Database, charge_id: str) -> None:
    """Soft-delete every live filter of a charge."""
    db.run(
        "UPDATE charge_filters SET deleted_at = ?"
        " WHERE charge_id = ? AND deleted_at IS NULL",
        (iso(db.now()), charge_id),
    )


def trim_for_metric(db: Database, metric_id: str, kept: FilterValues) -> None:
    """Shrink charge filters after a metric lost filter keys or values.

    A value row keeps only values still declared; an emptied row goes; a
    filter left without rows is soft-deleted, and one with rows for other keys
    stays, broadened, at its old price (lago-api.md §1.5).
    """
    rows = db.all(
        "SELECT f.* FROM charge_filters f JOIN charges c ON c.id = f.charge_id"
        " WHERE c.billable_metric_id = ? AND c.deleted_at IS NULL"
        " AND f.deleted_at IS NULL",
        (metric_id,),
    )
    for row in rows:
        values: FilterValues = loads(row["filter_values"])
        trimmed = _trim(values, kept)
        if trimmed == values:
            continue
        if trimmed:
            db.update("charge_filters", row["id"], {"filter_values": dumps(trimmed)})
        else:
            discard(db, row["id"])


def _trim(values: FilterValues, kept: FilterValues) -> FilterValues:
    trimmed: FilterValues = {}
    for key, items in values.items():
        if key not in kept:
            continue
        if items == [ALL_FILTER_VALUES]:
            trimmed[key] = items
            continue
        remaining = [item for item in items if item in kept[key]]
        if remaining:
            trimmed[key] = remaining
    return trimmed
