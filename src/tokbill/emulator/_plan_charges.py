"""The charges sub-resource: ``/plans/{code}/charges[/{charge_code}[/filters]]``.

Charges here are addressed by code, and ``POST`` requires one (no generated
code on this path). Filters are addressed by their ``lago_id``. Sources:
lago-api ``app/controllers/api/v1/plans/charges_controller.rb`` and
``plans/charges/filters_controller.rb`` (lago-api.md §2.1).
"""

from __future__ import annotations

from typing import Any

from tokbill.emulator import _charges, _errors, _filters, _plans
from tokbill.emulator._common import Call, dumps, optional_str, paginate, require_found
from tokbill.emulator._store import Database, Row


def _charge(call: Call) -> tuple[Row, Row]:
    plan = _plans.require(call.db, call.params[0])
    charge = _charges.find(call.db, plan["id"], call.params[1])
    return plan, require_found(charge, "charge")


def index(call: Call) -> dict[str, Any]:
    """``GET /plans/{code}/charges``, newest first."""
    db = call.db
    plan = _plans.require(db, call.params[0])
    rows = _charges.for_plan(db, plan["id"], newest_first=True)

    def fetch(limit: int, offset: int) -> list[dict[str, Any]]:
        return [_charges.serialize(db, row) for row in rows[offset : offset + limit]]

    return paginate(call, "charges", len(rows), fetch)


def show(call: Call) -> dict[str, Any]:
    """``GET /plans/{code}/charges/{charge_code}``."""
    _, charge = _charge(call)
    return {"charge": _charges.serialize(call.db, charge)}


def create(call: Call) -> dict[str, Any]:
    """``POST /plans/{code}/charges``; ``code`` is required on this path."""
    db = call.db
    plan = _plans.require(db, call.params[0])
    payload = call.root("charge")
    row = _charges.create(db, plan["id"], payload, generate_code=False)
    return {"charge": _charges.serialize(db, _reload(db, row))}


def update(call: Call) -> dict[str, Any]:
    """``PUT /plans/{code}/charges/{charge_code}``, with the plan-update rules."""
    db = call.db
    plan, charge = _charge(call)
    payload = call.root("charge")
    frozen = _plans.has_subscriptions(db, plan["id"])
    row = _charges.update(db, charge, payload, frozen=frozen)
    return {"charge": _charges.serialize(db, _reload(db, row))}


def destroy(call: Call) -> dict[str, Any]:
    """``DELETE /plans/{code}/charges/{charge_code}``: soft delete."""
    db = call.db
    _, charge = _charge(call)
    body = {"charge": _charges.serialize(db, charge)}
    _charges.destroy(db, charge)
    return body


def filter_index(call: Call) -> dict[str, Any]:
    """``GET .../charges/{charge_code}/filters``, in Lago's filter order."""
    _, charge = _charge(call)
    rows = _filters.load(call.db, charge["id"])

    def fetch(limit: int, offset: int) -> list[dict[str, Any]]:
        page = rows[offset : offset + limit]
        return [_filters.serialize(row, charge["code"]) for row in page]

    return paginate(call, "filters", len(rows), fetch)


def filter_show(call: Call) -> dict[str, Any]:
    """``GET .../filters/{filter_lago_id}``."""
    _, charge = _charge(call)
    row = _find_filter(call.db, charge["id"], call.params[2])
    return {"filter": _filters.serialize(row, charge["code"])}


def filter_create(call: Call) -> dict[str, Any]:
    """``POST .../filters``: one more filter, after the existing ones."""
    db = call.db
    _, charge = _charge(call)
    payload = call.root("filter")
    values, properties = _filters.validate(
        payload, charge["charge_model"], _declared(db, charge)
    )
    position = len(_filters.load(db, charge["id"]))
    row = _filters.insert(db, charge["id"], position, values, payload, properties)
    return {"filter": _filters.serialize(row, charge["code"])}


def filter_update(call: Call) -> dict[str, Any]:
    """``PUT .../filters/{filter_lago_id}``: display name, properties, values."""
    db = call.db
    _, charge = _charge(call)
    row = _find_filter(db, charge["id"], call.params[2])
    payload = {"values": row["values"], **call.root("filter")}
    values, properties = _filters.validate(
        payload, charge["charge_model"], _declared(db, charge)
    )
    changes = {
        "filter_values": dumps(values),
        "properties": dumps(properties),
        "invoice_display_name": optional_str(
            payload.get("invoice_display_name", row["invoice_display_name"])
        ),
    }
    db.update("charge_filters", row["id"], changes)
    updated = _find_filter(db, charge["id"], row["id"])
    return {"filter": _filters.serialize(updated, charge["code"])}


def filter_destroy(call: Call) -> dict[str, Any]:
    """``DELETE .../filters/{filter_lago_id}``: soft delete."""
    db = call.db
    _, charge = _charge(call)
    row = _find_filter(db, charge["id"], call.params[2])
    _filters.discard(db, row["id"])
    return {"filter": _filters.serialize(row, charge["code"])}


def _find_filter(db: Database, charge_id: str, filter_id: str) -> Row:
    for row in _filters.load(db, charge_id):
        if row["id"] == filter_id:
            return row
    raise _errors.not_found("charge_filter")


def _declared(db: Database, charge: Row) -> _filters.FilterValues:
    metric = db.by_id("billable_metrics", charge["billable_metric_id"])
    return _filters.metric_filters(metric) if metric else {}


def _reload(db: Database, charge: Row) -> Row:
    # The stored row, whose JSON columns are still encoded as serialize wants.
    return require_found(db.by_id("charges", charge["id"]), "charge")
