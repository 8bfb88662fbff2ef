"""Events: single and batch ingestion, get by transaction id, and list.

Lago's Postgres event store rules (lago-api.md §4): Unix-second timestamps
(int, float or numeric string; anything else is ``invalid_format``), a
``transaction_id`` unique per ``external_subscription_id``, batches of at most
100 that are all or nothing, and per-index errors built in two phases (format
first, duplicates only when the format is clean). Events with an unknown code
or subscription are accepted, as Lago accepts them.

A batch is validated in Python and inserted with one ``executemany`` inside
one transaction; that is the emulator's hot path.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from tokbill.emulator import _errors
from tokbill.emulator._common import (
    Call,
    dumps,
    loads,
    paginate,
    require_found,
    scalar,
)
from tokbill.emulator._store import Database, Row, iso, new_id, parse_iso

MAX_BATCH = 100

_INSERT = (
    "INSERT INTO events (id, transaction_id, external_subscription_id, code,"
    " timestamp, timestamp_iso, properties, precise_total_amount_cents,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Column order of ``_INSERT``; a stored event is a tuple in this order.
_COLUMNS = (
    "id",
    "transaction_id",
    "external_subscription_id",
    "code",
    "timestamp",
    "timestamp_iso",
    "properties",
    "precise_total_amount_cents",
    "created_at",
)
_TRANSACTION_ID = _COLUMNS.index("transaction_id")
_SUBSCRIPTION_ID = _COLUMNS.index("external_subscription_id")


def parse_timestamp(value: Any, now_s: float) -> Decimal | None:
    """Seconds since the epoch as Lago's ``BigDecimal(timestamp.to_s)``.

    None for anything else: ISO strings, booleans, objects, NaN, and values
    past the years the platform can render (Lago would accept those and never
    bill them).
    """
    if value is None:
        return Decimal(repr(now_s))
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = Decimal(str(value).strip())
        if seconds.is_finite():
            iso_ms(seconds)
            return seconds
    except (InvalidOperation, OverflowError, ValueError, OSError):
        pass
    return None


def iso_ms(seconds: Decimal) -> str:
    """Rails' ``iso8601(3)``: milliseconds, truncated, and a ``Z``.

    Raises ``OverflowError`` or ``ValueError`` beyond the platform's years.
    """
    whole = int(seconds.to_integral_value(rounding=ROUND_FLOOR))
    millis = int((seconds - whole) * 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{millis:03d}Z"


class _Timestamps:
    """Parses a batch's timestamps once per distinct value (clients reuse them)."""

    def __init__(self, now_s: float) -> None:
        self._now_s = now_s
        self._seen: dict[Any, tuple[float, str] | None] = {}

    def resolve(self, value: Any) -> tuple[float, str] | None:
        """``(seconds, iso8601 ms)`` for a payload timestamp, None if invalid."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None if value is not None else self._parse(None)
        if value not in self._seen:
            self._seen[value] = self._parse(value)
        return self._seen[value]

    def _parse(self, value: Any) -> tuple[float, str] | None:
        seconds = parse_timestamp(value, self._now_s)
        return None if seconds is None else (float(seconds), iso_ms(seconds))


_Built = tuple[tuple[Any, ...], dict[str, Any]]


def _build(
    payload: Any, timestamps: _Timestamps, created_at: str
) -> _Built | dict[str, Any]:
    """The row to insert and the properties of one event, or its field errors."""
    if not isinstance(payload, dict):
        return {"event": ["value_is_invalid"]}
    errors: dict[str, list[str]] = {}
    transaction_id = scalar(payload, "transaction_id")
    if transaction_id is None or str(transaction_id).strip() == "":
        errors["transaction_id"] = ["value_is_mandatory"]
    code = scalar(payload, "code")
    if code is None or str(code).strip() == "":
        errors["code"] = ["value_is_mandatory"]
    stamp = scalar(payload, "timestamp")
    # Lago tests the timestamp's truth in Ruby: false, like nil, means now.
    moment = timestamps.resolve(None if stamp is False else stamp)
    if moment is None:
        errors["timestamp"] = ["invalid_format"]
    if errors or moment is None:
        return errors
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    subscription = scalar(payload, "external_subscription_id")
    amount = scalar(payload, "precise_total_amount_cents")
    row = (
        new_id(),
        str(transaction_id),
        None if subscription is None else str(subscription),
        str(code),
        *moment,
        dumps(properties),
        None if amount is None else str(amount),
        created_at,
    )
    return row, properties


def serialize(row: Row) -> dict[str, Any]:
    """The event as Lago's ``EventSerializer`` renders it."""
    properties = row["properties"]
    return {
        "lago_id": row["id"],
        "transaction_id": row["transaction_id"],
        "lago_customer_id": None,
        "code": row["code"],
        "timestamp": row["timestamp_iso"],
        "precise_total_amount_cents": row["precise_total_amount_cents"],
        "properties": loads(properties) if isinstance(properties, str) else properties,
        "lago_subscription_id": None,
        "external_subscription_id": row["external_subscription_id"],
        "created_at": row["created_at"],
    }


def create(call: Call) -> dict[str, Any]:
    """``POST /events``: one event; a duplicate is 422 ``value_already_exist``."""
    payload = call.root("event")
    now = call.db.now()
    built = _build(payload, _Timestamps(now.timestamp()), iso(now))
    if isinstance(built, dict):
        raise _errors.invalid(built)
    if _stored_duplicates(call.db, [built[0]]):
        raise _errors.field_error("transaction_id", "value_already_exist")
    call.db.run(_INSERT, built[0])
    return {"event": _serialize_built(built)}


def _serialize_built(built: _Built) -> dict[str, Any]:
    row, properties = built
    return serialize(
        {**dict(zip(_COLUMNS, row, strict=True)), "properties": properties}
    )


def create_batch(call: Call) -> dict[str, Any]:
    """``POST /events/batch``: all or nothing, errors keyed by event index."""
    payloads = call.body.get("events") if isinstance(call.body, dict) else None
    if not isinstance(payloads, list) or not payloads:
        raise _errors.field_error("events", "no_events")
    if len(payloads) > MAX_BATCH:
        raise _errors.field_error("events", "too_many_events")
    now = call.db.now()
    timestamps, created_at = _Timestamps(now.timestamp()), iso(now)
    events: list[_Built] = []
    errors: dict[str, Any] = {}
    for index, payload in enumerate(payloads):
        built = _build(payload, timestamps, created_at)
        if isinstance(built, dict):
            errors[str(index)] = built
        else:
            events.append(built)
    if errors:
        raise _errors.invalid(errors)
    rows = [row for row, _ in events]
    duplicates = _duplicate_indices(call.db, rows)
    if duplicates:
        taken = {"transaction_id": ["value_already_exist"]}
        raise _errors.invalid({str(index): taken for index in duplicates})
    call.db.run_many(_INSERT, rows)
    return {"events": [_serialize_built(built) for built in events]}


def _duplicate_indices(db: Database, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """The batch indices Lago reports as ``transaction_id: value_already_exist``.

    Lago bulk-inserts the batch, skipping rows whose (subscription,
    transaction id) is taken, then hands each inserted row back to the first
    event with its transaction id, matched on the id alone
    (``create_batch_service.rb#bulk_insert_events``). So a stored key fails
    its index, a repeat fails from its second occurrence, and so does the same
    id sent for two subscriptions in one batch, although across batches that
    is two events.
    """
    stored = _stored_duplicates(db, rows)
    inserted: set[str] = set()
    taken: set[tuple[str, str]] = set()
    for row in rows:
        key = _unique_key(row)
        subscription_id, transaction_id = key
        # NULL subscription ids never collide, as in Lago's unique index.
        if subscription_id is None or not (key in stored or key in taken):
            inserted.add(transaction_id)
        if subscription_id is not None:
            taken.add(key)
    indices = []
    for index, row in enumerate(rows):
        transaction_id = row[_TRANSACTION_ID]
        if transaction_id in inserted:
            inserted.discard(transaction_id)
        else:
            indices.append(index)
    return indices


def _unique_key(row: tuple[Any, ...]) -> tuple[Any, Any]:
    """The (subscription, transaction id) pair Lago's unique index covers."""
    return row[_SUBSCRIPTION_ID], row[_TRANSACTION_ID]


def _stored_duplicates(
    db: Database, rows: Sequence[tuple[Any, ...]]
) -> set[tuple[str, str]]:
    keys = {key for key in map(_unique_key, rows) if key[0] is not None}
    if not keys:
        return set()
    marks = ", ".join("?" for _ in keys)
    found = db.all(
        "SELECT external_subscription_id, transaction_id FROM events"
        f" WHERE transaction_id IN ({marks})",
        [transaction_id for _, transaction_id in keys],
    )
    stored = {(row["external_subscription_id"], row["transaction_id"]) for row in found}
    return stored & keys


def show(call: Call) -> dict[str, Any]:
    """``GET /events/{transaction_id}``: the first event stored with that id."""
    row = call.db.one(
        "SELECT * FROM events WHERE transaction_id = ? ORDER BY seq LIMIT 1",
        (call.params[0],),
    )
    return {"event": serialize(require_found(row, "event"))}


def index(call: Call) -> dict[str, Any]:
    """``GET /events`` filtered by subscription, code and timestamp range."""
    where, params = _list_filters(call)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = call.db.scalar(f"SELECT COUNT(*) FROM events {clause}", params)

    def fetch(limit: int, offset: int) -> list[dict[str, Any]]:
        rows = call.db.all(
            f"SELECT * FROM events {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [serialize(row) for row in rows]

    return paginate(call, "events", total, fetch)


def _list_filters(call: Call) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for field in ("external_subscription_id", "code"):
        value = call.query.get(field)
        if value:
            where.append(f"{field} = ?")
            params.append(value)
    for field, operator in (("timestamp_from", ">="), ("timestamp_to", "<=")):
        value = call.query.get(field)
        if value:
            where.append(f"timestamp {operator} ?")
            params.append(_epoch(value, field))
    return where, params


def _epoch(text: str, field: str) -> float:
    try:
        return parse_iso(text).timestamp()
    except ValueError:
        raise _errors.field_error(field, "invalid_date") from None


def window(
    db: Database, external_subscription_id: str, start: datetime, end: datetime
) -> list[Row]:
    """Events of a subscription with ``start <= timestamp < end``, oldest first."""
    rows = db.all(
        "SELECT code, timestamp, properties FROM events"
        " WHERE external_subscription_id = ? AND timestamp >= ? AND timestamp < ?"
        " ORDER BY timestamp, seq",
        (
            external_subscription_id,
            start.astimezone(timezone.utc).timestamp(),
            end.astimezone(timezone.utc).timestamp(),
        ),
    )
    for row in rows:
        row["properties"] = loads(row["properties"])
    return rows
