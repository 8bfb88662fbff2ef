"""Billable metrics: create, show, update, delete and list, with Lago's rules.

Sources: lago-api ``app/models/billable_metric.rb``,
``app/services/billable_metrics/{create,update,destroy}_service.rb`` (see
lago-api.md §1). The emulator aggregates ``count_agg``, ``sum_agg``,
``max_agg``, ``unique_count_agg`` and ``latest_agg``. It refuses
``weighted_sum_agg`` and any ``expression`` with a 422 instead of storing a
metric it would bill wrongly, and ``custom_agg`` with Lago's own 403.
"""

from __future__ import annotations

from typing import Any

from tokbill.emulator import _errors, _filters
from tokbill.emulator._common import (
    Call,
    as_bool,
    dumps,
    is_json_int,
    loads,
    optional_str,
    paginate_live,
    require_found,
)
from tokbill.emulator._store import Database, Row, iso, new_id

EMULATED_AGGREGATIONS = frozenset(
    {"count_agg", "sum_agg", "max_agg", "unique_count_agg", "latest_agg"}
)
_NOT_RECURRING = frozenset({"count_agg", "max_agg", "latest_agg"})
_ROUNDING = (None, "round", "ceil", "floor")
# Fields that stop changing once a live plan uses the metric (§1.4).
_GUARDED = (
    "code",
    "aggregation_type",
    "weighted_interval",
    "field_name",
    "recurring",
    "rounding_function",
    "rounding_precision",
    "expression",
)
_COUNTERS = {
    "active_subscriptions_count": 0,
    "draft_invoices_count": 0,
    "plans_count": 0,
}


def find_by_code(db: Database, code: str) -> Row | None:
    """The live metric with ``code``."""
    return db.one(
        "SELECT * FROM billable_metrics WHERE code = ? AND deleted_at IS NULL",
        (code,),
    )


def find_by_id(db: Database, metric_id: Any) -> Row | None:
    """The live metric whose ``lago_id`` is ``metric_id``."""
    return db.one(
        "SELECT * FROM billable_metrics WHERE id = ? AND deleted_at IS NULL",
        (str(metric_id),),
    )


def serialize(row: Row, *, counters: bool = False) -> dict[str, Any]:
    """The metric as Lago renders it; filters sorted by key, values sorted."""
    filters = sorted(loads(row["filters"]), key=lambda item: item["key"])
    body = {
        "lago_id": row["id"],
        "name": row["name"],
        "code": row["code"],
        "description": row["description"],
        "aggregation_type": row["aggregation_type"],
        "weighted_interval": row["weighted_interval"],
        "recurring": bool(row["recurring"]),
        "rounding_function": row["rounding_function"],
        "rounding_precision": row["rounding_precision"],
        "created_at": row["created_at"],
        "field_name": row["field_name"],
        "expression": row["expression"],
        "filters": [
            {"key": item["key"], "values": sorted(item["values"])} for item in filters
        ],
    }
    if counters:
        body.update(_COUNTERS)
    return body


def create(call: Call) -> dict[str, Any]:
    """``POST /billable_metrics``."""
    payload = call.root("billable_metric")
    row: Row = {
        "id": new_id(),
        "name": optional_str(payload.get("name")),
        "description": optional_str(payload.get("description")),
        "recurring": False,
        "filters": "[]",
        "created_at": iso(call.db.now()),
    }
    _assign_guarded(row, payload, apply_all=True)
    if "filters" in payload:
        row["filters"] = dumps(_parse_filters(payload["filters"]))
    _validate(call.db, row)
    call.db.insert("billable_metrics", row)
    return {"billable_metric": serialize(row, counters=True)}


def show(call: Call) -> dict[str, Any]:
    """``GET /billable_metrics/{code}``; no counters on show."""
    row = require_found(find_by_code(call.db, call.params[0]), "billable_metric")
    return {"billable_metric": serialize(row)}


def index(call: Call) -> dict[str, Any]:
    """``GET /billable_metrics``, newest first, with the (zero) counters."""
    return paginate_live(
        call, "billable_metrics", lambda row: serialize(row, counters=True)
    )


def update(call: Call) -> dict[str, Any]:
    """``PUT /billable_metrics/{code}``: guarded fields kept once a plan uses it."""
    db = call.db
    current = require_found(find_by_code(db, call.params[0]), "billable_metric")
    payload = call.root("billable_metric")
    row = dict(current)
    for field in ("name", "description"):
        if field in payload:
            row[field] = optional_str(payload[field])
    _assign_guarded(row, payload, apply_all=not is_attached_to_plan(db, row["id"]))
    if "filters" in payload:
        kept = _parse_filters(payload["filters"])
        row["filters"] = dumps(kept)
        _filters.trim_for_metric(
            db, row["id"], {item["key"]: item["values"] for item in kept}
        )
    _validate(db, row)
    changes = {key: value for key, value in row.items() if current[key] != value}
    db.update("billable_metrics", row["id"], changes)
    return {"billable_metric": serialize(row, counters=True)}


def destroy(call: Call) -> dict[str, Any]:
    """``DELETE /billable_metrics/{code}``: soft delete, with its charges."""
    db = call.db
    row = require_found(find_by_code(db, call.params[0]), "billable_metric")
    deleted_at = iso(db.now())
    db.update("billable_metrics", row["id"], {"deleted_at": deleted_at})
    db.run(
        "UPDATE charges SET deleted_at = ?"
        " WHERE billable_metric_id = ? AND deleted_at IS NULL",
        (deleted_at, row["id"]),
    )
    return {"billable_metric": serialize(row, counters=True)}


def is_attached_to_plan(db: Database, metric_id: str) -> bool:
    """Whether a live charge of a live plan uses the metric."""
    found = db.scalar(
        "SELECT 1 FROM charges c JOIN plans p ON p.id = c.plan_id"
        " WHERE c.billable_metric_id = ? AND c.deleted_at IS NULL"
        " AND p.deleted_at IS NULL LIMIT 1",
        (metric_id,),
    )
    return found is not None


def _assign_guarded(row: Row, payload: dict[str, Any], *, apply_all: bool) -> None:
    if not apply_all:
        return
    for field in _GUARDED:
        if field in payload:
            row[field] = payload[field]
        else:
            row.setdefault(field, None)
    row["recurring"] = as_bool(row["recurring"])
    if row["aggregation_type"] == "count_agg":
        row["field_name"] = None


def _parse_filters(filters: Any) -> list[dict[str, Any]]:
    if not isinstance(filters, list):
        raise _errors.field_error("filters", "value_is_invalid")
    parsed: dict[str, list[str]] = {}
    for item in filters:
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not values:
            raise _errors.field_error("values", "value_is_mandatory")
        key = str(item.get("key") or "")
        if not key:
            raise _errors.field_error("key", "value_is_mandatory")
        parsed[key] = list(dict.fromkeys(str(value) for value in values))
    return [{"key": key, "values": values} for key, values in parsed.items()]


def _validate(db: Database, row: Row) -> None:
    aggregation = row["aggregation_type"]
    if aggregation == "custom_agg":
        raise _errors.forbidden("feature_unavailable")
    problems = _errors.Problems()
    for field in ("name", "code"):
        if not row.get(field):
            problems.add(field, "value_is_mandatory")
    if aggregation not in EMULATED_AGGREGATIONS:
        problems.add("aggregation_type", "value_is_invalid")
    if aggregation != "count_agg" and not row.get("field_name"):
        problems.add("field_name", "value_is_mandatory")
    if row["recurring"] and aggregation in _NOT_RECURRING:
        problems.add("recurring", "not_compatible_with_aggregation_type")
    if row.get("rounding_function") not in _ROUNDING:
        problems.add("rounding_function", "value_is_invalid")
    precision = row.get("rounding_precision")
    # Rails would cast true, "2" or 2.5 into the integer column; the emulator
    # refuses anything but a JSON integer rather than guess at the cast.
    if precision is not None and not is_json_int(precision):
        problems.add("rounding_precision", "value_is_invalid")
    if row.get("expression"):
        problems.add("expression", "invalid_expression")
    if row.get("code") and _code_taken(db, row["code"], row["id"]):
        problems.add("code", "value_already_exist")
    problems.raise_if_any()


def _code_taken(db: Database, code: str, own_id: str) -> bool:
    other = find_by_code(db, code)
    return other is not None and other["id"] != own_id
