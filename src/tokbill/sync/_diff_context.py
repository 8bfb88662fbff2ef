"""What the metric and plan diffs share: the state compared, and field lines."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

from tokbill.sync._changes import Action, Change, FieldChange
from tokbill.sync._charge_diff import UnitWords, field_text, shown
from tokbill.sync._live import LivePlan, LiveState, SubscriptionCount
from tokbill.template._model import TemplateSet

_NO_SUBSCRIPTIONS = SubscriptionCount(active=0, ever=0)


@dataclass(frozen=True)
class DiffContext:
    """The templates, Lago's state and the options of one comparison."""

    template_set: TemplateSet
    live: LiveState
    allow_destroy: bool
    prune: bool

    @cached_property
    def plan_codes(self) -> frozenset[str]:
        """The codes of the plans the templates manage."""
        return frozenset(p.code for p in self.template_set.plans)

    def outside_plans(self) -> Iterator[LivePlan]:
        """Live plans the templates do not manage and that will remain."""
        if self.prune:
            return iter(())
        return (p for c, p in self.live.plans.items() if c not in self.plan_codes)

    def words(self, metric: str) -> UnitWords:
        """How a unit of ``metric`` is called: from the templates, else Lago."""
        try:
            field_name = self.template_set.metric(metric).field_name
        except KeyError:
            live = self.live.metrics.get(metric)
            if live is None:
                return UnitWords("unit", "units")
            field_name = live.field_name
        return UnitWords.for_field(field_name)

    def subscriptions(self, plan: str) -> SubscriptionCount:
        """The plan's subscriptions; none when they were not counted."""
        return self.live.subscriptions.get(plan, _NO_SUBSCRIPTIONS)

    def active_subscriptions(self, plan: str) -> int | None:
        """The plan's active subscriptions, or None when they were not counted."""
        count = self.live.subscriptions.get(plan)
        return None if count is None else count.active

    def guard_destroy(self, delete: Change, reason: str, remedy: str) -> Change:
        """``delete`` as it is with ``allow_destroy``, else blocked saying why."""
        if self.allow_destroy:
            return delete
        return dataclasses.replace(
            delete, action="blocked", reason=reason, remedy=remedy
        )


def scalar_changes(spec: Any, live: Any, names: tuple[str, ...]) -> list[FieldChange]:
    """One line per attribute in ``names`` that differs between spec and Lago."""
    changes = []
    for name in names:
        old, new = getattr(live, name), getattr(spec, name)
        if name == "trial_period":
            new = Decimal(str(new or 0)).normalize()
        elif new == "":
            new = None  # Lago answers an empty text as it was sent; both mean none
        if old != new:
            text = f"{name}: {shown(old)} -> {shown(new)}"
            changes.append(FieldChange(name, field_text(old), field_text(new), text))
    return changes


def created_fields(spec: Any, names: tuple[str, ...]) -> tuple[FieldChange, ...]:
    """One ``+`` line per attribute in ``names`` that a new object sets.

    An attribute left ``None`` or empty gets no line; ``0`` and ``false`` do.
    """
    return tuple(
        FieldChange(name, None, field_text(value), f"{name}: {shown(value)}")
        for name in names
        if (value := getattr(spec, name)) is not None and value != ""
    )


def action_for(fields: list[FieldChange], reasons: list[str]) -> Action:
    """Blocked when a safety rule gave a reason, else update or unchanged."""
    if reasons:
        return "blocked"
    return "update" if fields else "unchanged"


def joined(sentences: list[str]) -> str | None:
    """The sentences as one text, or None when there are none."""
    return " ".join(sentences) or None
