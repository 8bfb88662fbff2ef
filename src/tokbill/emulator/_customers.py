"""Customers: upsert by ``external_id``, show, list and delete.

Source: lago-api ``app/services/customers/upsert_from_api_service.rb``
(lago-api.md §6.1). The emulator keeps the plain contact fields; billing
configuration, integrations and metadata are not emulated.
"""

from __future__ import annotations

from typing import Any

from tokbill.emulator import _errors
from tokbill.emulator._common import (
    Call,
    dumps,
    loads,
    paginate_live,
    require_found,
    scalar,
)
from tokbill.emulator._store import Database, Row, iso, new_id

_ATTRIBUTES = (
    "name",
    "firstname",
    "lastname",
    "email",
    "legal_name",
    "legal_number",
    "phone",
    "url",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zipcode",
    "country",
    "timezone",
    "tax_identification_number",
)


def find(db: Database, external_id: str) -> Row | None:
    """The live customer with ``external_id``."""
    return db.one(
        "SELECT * FROM customers WHERE external_id = ? AND deleted_at IS NULL",
        (external_id,),
    )


def require(db: Database, external_id: str) -> Row:
    """The live customer, or 404 ``customer_not_found``."""
    return require_found(find(db, external_id), "customer")


def find_or_create(db: Database, external_id: str) -> Row:
    """The customer with ``external_id``, created bare when missing."""
    return find(db, external_id) or _insert(db, external_id, {}, None)


def _insert(
    db: Database, external_id: str, attributes: dict[str, Any], currency: Any
) -> Row:
    now = iso(db.now())
    return db.insert(
        "customers",
        {
            "id": new_id(),
            "external_id": external_id,
            "currency": currency,
            "attributes": dumps(attributes),
            "created_at": now,
            "updated_at": now,
        },
    )


def serialize(db: Database, row: Row) -> dict[str, Any]:
    """The customer as Lago renders it (the fields the emulator keeps)."""
    attributes = loads(row["attributes"])
    sequential_id = db.scalar(
        "SELECT COUNT(*) FROM customers WHERE seq <= ?", (row["seq"],)
    )
    body = {
        "lago_id": row["id"],
        "sequential_id": sequential_id,
        "slug": f"EMU-{sequential_id:04d}",
        "external_id": row["external_id"],
        "currency": row["currency"],
        "applicable_timezone": attributes.get("timezone") or "UTC",
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    body.update({field: attributes.get(field) for field in _ATTRIBUTES})
    return body


def upsert(call: Call) -> dict[str, Any]:
    """``POST /customers``: create, or update the one with that ``external_id``."""
    db = call.db
    payload = call.root("customer")
    external_id = scalar(payload, "external_id")
    if not external_id:
        raise _errors.field_error("external_id", "value_is_mandatory")
    # Strong parameters drop an object or array sent where a scalar belongs.
    given = {
        key: value
        for key, value in payload.items()
        if key in _ATTRIBUTES and not isinstance(value, (dict, list))
    }
    row = find(db, str(external_id))
    if row is None:
        row = _insert(db, str(external_id), given, payload.get("currency"))
    else:
        attributes = {**loads(row["attributes"]), **given}
        changes = {"attributes": dumps(attributes), "updated_at": iso(db.now())}
        if payload.get("currency"):
            changes["currency"] = payload["currency"]
        db.update("customers", row["id"], changes)
    # Read back: a fresh row has no seq yet, which numbers the customer.
    stored = require_found(db.by_id("customers", row["id"]), "customer")
    return {"customer": serialize(db, stored)}


def show(call: Call) -> dict[str, Any]:
    """``GET /customers/{external_id}``."""
    return {"customer": serialize(call.db, require(call.db, call.params[0]))}


def index(call: Call) -> dict[str, Any]:
    """``GET /customers``, newest first."""
    return paginate_live(call, "customers", lambda row: serialize(call.db, row))


def destroy(call: Call) -> dict[str, Any]:
    """``DELETE /customers/{external_id}``: terminates its subscriptions too."""
    db = call.db
    row = require(db, call.params[0])
    body = {"customer": serialize(db, row)}
    now = iso(db.now())
    db.run(
        "UPDATE subscriptions SET status = 'terminated', terminated_at = ?"
        " WHERE customer_id = ? AND status = 'active'",
        (now, row["id"]),
    )
    db.update("customers", row["id"], {"deleted_at": now})
    return body
