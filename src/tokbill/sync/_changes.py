"""The result of comparing templates with Lago: a list of classified changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tokbill.sync._live import LiveState
from tokbill.template._model import TemplateSet

Action = Literal["create", "update", "unchanged", "blocked", "delete"]
ResourceKind = Literal["billable_metric", "plan", "charge"]

ACTIONS: tuple[Action, ...] = ("create", "update", "delete", "blocked", "unchanged")
FORMAT_VERSION = 1
"""Version of the ``--json`` plan document; bumped on incompatible changes."""


@dataclass(frozen=True)
class FieldChange:
    """One difference inside a resource, with the line a person reads.

    ``before`` is ``None`` for something added, ``after`` for something
    removed. ``filter`` names the charge filter a price belongs to (``None``
    for charge-level fields and the default bucket).
    """

    field: str
    before: str | None
    after: str | None
    text: str
    filter: Mapping[str, tuple[str, ...]] | None = None

    @property
    def sign(self) -> str:
        """``+`` for an addition, ``-`` for a removal, ``~`` for a change."""
        if self.before is None:
            return "+"
        return "-" if self.after is None else "~"

    def to_dict(self) -> dict[str, Any]:
        """This difference as part of the JSON plan document."""
        return {
            "field": self.field,
            "filter": None
            if self.filter is None
            else {key: list(values) for key, values in self.filter.items()},
            "before": self.before,
            "after": self.after,
            "text": self.text,
        }


@dataclass(frozen=True)
class Change:
    """What must happen to one metric, plan or charge.

    A ``blocked`` change carries the ``reason`` (the safety rule) and the
    ``remedy`` (what to do instead); nothing is written while any change is
    blocked. ``plan`` is the owning plan's code for a charge. ``desired``
    and ``live`` are the template spec and the Lago object the writes are
    built from; they take no part in equality or the JSON document.
    """

    kind: ResourceKind
    code: str
    action: Action
    fields: tuple[FieldChange, ...] = ()
    plan: str | None = None
    reason: str | None = None
    remedy: str | None = None
    active_subscriptions: int | None = None
    desired: Any = field(default=None, compare=False, repr=False)
    live: Any = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        """``plan gpt4``, ``charge llm_tokens of plan gpt4``: for messages."""
        if self.kind == "charge":
            return f"charge {self.code} of plan {self.plan}"
        return f"{self.kind.replace('_', ' ')} {self.code}"

    def to_dict(self) -> dict[str, Any]:
        """This change as part of the JSON plan document."""
        return {
            "kind": self.kind,
            "code": self.code,
            "plan": self.plan,
            "action": self.action,
            "fields": [change.to_dict() for change in self.fields],
            "reason": self.reason,
            "remedy": self.remedy,
            "active_subscriptions": self.active_subscriptions,
        }


@dataclass(frozen=True)
class Plan:
    """Every change needed to make Lago match a template set, in order.

    Metrics come first, then each plan followed by its charges. ``live`` is
    the state the plan was computed from; :func:`tokbill.sync.apply_plan`
    takes ids from it and re-reads Lago afterwards to verify.
    """

    changes: tuple[Change, ...]
    template_set: TemplateSet = field(compare=False, repr=False)
    live: LiveState = field(compare=False, repr=False)
    allow_destroy: bool = False
    prune: bool = False

    @property
    def blocked(self) -> tuple[Change, ...]:
        """The changes a safety rule stops."""
        return tuple(c for c in self.changes if c.action == "blocked")

    @property
    def pending(self) -> tuple[Change, ...]:
        """The changes that need writes: creates, updates and deletes."""
        return tuple(
            c for c in self.changes if c.action in ("create", "update", "delete")
        )

    @property
    def has_changes(self) -> bool:
        """Whether anything differs, blocked changes included."""
        return any(c.action != "unchanged" for c in self.changes)

    def summary(self) -> dict[str, int]:
        """How many changes of each action, every action present."""
        counts: dict[str, int] = dict.fromkeys(ACTIONS, 0)
        for change in self.changes:
            counts[change.action] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON document ``plan --json`` prints."""
        return {
            "format_version": FORMAT_VERSION,
            "templates": list(self.template_set.paths),
            "allow_destroy": self.allow_destroy,
            "prune": self.prune,
            "changes": [change.to_dict() for change in self.changes],
            "summary": self.summary(),
        }
