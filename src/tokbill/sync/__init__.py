"""Reconcile Lago with pricing templates: read, plan, apply, export.

    live = read_state(client, template_set)          # reads only
    plan = make_plan(template_set, live)             # pure
    print(render_plan(plan))
    apply_plan(client, plan)                         # writes, then verifies

Identity is by code; Lago ids are looked up at run time, so one template
serves every organisation. Nothing is written when nothing differs, and each
write carries only what changed (see ``_apply`` for the order and ``_diff``
for the safety rules).
"""

from __future__ import annotations

from tokbill.sync._apply import ApplyError, ApplyResult, Write, apply_plan
from tokbill.sync._changes import FORMAT_VERSION, Action, Change, FieldChange, Plan
from tokbill.sync._diff import make_plan
from tokbill.sync._export import ExportError, export_state, render_template
from tokbill.sync._live import LiveState, SubscriptionCount
from tokbill.sync._read import read_state
from tokbill.sync._render import render_plan, summary_line

__all__ = [
    "FORMAT_VERSION",
    "Action",
    "ApplyError",
    "ApplyResult",
    "Change",
    "ExportError",
    "FieldChange",
    "LiveState",
    "Plan",
    "SubscriptionCount",
    "Write",
    "apply_plan",
    "export_state",
    "make_plan",
    "read_state",
    "render_plan",
    "render_template",
    "summary_line",
]
