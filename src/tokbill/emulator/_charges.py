"""Charges of a plan: create, update, delete and serialize, with Lago's rules.

Sources: lago-api ``app/services/charges/{create,update,destroy}_service.rb``,
``generate_code_service.rb`` and ``app/models/charge.rb`` (lago-api.md §2.3 to
§2.6). ``invoiceable`` and ``min_amount_cents`` are premium fields that an
unlicensed Lago ignores, so the emulator ignores them too.
"""

from __future__ import annotations

from typing import Any

from tokbill.emulator import _errors, _filters, _metrics, _properties
from tokbill.emulator._common import as_bool, dumps, loads, optional_str
from tokbill.emulator._store import Database, Row, iso, new_id


def find(db: Database, plan_id: str, code: str) -> Row | None:
    """The live charge of the plan with ``code``."""
    return db.one(
        "SELECT * FROM charges WHERE plan_id = ? AND code = ? AND deleted_at IS NULL",
        (plan_id, code),
    )


def for_plan(db: Database, plan_id: str, *, newest_first: bool = False) -> list[Row]:
    """The live charges of a plan, oldest first unless ``newest_first``."""
    order = "DESC" if newest_first else "ASC"
    return db.all(
        "SELECT * FROM charges WHERE plan_id = ? AND deleted_at IS NULL"
        f" ORDER BY seq {order}",
        (plan_id,),
    )


def serialize(db: Database, row: Row) -> dict[str, Any]:
    """The charge as Lago's ``ChargeSerializer`` renders it, with its filters."""
    metric = db.one(
        "SELECT code FROM billable_metrics WHERE id = ?", (row["billable_metric_id"],)
    )
    filters = _filters.load(db, row["id"])
    return {
        "lago_id": row["id"],
        "lago_billable_metric_id": row["billable_metric_id"],
        "lago_parent_id": None,
        "billable_metric_code": metric["code"] if metric else None,
        "code": row["code"],
        "invoice_display_name": row["invoice_display_name"],
        "created_at": row["created_at"],
        "charge_model": row["charge_model"],
        "invoiceable": bool(row["invoiceable"]),
        "regroup_paid_fees": None,
        "pay_in_advance": bool(row["pay_in_advance"]),
        "prorated": bool(row["prorated"]),
        "min_amount_cents": row["min_amount_cents"],
        "properties": loads(row["properties"]),
        "filters": [_filters.serialize(item, row["code"]) for item in filters],
        "taxes": [],
    }


def require_metric(db: Database, payload: dict[str, Any], not_found: str) -> Row:
    """The metric named by ``billable_metric_id``, or 404 ``<not_found>``."""
    metric = _metrics.find_by_id(db, payload.get("billable_metric_id"))
    if metric is None:
        raise _errors.not_found(not_found)
    return metric


def create(
    db: Database, plan_id: str, payload: dict[str, Any], *, generate_code: bool
) -> Row:
    """Validate and store a new charge with its filters.

    ``generate_code`` follows the plan endpoints, which name a charge without a
    code after its metric (``code``, ``code_2``...); the charges sub-resource
    requires the code instead.
    """
    metric = require_metric(db, payload, "billable_metric")
    model = payload.get("charge_model")
    code = payload.get("code")
    if not code and generate_code:
        code = _generate_code(db, plan_id, metric["code"])
    now = iso(db.now())
    row: Row = {
        "id": new_id(),
        "plan_id": plan_id,
        "billable_metric_id": metric["id"],
        "code": optional_str(code),
        "charge_model": model,
        "pay_in_advance": as_bool(payload.get("pay_in_advance")),
        "invoiceable": True,
        "prorated": as_bool(payload.get("prorated")),
        "invoice_display_name": optional_str(payload.get("invoice_display_name")),
        "min_amount_cents": 0,
        "properties": _properties.slice_properties(model, payload.get("properties")),
        "created_at": now,
        "updated_at": now,
    }
    _validate(db, row)
    db.insert("charges", {**row, "properties": dumps(row["properties"])})
    _write_filters(db, row, payload, metric)
    return row


def update(db: Database, current: Row, payload: dict[str, Any], *, frozen: bool) -> Row:
    """Apply ``payload`` to a charge; ``frozen`` when the plan has subscriptions.

    Properties are replaced entirely: omitted ones become the defaults of the
    payload's ``charge_model``, or ``{}`` (invalid) when that is omitted too.
    Omitting ``charge_model`` is an error of its own unless ``frozen``, since
    Lago then assigns the missing model to the charge.
    """
    row = dict(current)
    if not frozen:
        if "billable_metric_id" in payload:
            row["billable_metric_id"] = require_metric(db, payload, "billable_metrics")[
                "id"
            ]
        for field in ("pay_in_advance", "prorated"):
            if field in payload:
                row[field] = as_bool(payload[field])
        # Assigned even when omitted, as Lago does: the charge then has no
        # model, and validation says so.
        row["charge_model"] = payload.get("charge_model")
        if payload.get("code"):
            row["code"] = str(payload["code"])
    row["invoice_display_name"] = optional_str(payload.get("invoice_display_name"))
    if isinstance(payload.get("properties"), dict) and payload["properties"]:
        row["properties"] = _properties.slice_properties(
            row["charge_model"], payload["properties"]
        )
    else:
        row["properties"] = _properties.defaults(payload.get("charge_model"))
    row["updated_at"] = iso(db.now())
    _validate(db, row)
    db.update("charges", row["id"], {**row, "properties": dumps(row["properties"])})
    metric = db.by_id("billable_metrics", row["billable_metric_id"])
    if metric is not None:
        _write_filters(db, row, payload, metric)
    return row


def destroy(db: Database, charge: Row) -> None:
    """Soft-delete a charge and its filters."""
    db.update("charges", charge["id"], {"deleted_at": iso(db.now())})
    _filters.discard_for_charge(db, charge["id"])


def _write_filters(
    db: Database, charge: Row, payload: dict[str, Any], metric: Row
) -> None:
    if "filters" in payload:
        _filters.replace_all(
            db, charge, payload["filters"], _filters.metric_filters(metric)
        )


def _validate(db: Database, row: Row) -> None:
    problems = _errors.Problems()
    model = row["charge_model"]
    if model not in _properties.SUPPORTED_CHARGE_MODELS:
        problems.add("charge_model", "value_is_invalid")
    if not model:
        problems.add("charge_model", "value_is_mandatory")
    if not row["code"]:
        problems.add("code", "value_is_mandatory")
    elif _code_taken(db, row):
        problems.add("code", "value_already_exist")
    for code in _properties.problems(model, row["properties"]):
        problems.add("properties", code)
    if row["prorated"] and model == "package":
        problems.add("prorated", "invalid_billable_metric_or_charge_model")
    problems.raise_if_any()


def _code_taken(db: Database, row: Row) -> bool:
    other = find(db, row["plan_id"], row["code"])
    return other is not None and other["id"] != row["id"]


def _generate_code(db: Database, plan_id: str, metric_code: str) -> str:
    code, suffix = metric_code, 1
    while find(db, plan_id, code) is not None:
        suffix += 1
        code = f"{metric_code}_{suffix}"
    return code
