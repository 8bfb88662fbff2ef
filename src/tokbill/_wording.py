"""Counts written as a person reads them, shared by every user-facing message."""

from __future__ import annotations

__all__ = ["counted"]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 charge``, ``1,200 lines``: a count, grouped, and its noun's number."""
    if count == 1:
        return f"1 {noun}"
    return f"{count:,} {plural or noun + 's'}"
