"""The emulator's SQLite state: schema, one lock, transactions and row helpers.

Every access goes through one ``threading.RLock`` so the server thread and a
test thread can use the same connection safely. Rows come back as plain dicts;
JSON columns stay encoded here and are decoded by the module that owns them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tokbill._errors import ConfigurationError

Row = dict[str, Any]
Clock = Callable[[], datetime]

# Kept in SQLite's user_version, so a state file written with another schema
# is refused with a sentence instead of answering 500s. Raise it whenever
# _SCHEMA changes; 0 is a file that has no schema yet.
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS billable_metrics (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, code TEXT NOT NULL,
    name TEXT NOT NULL, description TEXT, aggregation_type TEXT NOT NULL,
    field_name TEXT, recurring INTEGER NOT NULL, weighted_interval TEXT,
    rounding_function TEXT, rounding_precision INTEGER, expression TEXT,
    filters TEXT NOT NULL, created_at TEXT NOT NULL, deleted_at TEXT);
CREATE TABLE IF NOT EXISTS plans (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, code TEXT NOT NULL,
    name TEXT NOT NULL, description TEXT, invoice_display_name TEXT,
    interval TEXT NOT NULL, amount_cents INTEGER NOT NULL,
    amount_currency TEXT NOT NULL, pay_in_advance INTEGER NOT NULL,
    trial_period REAL, bill_charges_monthly INTEGER,
    pending_deletion INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, deleted_at TEXT);
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, plan_id TEXT NOT NULL,
    billable_metric_id TEXT NOT NULL, code TEXT NOT NULL,
    charge_model TEXT NOT NULL, pay_in_advance INTEGER NOT NULL,
    invoiceable INTEGER NOT NULL, prorated INTEGER NOT NULL,
    invoice_display_name TEXT, min_amount_cents INTEGER NOT NULL,
    properties TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, deleted_at TEXT);
CREATE TABLE IF NOT EXISTS charge_filters (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, charge_id TEXT NOT NULL,
    position INTEGER NOT NULL, invoice_display_name TEXT,
    properties TEXT NOT NULL, filter_values TEXT NOT NULL,
    created_at TEXT NOT NULL, deleted_at TEXT);
CREATE TABLE IF NOT EXISTS customers (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, external_id TEXT NOT NULL,
    currency TEXT, attributes TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, deleted_at TEXT);
CREATE TABLE IF NOT EXISTS subscriptions (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
    external_id TEXT NOT NULL, customer_id TEXT NOT NULL,
    plan_id TEXT NOT NULL, name TEXT, status TEXT NOT NULL,
    billing_time TEXT NOT NULL, subscription_at TEXT NOT NULL,
    started_at TEXT, ending_at TEXT, terminated_at TEXT, canceled_at TEXT,
    previous_id TEXT, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
    transaction_id TEXT NOT NULL, external_subscription_id TEXT,
    code TEXT, timestamp REAL NOT NULL, timestamp_iso TEXT NOT NULL,
    properties TEXT NOT NULL,
    precise_total_amount_cents TEXT, created_at TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS events_unique_transaction
    ON events (external_subscription_id, transaction_id);
CREATE INDEX IF NOT EXISTS events_window
    ON events (external_subscription_id, timestamp);
CREATE INDEX IF NOT EXISTS events_transaction ON events (transaction_id);
CREATE INDEX IF NOT EXISTS charges_plan ON charges (plan_id);
CREATE INDEX IF NOT EXISTS filters_charge ON charge_filters (charge_id);
"""

TABLES = (
    "events",
    "subscriptions",
    "customers",
    "charge_filters",
    "charges",
    "plans",
    "billable_metrics",
)


def utc_now() -> datetime:
    """The default clock: the current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_id() -> str:
    """A fresh Lago-style ``lago_id``: a random (version 4) UUID string.

    Formatted by hand because ``str(uuid.uuid4())`` was a visible share of
    the batch-ingestion profile.
    """
    digits = os.urandom(16).hex()
    return (
        f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-"
        f"{_VARIANT[digits[16]]}{digits[17:20]}-{digits[20:]}"
    )


def iso(moment: datetime) -> str:
    """Rails' ``iso8601`` for a UTC time: seconds precision and a ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse what :func:`iso` writes (or any ISO 8601 time) as aware UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    columns = cursor.description
    return {column[0]: value for column, value in zip(columns, values, strict=True)}


class Database:
    """One SQLite connection (``:memory:`` or a file) behind one lock.

    ``transaction()`` is all-or-nothing: any exception rolls back every write
    made inside it. Reads outside a transaction still take the lock.
    """

    def __init__(self, path: str | Path | None = None, clock: Clock = utc_now):
        self.lock = threading.RLock()
        self.clock = clock
        self.path = str(path) if path is not None else ":memory:"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = _open(self.path, in_file=path is not None)

    def now(self) -> datetime:
        """The emulator's current time (the injected clock)."""
        return self.clock()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and run the block in one SQLite transaction."""
        with self.lock:
            self._conn.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of ``sql``, or None."""
        with self.lock:
            row: Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row of ``sql``."""
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def by_id(self, table: str, row_id: str) -> Row | None:
        """The row of ``table`` whose ``id`` is ``row_id``, deleted or not."""
        return self.one(f"SELECT * FROM {table} WHERE id = ?", (row_id,))

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of ``sql``, or None."""
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Execute one statement that returns nothing."""
        with self.lock:
            self._conn.execute(sql, params)

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Execute ``sql`` once per row, in the caller's transaction."""
        with self.lock:
            self._conn.executemany(sql, rows)

    def insert(self, table: str, row: Row) -> Row:
        """Insert ``row`` into ``table`` and return it."""
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.run(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", tuple(row.values())
        )
        return row

    def update(self, table: str, row_id: str, changes: Row) -> None:
        """Set ``changes`` on the row of ``table`` whose ``id`` is ``row_id``."""
        if not changes:
            return
        assignments = ", ".join(f"{column} = ?" for column in changes)
        params = (*changes.values(), row_id)
        self.run(f"UPDATE {table} SET {assignments} WHERE id = ?", params)

    def clear(self) -> None:
        """Delete every row of every table (``POST /_emulator/reset``)."""
        with self.transaction():
            for table in TABLES:
                self._conn.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        """Close the connection; later calls fail."""
        with self.lock:
            self._conn.close()


def _open(path: str, *, in_file: bool) -> sqlite3.Connection:
    """Connect to ``path`` and create the schema; ConfigurationError if unusable."""
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.row_factory = _dict_row
        if in_file:
            # WAL with NORMAL sync keeps batch inserts fast and survives a crash
            # of the emulator process, which is all a local test server needs.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        _ensure_schema(conn, path)
    except sqlite3.DatabaseError as error:
        if conn is not None:
            conn.close()
        raise ConfigurationError(
            f"The emulator cannot keep its state in {path}: {error}. "
            "Give it another file, or delete this one to start afresh."
        ) from error
    return conn


def _ensure_schema(conn: sqlite3.Connection, path: str) -> None:
    """Create the schema in a new file; refuse a file of another version."""
    found = conn.execute("PRAGMA user_version").fetchone()["user_version"]
    if found not in (0, SCHEMA_VERSION):
        conn.close()
        raise ConfigurationError(
            f"The emulator's state in {path} has schema version {found}, and "
            f"this tokbill reads version {SCHEMA_VERSION}. Delete the file to "
            "start afresh, or give the emulator another one."
        )
    conn.executescript(_SCHEMA)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
