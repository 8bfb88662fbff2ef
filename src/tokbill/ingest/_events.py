"""What ``record`` checks and how it names events: shape, ids, arguments.

Everything here runs on the caller's thread inside ``record``; the common
case of each check is inlined there, and these functions word the errors.
"""

from __future__ import annotations

import math
import operator
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from typing import Any

__all__ = [
    "EventShape",
    "IdSource",
    "check_id",
    "check_properties",
    "check_tokens",
    "event_time",
]

TOKEN_TYPES = ("input", "output", "cache_read", "cache_write")

_MILLISECONDS_FLOOR = 1e11
"""A Unix time in seconds above this is in the year 5138: it must be in ms."""


@dataclass(frozen=True)
class EventShape:
    """Where the metric wants the token count, the model and the type.

    ``known_models`` / ``known_types`` are the values the metric's filters
    declare; None means any value is priced.
    """

    code: str
    field_name: str = "tokens"
    model_key: str = "model"
    type_key: str = "type"
    known_models: frozenset[str] | None = None
    known_types: frozenset[str] | None = field(default=None)

    def __post_init__(self) -> None:
        keys = (self.field_name, self.model_key, self.type_key)
        if not all(isinstance(key, str) and key for key in (self.code, *keys)):
            raise ValueError(
                "The metric code, field name, model key and type key must be "
                f"non-empty strings; got {(self.code, *keys)!r}."
            )
        if len(set(keys)) != len(keys):
            raise ValueError(
                f"The field name and the model and type keys must differ; got {keys!r}."
            )

    @property
    def reserved_keys(self) -> frozenset[str]:
        """The property names the meter sets itself."""
        return frozenset((self.field_name, self.model_key, self.type_key))


class IdSource:
    """Transaction ids for calls without a request id.

    A random 96-bit prefix per process (renewed in a forked child) plus a
    counter: unique without the cost of a uuid4 per event.
    """

    def __init__(self) -> None:
        self._prefix = "tb-" + secrets.token_hex(12)
        self._counter = count()

    def next_id(self) -> str:
        """A fresh id; ``itertools.count`` keeps it unique across threads."""
        return f"{self._prefix}-{next(self._counter):x}"


def check_properties(
    properties: Mapping[str, Any], reserved: frozenset[str]
) -> dict[str, Any]:
    """The caller's properties, checked, to add to every event of a call.

    Raises:
        TypeError: ``properties`` is not a mapping, a key is not a string or a
            value not a string or number.
        ValueError: a key is one of ``reserved`` (the model, type or token
            field), or a number is not finite.
    """
    if not isinstance(properties, Mapping):
        raise TypeError(
            "properties must be a mapping of names to strings or numbers; "
            f"got {properties!r}."
        )
    for key, value in properties.items():
        if not isinstance(key, str):
            raise TypeError(f"Property names must be strings; got {key!r}.")
        if key in reserved:
            raise ValueError(
                f"The property {key!r} is set by the meter; pick another name."
            )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(
                f"Property {key!r} must be a string or a number (Lago stores "
                f"nothing else); got {value!r}."
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"Property {key!r} must be finite; got {value!r}.")
    return dict(properties)


def check_tokens(name: str, value: object) -> int:
    """``value`` as a non-negative int, else TypeError/ValueError naming it."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer; got {value!r}.")
    try:
        tokens = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer; got {value!r}.") from None
    if tokens < 0:
        raise ValueError(f"{name} must not be negative; got {tokens!r}.")
    return tokens


def check_id(name: str, value: object) -> str:
    """``value`` if it is a non-empty string, else TypeError/ValueError."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string; got {value!r}.")
    if not value:
        raise ValueError(f"{name} must not be empty.")
    return value


def event_time(timestamp: float | datetime, now: float) -> float:
    """Unix seconds (with a fraction) for an event, fixed at record time.

    Raises:
        ValueError: a naive datetime, a non-finite or negative number, or one
            so large it can only be milliseconds.
        TypeError: anything but a number or a datetime.
    """
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError(
                "timestamp must be timezone-aware, e.g. datetime.now(timezone.utc)."
            )
        return timestamp.timestamp()
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        raise TypeError(
            f"timestamp must be Unix seconds or a datetime; got {timestamp!r}."
        )
    seconds = float(timestamp)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"timestamp must be finite and positive; got {timestamp!r}.")
    if seconds > _MILLISECONDS_FLOOR:
        raise ValueError(
            f"timestamp {timestamp!r} looks like milliseconds; Lago expects "
            f"seconds, e.g. {seconds / 1000!r} (now is about {now:.0f})."
        )
    return seconds
