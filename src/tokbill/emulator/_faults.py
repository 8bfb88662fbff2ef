"""Fault injection: errors, rate limits, latency and commit-then-stall.

Off by default. Settings can be given at start and changed live from any
thread (``Faults.update``) or from another process (``POST /_emulator/faults``).
Every random draw comes from one ``random.Random``, seedable, so a test that
sets ``seed`` sees the same faults on every run for the same request order.

Faults apply only to paths under ``path_prefix`` (``/api/v1`` by default, or
e.g. ``/api/v1/events``). Errors and 429s are answered before the request
touches any state; a stall happens after the request has been committed.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FaultSettings:
    """What to inject; every field's zero value means "never"."""

    error_rate: float = 0.0
    """Share of requests answered with a status drawn from ``error_statuses``."""
    error_statuses: tuple[int, ...] = (500, 502, 503)
    rate_limit_rate: float = 0.0
    """Share of requests answered 429."""
    rate_limit_for_s: float = 0.0
    """Answer every request 429 for this many seconds after the setting is made."""
    rate_limit_limit: int = 50
    """The ``X-RateLimit-Limit`` header value."""
    rate_limit_reset_s: int = 1
    """``X-RateLimit-Reset`` (seconds) for share-based 429s."""
    retry_after: bool = False
    """Also send ``Retry-After`` (seconds), which Lago Cloud does not document."""
    latency_s: float = 0.0
    """Delay added before every request is handled."""
    stall_after_commit_s: float = 0.0
    """How long a stalled request waits after committing, before it answers."""
    stall_rate: float = 0.0
    """Share of requests that stall (needs ``stall_after_commit_s``)."""
    stall_count: int = 0
    """The next N requests stall, then stalls stop (counted down live)."""
    path_prefix: str = "/api/v1"
    """Only requests whose path starts with this are affected."""
    methods: tuple[str, ...] = ()
    """Only requests with one of these methods are affected; empty means all."""
    seed: int | None = None
    """Seed for the random draws; None draws from the OS."""

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        values = dataclasses.asdict(self)
        values["error_statuses"] = list(self.error_statuses)
        values["methods"] = list(self.methods)
        return values


_FIELDS = {item.name for item in dataclasses.fields(FaultSettings)}


@dataclass(frozen=True)
class Decision:
    """What the app must do with one request."""

    latency_s: float = 0.0
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    stall_s: float = 0.0


class Faults:
    """Live, thread-safe fault settings plus the random source they draw from."""

    def __init__(self, **settings: Any) -> None:
        self._lock = threading.Lock()
        self._settings = FaultSettings()
        self._random = random.Random()
        self._limited_until = 0.0
        self.update(**settings)

    @property
    def settings(self) -> FaultSettings:
        """A snapshot of the current settings."""
        with self._lock:
            return self._settings

    def update(self, **changes: Any) -> FaultSettings:
        """Change some settings atomically.

        Unknown names raise ``TypeError``; a share outside [0, 1], a negative
        duration or count, or a value of the wrong kind raises ``ValueError``,
        and then nothing changes.

        Setting ``seed`` reseeds the random source; setting
        ``rate_limit_for_s`` starts that window now.
        """
        changes = _checked(changes)
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)
            if "seed" in changes:
                self._random.seed(self._settings.seed)
            if "rate_limit_for_s" in changes:
                self._limited_until = time.monotonic() + self._settings.rate_limit_for_s
            return self._settings

    def reset(self) -> None:
        """Turn every fault off."""
        with self._lock:
            self._settings = FaultSettings()
            self._limited_until = 0.0

    def decide(self, method: str, path: str) -> Decision:
        """Draw the faults for one ``method`` request to ``path``."""
        with self._lock:
            settings = self._settings
            if not path.startswith(settings.path_prefix):
                return Decision()
            if settings.methods and method.upper() not in settings.methods:
                return Decision()
            status, headers = self._draw_status(settings)
            stall_s = self._draw_stall(settings) if status is None else 0.0
            return Decision(settings.latency_s, status, headers, stall_s)

    def _draw_status(
        self, settings: FaultSettings
    ) -> tuple[int | None, tuple[tuple[str, str], ...]]:
        remaining_s = self._limited_until - time.monotonic()
        if remaining_s > 0:
            return 429, _rate_limit_headers(settings, math.ceil(remaining_s))
        if (
            settings.rate_limit_rate
            and self._random.random() < settings.rate_limit_rate
        ):
            return 429, _rate_limit_headers(settings, settings.rate_limit_reset_s)
        if settings.error_rate and self._random.random() < settings.error_rate:
            return self._random.choice(settings.error_statuses), ()
        return None, ()

    def _draw_stall(self, settings: FaultSettings) -> float:
        if not settings.stall_after_commit_s:
            return 0.0
        if settings.stall_count > 0:
            self._settings = dataclasses.replace(
                settings, stall_count=settings.stall_count - 1
            )
            return settings.stall_after_commit_s
        if settings.stall_rate and self._random.random() < settings.stall_rate:
            return settings.stall_after_commit_s
        return 0.0


_SHARES = ("error_rate", "rate_limit_rate", "stall_rate")
_DURATIONS_S = ("rate_limit_for_s", "latency_s", "stall_after_commit_s")
_COUNTS = ("rate_limit_limit", "rate_limit_reset_s", "stall_count")


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` coerced to the settings' types, or an error naming the field."""
    unknown = set(changes) - _FIELDS
    if unknown:
        names = ", ".join(sorted(unknown))
        raise TypeError(f"Unknown fault settings {names}; use {sorted(_FIELDS)}.")
    checked = dict(changes)
    try:
        for name in set(changes) & {*_SHARES, *_DURATIONS_S}:
            checked[name] = float(changes[name])
        for name in set(changes) & {*_COUNTS}:
            checked[name] = int(changes[name])
        if "error_statuses" in changes:
            checked["error_statuses"] = tuple(int(s) for s in changes["error_statuses"])
        if "methods" in changes:
            checked["methods"] = _methods(changes["methods"])
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"A fault setting has a value of the wrong kind: {error}."
        ) from None
    _check_kinds(checked)
    for name in _SHARES:
        if name in checked and not 0 <= checked[name] <= 1:
            raise ValueError(
                f"{name} must be a share between 0 and 1, not {checked[name]!r}."
            )
    for name in (*_DURATIONS_S, *_COUNTS):
        if name in checked and checked[name] < 0:
            raise ValueError(f"{name} must not be negative, not {checked[name]!r}.")
    if "error_statuses" in checked and not checked["error_statuses"]:
        raise ValueError("error_statuses must name at least one status.")
    return checked


def _check_kinds(checked: dict[str, Any]) -> None:
    """Refuse the settings that are used as given, not coerced, when mistyped.

    A wrong ``path_prefix`` would fail every later request, and a wrong
    ``seed`` would fail after the other settings had changed.
    """
    prefix = checked.get("path_prefix", "")
    if not isinstance(prefix, str):
        raise ValueError(
            f"path_prefix must be a path such as '/api/v1', not {prefix!r}."
        )
    seed = checked.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or null, not {seed!r}.")
    flag = checked.get("retry_after", False)
    if not isinstance(flag, bool):
        raise ValueError(f"retry_after must be true or false, not {flag!r}.")


def _methods(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(m, str) for m in value):
        raise TypeError("methods must be a list of HTTP method names")
    return tuple(method.upper() for method in value)


def _rate_limit_headers(
    settings: FaultSettings, reset_s: int
) -> tuple[tuple[str, str], ...]:
    headers = [
        ("X-RateLimit-Limit", str(settings.rate_limit_limit)),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", str(reset_s)),
    ]
    if settings.retry_after:
        headers.append(("Retry-After", str(reset_s)))
    return tuple(headers)
