"""Keep the Lago API key out of reprs, logs, errors and output.

Every component that holds a key stores it in :class:`ApiKey`, whose ``str``
and ``repr`` are masked; only :meth:`ApiKey.reveal` returns the key, and the
one caller of that builds the ``Authorization`` header.
"""

from __future__ import annotations

import logging
import re

from tokbill._errors import ConfigurationError

__all__ = ["ApiKey", "RedactingFilter", "mask"]

_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
_HEADER_SAFE = re.compile(r"[\x21-\x7e]*")
"""Visible ASCII: what a key may hold to travel in an HTTP header."""


def mask(key: str) -> str:
    """Show at most the last four characters of a key: ``'…3f9a'``."""
    if len(key) <= 8:
        return "…" if key else ""
    return f"…{key[-4:]}"


class ApiKey:
    """An API key that never prints itself.

    Whitespace around the key (a newline read from a file, a pasted space) is
    dropped. A key with any other character that an HTTP header cannot carry
    is refused here, because httpx would otherwise fail each request with an
    error that quotes the whole header, key included.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not _HEADER_SAFE.fullmatch(value):
            raise ConfigurationError(
                f"The Lago API key ({len(value)} characters, not shown) contains "
                "a space, a control character or a non-ASCII character, which "
                "no Lago key has and an HTTP header cannot carry; copy the key "
                "again from Lago's developer settings."
            )
        self._value = value

    def reveal(self) -> str:
        """The key itself, for the Authorization header and nothing else."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return f"ApiKey({mask(self._value)!r})"

    __str__ = __repr__


class RedactingFilter(logging.Filter):
    """Rewrite ``Bearer <key>`` in log records as ``Bearer ***``.

    tokbill never logs the header itself; this guards against httpx or user
    code logging request headers on a logger tokbill's CLI configures.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "earer" in message:
            record.msg = _BEARER.sub(r"\1***", message)
            record.args = None
        return True
