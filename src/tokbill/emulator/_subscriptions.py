"""Subscriptions: create (with the customer), show, list and terminate.

Source: lago-api ``app/services/subscriptions/create_service.rb`` and
``app/models/subscription.rb`` (lago-api.md §6.2). Lago moves subscriptions
between states with clock jobs; the emulator does the same transitions lazily,
whenever a request reads subscriptions (pending ones start once their
``subscription_at`` has passed, a scheduled downgrade replaces its predecessor
at the period end, and ``ending_at`` terminates).

Changing plan compares the plans' amounts per year like Lago: an upgrade
takes effect at once, a downgrade at the end of the current period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tokbill.emulator import _customers, _errors, _periods, _plans
from tokbill.emulator._common import (
    Call,
    optional_str,
    paginate,
    require_found,
    scalar,
)
from tokbill.emulator._store import Database, Row, iso, new_id, parse_iso

BILLING_TIMES = ("calendar", "anniversary")
_PER_YEAR = {"weekly": 52, "monthly": 12, "quarterly": 4, "semiannual": 2, "yearly": 1}


def refresh_statuses(db: Database) -> None:
    """Apply the state changes whose time has come (Lago's clock jobs)."""
    now = iso(db.now())
    due = db.all(
        "SELECT * FROM subscriptions WHERE status = 'pending' AND subscription_at <= ?",
        (now,),
    )
    for row in due:
        if row["previous_id"]:
            db.update(
                "subscriptions",
                row["previous_id"],
                {"status": "terminated", "terminated_at": row["subscription_at"]},
            )
        changes = {"status": "active", "started_at": row["subscription_at"]}
        db.update("subscriptions", row["id"], changes)
    db.run(
        "UPDATE subscriptions SET status = 'terminated', terminated_at = ending_at"
        " WHERE status = 'active' AND ending_at IS NOT NULL AND ending_at <= ?",
        (now,),
    )


def find(db: Database, external_id: str, status: str = "active") -> Row | None:
    """The newest subscription with ``external_id`` in ``status``."""
    return db.one(
        "SELECT * FROM subscriptions WHERE external_id = ? AND status = ?"
        " ORDER BY seq DESC LIMIT 1",
        (external_id, status),
    )


def period_of(db: Database, row: Row, plan: Row) -> _periods.Period:
    """The current billing period of an active subscription."""
    anchor = parse_iso(row["started_at"] or row["subscription_at"])
    return _periods.current_period(
        plan["interval"], row["billing_time"], anchor, db.now()
    )


def serialize(db: Database, row: Row) -> dict[str, Any]:
    """The subscription as Lago's ``SubscriptionSerializer`` renders it."""
    plan = _plan_of(db, row["plan_id"])
    customer = db.by_id("customers", row["customer_id"])
    return {
        "lago_id": row["id"],
        "external_id": row["external_id"],
        "lago_customer_id": row["customer_id"],
        "external_customer_id": customer["external_id"] if customer else None,
        "name": row["name"],
        "plan_code": plan["code"],
        "plan_amount_cents": plan["amount_cents"],
        "plan_amount_currency": plan["amount_currency"],
        "status": row["status"],
        "billing_time": row["billing_time"],
        "subscription_at": row["subscription_at"],
        "started_at": row["started_at"],
        "trial_ended_at": None,
        "ending_at": row["ending_at"],
        "terminated_at": row["terminated_at"],
        "canceled_at": row["canceled_at"],
        "created_at": row["created_at"],
        **_plan_change_fields(db, row),
        **_period_fields(db, row, plan),
        "on_termination_credit_note": None,
        "on_termination_invoice": "generate",
    }


def _plan_change_fields(db: Database, row: Row) -> dict[str, Any]:
    previous = db.one(
        "SELECT plan_id FROM subscriptions WHERE id = ?", (row["previous_id"],)
    )
    successor = db.one(
        "SELECT plan_id, subscription_at FROM subscriptions"
        " WHERE previous_id = ? AND status = 'pending'",
        (row["id"],),
    )
    return {
        "previous_plan_code": _plan_of(db, previous["plan_id"])["code"]
        if previous
        else None,
        "next_plan_code": _plan_of(db, successor["plan_id"])["code"]
        if successor
        else None,
        "downgrade_plan_date": successor["subscription_at"][:10] if successor else None,
    }


def _period_fields(db: Database, row: Row, plan: Row) -> dict[str, Any]:
    started = ending = None
    if row["status"] == "active":
        period = period_of(db, row, plan)
        started, ending = iso(period.start), iso(period.last_second)
    return {
        "current_billing_period_started_at": started,
        "current_billing_period_ending_at": ending,
    }


def _plan_of(db: Database, plan_id: str) -> Row:
    return require_found(db.by_id("plans", plan_id), "plan")


def create(call: Call) -> dict[str, Any]:
    """``POST /subscriptions``: idempotent for the same plan, else a plan change."""
    db = call.db
    refresh_statuses(db)
    payload = call.root("subscription")
    external_id, customer_id = _required_ids(payload)
    plan = _plans.require(db, str(scalar(payload, "plan_code") or ""))
    billing_time = payload.get("billing_time") or "calendar"
    if billing_time not in BILLING_TIMES:
        raise _errors.field_error("billing_time", "value_is_invalid")
    start = _subscription_at(payload.get("subscription_at"), db.now())
    # Stored as iso() writes it, so refresh_statuses can compare it as text.
    payload = {**payload, "ending_at": _ending_at(payload, start, db.now())}
    customer = _customers.find_or_create(db, customer_id)
    current = find(db, external_id) or find(db, external_id, "pending")
    if current is not None:
        if current["customer_id"] != customer["id"]:
            raise _errors.field_error("external_id", "value_already_exist")
        if current["plan_id"] == plan["id"]:
            return {"subscription": serialize(db, current)}
        row = _change_plan(db, current, plan, payload)
    else:
        row = _insert(db, customer, plan, payload, billing_time, start)
    if not customer["currency"]:
        db.update("customers", customer["id"], {"currency": plan["amount_currency"]})
    return {"subscription": serialize(db, _reload(db, row))}


def _required_ids(payload: dict[str, Any]) -> tuple[str, str]:
    problems = _errors.Problems()
    for field in ("external_id", "external_customer_id"):
        if not scalar(payload, field):
            problems.add(field, "value_is_mandatory")
    problems.raise_if_any()
    return str(payload["external_id"]), str(payload["external_customer_id"])


def _subscription_at(value: Any, now: datetime) -> datetime:
    if value is None:
        return now
    try:
        return parse_iso(str(value))
    except ValueError:
        raise _errors.field_error("subscription_at", "invalid_date") from None


def _ending_at(payload: dict[str, Any], start: datetime, now: datetime) -> str | None:
    """``ending_at`` in ISO 8601, or 422 ``invalid_date`` as Lago validates it.

    Lago wants an ISO 8601 time whose date is after both today and the
    subscription's start date (``Subscriptions::ValidateService``).
    """
    value = scalar(payload, "ending_at")
    if value is None or value == "":
        return None
    try:
        ending = parse_iso(str(value))
    except ValueError:
        raise _errors.field_error("ending_at", "invalid_date") from None
    if ending.date() <= now.date() or ending.date() <= start.date():
        raise _errors.field_error("ending_at", "invalid_date")
    return iso(ending)


def _insert(
    db: Database,
    customer: Row,
    plan: Row,
    payload: dict[str, Any],
    billing_time: str,
    start: datetime,
    previous_id: str | None = None,
) -> Row:
    active = start <= db.now() and previous_id is None
    return db.insert(
        "subscriptions",
        {
            "id": new_id(),
            "external_id": str(payload["external_id"]),
            "customer_id": customer["id"],
            "plan_id": plan["id"],
            "name": optional_str(payload.get("name")),
            "status": "active" if active else "pending",
            "billing_time": billing_time,
            "subscription_at": iso(start),
            "started_at": iso(start) if active else None,
            "ending_at": payload.get("ending_at"),
            "previous_id": previous_id,
            "created_at": iso(db.now()),
        },
    )


def _change_plan(db: Database, current: Row, plan: Row, payload: dict[str, Any]) -> Row:
    customer = require_found(db.by_id("customers", current["customer_id"]), "customer")
    old_plan = _plan_of(db, current["plan_id"])
    billing_time = current["billing_time"]
    if current["status"] == "pending" or _yearly(plan) >= _yearly(old_plan):
        db.update(
            "subscriptions",
            current["id"],
            {"status": "terminated", "terminated_at": iso(db.now())},
        )
        return _insert(db, customer, plan, payload, billing_time, db.now())
    period_end = period_of(db, current, old_plan).end
    return _insert(
        db, customer, plan, payload, billing_time, period_end, previous_id=current["id"]
    )


def _yearly(plan: Row) -> int:
    return int(plan["amount_cents"]) * _PER_YEAR.get(plan["interval"], 12)


def show(call: Call) -> dict[str, Any]:
    """``GET /subscriptions/{external_id}``; ``?status=`` defaults to active."""
    db = call.db
    refresh_statuses(db)
    status = call.query.get("status") or "active"
    row = require_found(find(db, call.params[0], status), "subscription")
    return {"subscription": serialize(db, row)}


def index(call: Call) -> dict[str, Any]:
    """``GET /subscriptions?external_customer_id&plan_code&status[]``."""
    db = call.db
    refresh_statuses(db)
    statuses = call.query.getlist("status[]") or ["active"]
    where = [f"s.status IN ({', '.join('?' for _ in statuses)})"]
    params: list[Any] = list(statuses)
    if call.query.get("external_customer_id"):
        where.append("c.external_id = ?")
        params.append(call.query.get("external_customer_id"))
    if call.query.get("plan_code"):
        where.append("p.code = ?")
        params.append(call.query.get("plan_code"))
    base = (
        "FROM subscriptions s JOIN customers c ON c.id = s.customer_id"
        " JOIN plans p ON p.id = s.plan_id WHERE " + " AND ".join(where)
    )
    total = db.scalar(f"SELECT COUNT(*) {base}", params)

    def fetch(limit: int, offset: int) -> list[dict[str, Any]]:
        rows = db.all(
            f"SELECT s.* {base} ORDER BY s.seq DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [serialize(db, row) for row in rows]

    return paginate(call, "subscriptions", total, fetch)


def terminate(call: Call) -> dict[str, Any]:
    """``DELETE /subscriptions/{external_id}``; ``?status=pending`` cancels."""
    db = call.db
    refresh_statuses(db)
    status = call.query.get("status") or "active"
    row = require_found(find(db, call.params[0], status), "subscription")
    now = iso(db.now())
    if status == "pending":
        db.update(
            "subscriptions", row["id"], {"status": "canceled", "canceled_at": now}
        )
    else:
        db.update(
            "subscriptions", row["id"], {"status": "terminated", "terminated_at": now}
        )
    return {"subscription": serialize(db, _reload(db, row))}


def _reload(db: Database, row: Row) -> Row:
    return require_found(db.by_id("subscriptions", row["id"]), "subscription")
