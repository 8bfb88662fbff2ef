"""Read access to the emulator's state for tests, as plain dicts."""

from __future__ import annotations

from typing import Any

from tokbill.emulator import _customers, _events, _metrics, _plans, _subscriptions
from tokbill.emulator._store import Database


class Store:
    """What the emulator stored, rendered as the API would render it.

    Safe to call from any thread while the server runs: every read takes the
    store lock, so it sees only committed requests. Deleted (discarded) rows
    are left out, as the API leaves them out.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def events(
        self, external_subscription_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored events in arrival order, optionally of one subscription."""
        with self._db.lock:
            if external_subscription_id is None:
                rows = self._db.all("SELECT * FROM events ORDER BY seq")
            else:
                rows = self._db.all(
                    "SELECT * FROM events WHERE external_subscription_id = ?"
                    " ORDER BY seq",
                    (external_subscription_id,),
                )
            return [_events.serialize(row) for row in rows]

    def event_count(self) -> int:
        """How many events are stored, without rendering them."""
        return int(self._db.scalar("SELECT COUNT(*) FROM events"))

    def metrics(self) -> list[dict[str, Any]]:
        """Live billable metrics, oldest first."""
        rows = self._db.all(
            "SELECT * FROM billable_metrics WHERE deleted_at IS NULL ORDER BY seq"
        )
        return [_metrics.serialize(row) for row in rows]

    def plans(self) -> list[dict[str, Any]]:
        """Live plans with their charges and filters, oldest first."""
        with self._db.lock:
            rows = self._db.all(
                "SELECT * FROM plans WHERE deleted_at IS NULL ORDER BY seq"
            )
            return [_plans.serialize(self._db, row) for row in rows]

    def customers(self) -> list[dict[str, Any]]:
        """Live customers, oldest first."""
        with self._db.lock:
            rows = self._db.all(
                "SELECT * FROM customers WHERE deleted_at IS NULL ORDER BY seq"
            )
            return [_customers.serialize(self._db, row) for row in rows]

    def subscriptions(self, status: str | None = None) -> list[dict[str, Any]]:
        """Subscriptions of every status (or only ``status``), oldest first."""
        with self._db.lock:
            rows = self._db.all("SELECT * FROM subscriptions ORDER BY seq")
            rendered = [_subscriptions.serialize(self._db, row) for row in rows]
        return [item for item in rendered if status in (None, item["status"])]

    def reset(self) -> None:
        """Delete everything stored."""
        self._db.clear()
