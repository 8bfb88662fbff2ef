"""What every handler receives, and helpers shared by the resource modules."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from starlette.datastructures import QueryParams

from tokbill.emulator import _errors
from tokbill.emulator._store import Database, Row

DEFAULT_PER_PAGE = 100
# SQLite's largest integer: a bigger LIMIT or OFFSET cannot even be bound.
_SQL_INT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Call:
    """One API request as a handler sees it: path captures, query, JSON body."""

    db: Database
    params: tuple[str, ...]
    query: QueryParams
    body: Any

    def root(self, key: str) -> dict[str, Any]:
        """The object under the root ``key``; 400 as Rails when it is missing."""
        value = self.body.get(key) if isinstance(self.body, dict) else None
        if not isinstance(value, dict) or not value:
            raise _errors.bad_request(key)
        return value

    def page(self) -> tuple[int, int]:
        """``(page, per_page)`` from the query; Lago enforces no maximum."""
        return (
            _positive_int(self.query.get("page"), 1),
            _positive_int(self.query.get("per_page"), DEFAULT_PER_PAGE),
        )


def _positive_int(text: str | None, default: int) -> int:
    """A positive query integer, capped where SQLite can still bind it."""
    try:
        value = int(text) if text is not None else default
    except ValueError:
        return default
    return min(value, _SQL_INT_MAX) if value > 0 else default


def paginate_live(
    call: Call, table: str, render: Callable[[Row], dict[str, Any]]
) -> dict[str, Any]:
    """The live (not deleted) rows of ``table``, newest first, under ``table``.

    Lago lists metrics, plans and customers this way; the root key of the
    list body is the table's name.
    """
    live = f"FROM {table} WHERE deleted_at IS NULL"
    total = call.db.scalar(f"SELECT COUNT(*) {live}")

    def fetch(limit: int, offset: int) -> list[dict[str, Any]]:
        rows = call.db.all(
            f"SELECT * {live} ORDER BY seq DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        return [render(row) for row in rows]

    return paginate(call, table, total, fetch)


def paginate(
    call: Call,
    root: str,
    total: int,
    fetch: Callable[[int, int], Sequence[dict[str, Any]]],
) -> dict[str, Any]:
    """A list body ``{root: [...], "meta": {...}}``; ``fetch(limit, offset)``."""
    page, per_page = call.page()
    offset = (page - 1) * per_page
    items = fetch(per_page, offset) if offset < total else []
    total_pages = math.ceil(total / per_page)
    meta = {
        "current_page": page if total else 0,
        "next_page": page + 1 if page < total_pages else None,
        "prev_page": page - 1 if page > 1 else None,
        "total_pages": total_pages,
        "total_count": total,
    }
    return {root: list(items), "meta": meta}


# One encoder for every call: json.dumps with ``separators`` builds a new one
# each time, which showed in the batch-ingestion profile.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON, for JSON columns and response bodies."""
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """Decode a JSON column."""
    return json.loads(text)


def as_bool(value: Any, default: bool = False) -> bool:
    """Rails' boolean cast of a JSON value; None keeps ``default``."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "t", "yes", "on"}
    return bool(value)


def is_json_int(value: Any) -> TypeGuard[int]:
    """A JSON integer: an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def scalar(payload: dict[str, Any], key: str) -> Any:
    """``payload[key]`` as Rails' strong parameters permit a scalar key.

    ``permit(:key)`` drops an object or array sent where a scalar belongs,
    so Lago sees such a field as missing; None stands for missing here.
    """
    value = payload.get(key)
    return None if isinstance(value, (dict, list)) else value


def optional_str(value: Any) -> str | None:
    """A string attribute as Rails would store it; None stays None."""
    return None if value is None else str(value)


def require_found(row: Row | None, resource: str) -> Row:
    """``row``, or 404 ``<resource>_not_found`` when it is None."""
    if row is None:
        raise _errors.not_found(resource)
    return row
