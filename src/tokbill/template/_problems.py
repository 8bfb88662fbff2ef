"""Located problems: every template message names a file, a line and a field.

A message reads ``FILE:LINE: field.path: what is wrong; expected ...``. Field
paths use dots between mapping keys and ``[i]`` for list items, like
``plans[0].charges[0].prices.gpt-4.input``; a key that would not read back
unambiguously (empty, or holding spaces, brackets or quotes) is written as
``["a key"]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol

FieldPath = tuple[str | int, ...]
"""Mapping keys and list indexes from the document root to one value."""

_PLAIN_KEY = re.compile(r"[^\s\[\]\"']+")


def field_path(path: FieldPath) -> str:
    """Render ``path`` for a message: ``("plans", 0, "code")`` -> ``plans[0].code``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{json.dumps(part)}]"
    return text


@dataclass(frozen=True)
class Problem:
    """One located sentence about a template."""

    file: str
    line: int | None
    path: FieldPath
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if not self.path:
            return f"{where}: {self.message}"
        return f"{where}: {field_path(self.path)}: {self.message}"


class Locator(Protocol):
    """Something that can turn a field path into a located :class:`Problem`."""

    def problem(self, path: FieldPath, message: str) -> Problem:
        """A problem about the value at ``path``, at that value's line."""
        ...


@dataclass
class Report:
    """Errors and warnings collected while loading, so all are shown at once."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def error(self, where: Locator, path: FieldPath, message: str) -> None:
        """Record an error about the value at ``path`` of ``where``."""
        self.errors.append(where.problem(path, message))

    def warn(self, where: Locator, path: FieldPath, message: str) -> None:
        """Record a warning about the value at ``path`` of ``where``."""
        self.warnings.append(where.problem(path, message))
