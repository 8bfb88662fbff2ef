"""Plans and apply results as text for a person.

Every line carries its meaning in a prefix (``+`` create, ``~`` update, ``-``
delete, ``!`` blocked, ``=`` unchanged), so colour is never the only signal;
colour comes from the ``style`` callable the caller passes (the CLI's honours
``NO_COLOR``), and the default adds none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import groupby
from typing import Any

from tokbill._wording import counted
from tokbill.sync._changes import ACTIONS, Action, Change, Plan

Style = Callable[..., str]

PREFIXES: dict[Action, str] = {
    "create": "+",
    "update": "~",
    "delete": "-",
    "blocked": "!",
    "unchanged": "=",
}
_COLOURS: dict[Action, dict[str, Any]] = {
    "create": {"fg": "green"},
    "update": {"fg": "yellow"},
    "delete": {"fg": "red"},
    "blocked": {"fg": "red", "bold": True},
    "unchanged": {"dim": True},
}
_SIGN_COLOURS = {"+": "green", "~": "yellow", "-": "red"}


def _plain(text: str, **_styles: Any) -> str:
    return text


def render_plan(plan: Plan, style: Style = _plain) -> str:
    """The plan grouped by resource, then a one-line summary."""
    lines: list[str] = []
    for title, changes in _groups(plan):
        lines.append(style(title, bold=True))
        for change in changes:
            lines += _change_lines(change, style)
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines)


def summary_line(plan: Plan) -> str:
    """``Plan: 1 to create, 2 to update, 0 to delete, 0 blocked, 3 unchanged.``"""
    counts = plan.summary()
    words = {
        "create": "to create",
        "update": "to update",
        "delete": "to delete",
        "blocked": "blocked",
        "unchanged": "unchanged",
    }
    parts = ", ".join(f"{counts[action]} {words[action]}" for action in ACTIONS)
    return f"Plan: {parts}."


def _groups(plan: Plan) -> Iterator[tuple[str, list[Change]]]:
    def group_key(change: Change) -> str:
        if change.kind == "billable_metric":
            return "Billable metrics"
        return f"Plan {change.plan or change.code}"

    for title, changes in groupby(plan.changes, key=group_key):
        group = list(changes)
        head = group[0]
        if head.kind == "plan" and head.active_subscriptions is not None:
            count = head.active_subscriptions
            title += f" ({counted(count, 'active subscription')})"
        elif head.kind == "plan" and head.action == "create":
            title += " (new)"
        yield title, group


def _change_lines(change: Change, style: Style) -> list[str]:
    prefix = PREFIXES[change.action]
    name = change.code if change.kind != "charge" else f"charge {change.code}"
    if change.kind == "plan":
        # A plan the templates declare changes its fields; one they do not
        # (pruned) goes as a whole.
        name = "plan fields" if change.desired is not None else "whole plan"
    head = f"  {prefix} {name} ({change.action})"
    lines = [style(head, **_COLOURS[change.action])]
    for field in change.fields:
        line = f"      {field.sign} {field.text}"
        lines.append(style(line, fg=_SIGN_COLOURS[field.sign]))
    if change.reason:
        lines.append(style(f"      reason: {change.reason}", fg="red"))
    if change.remedy:
        lines.append(f"      remedy: {change.remedy}")
    return lines
