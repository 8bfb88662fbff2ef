"""Plans: create, show, update, delete and list, with their charges.

Sources: lago-api ``app/services/plans/{create,update,destroy}_service.rb``
and ``app/models/plan.rb`` (lago-api.md §2.2, §2.6, §2.7). Lago deletes a plan
in a background job; the emulator does the job's work (terminate active
subscriptions, cancel pending ones, discard the plan) before it answers, so
the code is free again at once instead of after the job.
"""

from __future__ import annotations

import math
import re
from typing import Any

from tokbill._currency import EXPONENTS
from tokbill.emulator import _charges, _errors
from tokbill.emulator._common import (
    Call,
    as_bool,
    is_json_int,
    optional_str,
    paginate_live,
    require_found,
)
from tokbill.emulator._store import Database, Row, iso, new_id

# What Ruby's String#to_i reads: an optional sign and the leading digits.
_LEADING_INTEGER = re.compile(r"\s*[+-]?\d+")
INTERVALS = ("weekly", "monthly", "quarterly", "semiannual", "yearly")
_ALWAYS_EDITABLE = ("name", "invoice_display_name", "description")
_COUNTERS = {
    "customers_count": 0,
    "active_subscriptions_count": 0,
    "draft_invoices_count": 0,
}


def find_by_code(db: Database, code: str) -> Row | None:
    """The live plan with ``code``."""
    return db.one("SELECT * FROM plans WHERE code = ? AND deleted_at IS NULL", (code,))


def require(db: Database, code: str) -> Row:
    """The live plan with ``code``, or 404 ``plan_not_found``."""
    return require_found(find_by_code(db, code), "plan")


def has_subscriptions(db: Database, plan_id: str) -> bool:
    """Whether any subscription ever used the plan (terminated ones count)."""
    found = db.scalar(
        "SELECT 1 FROM subscriptions WHERE plan_id = ? LIMIT 1", (plan_id,)
    )
    return found is not None


def serialize(db: Database, row: Row) -> dict[str, Any]:
    """The plan as Lago's ``PlanSerializer`` renders it, charges included."""
    return {
        "lago_id": row["id"],
        "name": row["name"],
        "invoice_display_name": row["invoice_display_name"],
        "created_at": row["created_at"],
        "code": row["code"],
        "interval": row["interval"],
        "description": row["description"],
        "amount_cents": row["amount_cents"],
        "amount_currency": row["amount_currency"],
        "trial_period": row["trial_period"],
        "pay_in_advance": bool(row["pay_in_advance"]),
        "bill_charges_monthly": _optional_bool(row["bill_charges_monthly"]),
        "bill_fixed_charges_monthly": None,
        **_COUNTERS,
        "parent_id": None,
        "pending_deletion": bool(row["pending_deletion"]),
        "charges": [
            _charges.serialize(db, c) for c in _charges.for_plan(db, row["id"])
        ],
        "fixed_charges": [],
        "taxes": [],
        "usage_thresholds": [],
        "entitlements": [],
    }


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def create(call: Call) -> dict[str, Any]:
    """``POST /plans``: the plan and its charges, all or nothing."""
    db = call.db
    payload = call.root("plan")
    row: Row = {"id": new_id(), "created_at": iso(db.now())}
    for field in _ALWAYS_EDITABLE:
        row[field] = optional_str(payload.get(field))
    row["amount_cents"] = _cents(payload.get("amount_cents"))
    _assign_frozen(row, payload, initial=True)
    _validate(db, row)
    db.insert("plans", row)
    charges = payload.get("charges") or []
    _require_metrics(db, charges)
    for charge in charges:
        _charges.create(db, row["id"], _charge_payload(charge), generate_code=True)
    return {"plan": serialize(db, require(db, row["code"]))}


def show(call: Call) -> dict[str, Any]:
    """``GET /plans/{code}``."""
    return {"plan": serialize(call.db, require(call.db, call.params[0]))}


def index(call: Call) -> dict[str, Any]:
    """``GET /plans``, newest first."""
    return paginate_live(call, "plans", lambda row: serialize(call.db, row))


def update(call: Call) -> dict[str, Any]:
    """``PUT /plans/{code}``: frozen fields kept silently once subscribed.

    Payload charges are matched by ``id`` only: matched ones are updated,
    the others created, and every charge the payload omits is deleted.
    """
    db = call.db
    current = require(db, call.params[0])
    payload = call.root("plan")
    frozen = has_subscriptions(db, current["id"])
    row = {**current, "pay_in_advance": bool(current["pay_in_advance"])}
    for field in _ALWAYS_EDITABLE:
        if field in payload:
            row[field] = optional_str(payload[field])
    if "amount_cents" in payload:
        row["amount_cents"] = _cents(payload["amount_cents"])
    if not frozen:
        _assign_frozen(row, payload, initial=False)
    _validate(db, row)
    db.update("plans", row["id"], row)
    if "charges" in payload:
        _sync_charges(db, row["id"], payload["charges"], frozen=frozen)
    return {"plan": serialize(db, require(db, row["code"]))}


def destroy(call: Call) -> dict[str, Any]:
    """``DELETE /plans/{code}``: ends its subscriptions, then discards it.

    The answer shows ``pending_deletion: true``, as Lago's does. Lago then
    runs the rest in a background job, so for a while the plan still reads
    back and its code stays taken; the emulator has no job queue and does it
    all before answering, so that in-between state is not reproduced.
    """
    db = call.db
    row = require(db, call.params[0])
    now = iso(db.now())
    db.update("plans", row["id"], {"pending_deletion": 1})
    body = {"plan": serialize(db, require(db, row["code"]))}
    db.run(
        "UPDATE subscriptions SET status = 'terminated', terminated_at = ?"
        " WHERE plan_id = ? AND status = 'active'",
        (now, row["id"]),
    )
    db.run(
        "UPDATE subscriptions SET status = 'canceled', canceled_at = ?"
        " WHERE plan_id = ? AND status = 'pending'",
        (now, row["id"]),
    )
    for charge in _charges.for_plan(db, row["id"]):
        _charges.destroy(db, charge)
    db.update("plans", row["id"], {"deleted_at": now})
    return body


def _assign_frozen(row: Row, payload: dict[str, Any], *, initial: bool) -> None:
    if initial or "code" in payload:
        row["code"] = optional_str(payload.get("code"))
    if initial or "interval" in payload:
        row["interval"] = payload.get("interval")
    if initial or "amount_currency" in payload:
        row["amount_currency"] = payload.get("amount_currency")
    if initial or "pay_in_advance" in payload:
        row["pay_in_advance"] = payload.get("pay_in_advance")
    if initial or "trial_period" in payload:
        row["trial_period"] = payload.get("trial_period")
    # Lago recomputes this from the payload's interval, so send ``interval``:
    # false unless given for a yearly or semiannual plan, null for the others.
    keeps_monthly = payload.get("interval") in ("yearly", "semiannual")
    row["bill_charges_monthly"] = (
        as_bool(payload.get("bill_charges_monthly")) if keeps_monthly else None
    )


def _cents(value: Any) -> Any:
    """``amount_cents`` as Rails casts it into an integer column.

    A number or a numeric string passes money-rails' numericality check and
    is truncated by Ruby's ``to_i`` (``"100"`` is 100, ``1.9`` is 1); anything
    else is returned as is, for validation to refuse.
    """
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else value
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    digits = _LEADING_INTEGER.match(value)
    return int(digits.group()) if digits else 0


def _validate(db: Database, row: Row) -> None:
    problems = _errors.Problems()
    for field in ("name", "code"):
        if not row.get(field):
            problems.add(field, "value_is_mandatory")
    if row.get("interval") not in INTERVALS:
        problems.add("interval", "value_is_invalid")
    amount = row.get("amount_cents")
    if not is_json_int(amount):
        problems.add("amount_cents", "value_is_invalid")
    elif amount < 0:
        problems.add("amount_cents", "value_is_out_of_range")
    if row.get("amount_currency") not in EXPONENTS:
        problems.add("amount_currency", "value_is_invalid")
    if not isinstance(row.get("pay_in_advance"), bool):
        problems.add("pay_in_advance", "value_is_invalid")
    trial = row.get("trial_period")
    if trial is not None and (not isinstance(trial, (int, float)) or trial < 0):
        problems.add("trial_period", "value_is_out_of_range")
    other = find_by_code(db, row["code"]) if row.get("code") else None
    if other is not None and other["id"] != row["id"]:
        problems.add("code", "value_already_exist")
    problems.raise_if_any()


def _charge_payload(charge: Any) -> dict[str, Any]:
    if not isinstance(charge, dict):
        raise _errors.field_error("charges", "value_is_invalid")
    return charge


def _require_metrics(db: Database, charges: Any) -> None:
    """404 ``billable_metrics_not_found`` if any charge names an unknown metric."""
    if not isinstance(charges, list):
        raise _errors.field_error("charges", "value_is_invalid")
    for charge in charges:
        if not isinstance(charge, dict) or "billable_metric_id" not in charge:
            continue
        _charges.require_metric(db, charge, "billable_metrics")


def _sync_charges(db: Database, plan_id: str, charges: Any, *, frozen: bool) -> None:
    _require_metrics(db, charges)
    existing = {row["id"]: row for row in _charges.for_plan(db, plan_id)}
    kept: set[str] = set()
    for charge in charges:
        payload = _charge_payload(charge)
        match = existing.get(str(payload.get("id")))
        if match is not None:
            kept.add(_charges.update(db, match, payload, frozen=frozen)["id"])
            continue
        created = _charges.create(db, plan_id, payload, generate_code=True)
        kept.add(created["id"])
    for charge_id, row in existing.items():
        if charge_id not in kept:
            _charges.destroy(db, row)
