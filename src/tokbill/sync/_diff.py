"""Compare templates with Lago and classify every change; no I/O.

The safety rules are applied here (metrics in ``_metric_diff``, plans and
charges in ``_plan_diff``), so ``plan`` shows exactly what ``apply`` refuses:

- deleting a charge, or (with ``prune``) a plan or a metric, is blocked
  unless ``allow_destroy``;
- removing a metric filter value is blocked unless ``allow_destroy`` when a
  plan outside the templates still prices it: Lago would trim, broaden or
  delete that plan's charge filters and re-price its events. Plans in the
  templates cannot price a value their metric drops (validation refuses it),
  and apply removes their old prices before the value. Templates that share
  a metric therefore declare it identically (as the shipped GPT-4 and GPT-3.5
  ones do), so applying one never removes the other's values;
- changing a field Lago silently keeps on a live object is always blocked:
  metric definition fields once a plan uses the metric, plan interval,
  currency, advance billing and trial once the plan ever had a subscription,
  a charge's model, metric and advance billing likewise.
"""

from __future__ import annotations

import logging

from tokbill.sync._changes import Change, Plan
from tokbill.sync._diff_context import DiffContext
from tokbill.sync._live import LiveState
from tokbill.sync._metric_diff import metric_changes
from tokbill.sync._plan_diff import plan_changes
from tokbill.template._model import TemplateSet

logger = logging.getLogger(__name__)


def make_plan(
    template_set: TemplateSet,
    live: LiveState,
    *,
    allow_destroy: bool = False,
    prune: bool = False,
) -> Plan:
    """Every change that makes ``live`` match ``template_set``, classified.

    Pure: reads nothing and writes nothing. A plan absent from
    ``live.subscriptions`` is taken to have no subscriptions;
    :func:`tokbill.sync.read_state` counts them for every plan with changes.
    """
    changes = compute_changes(
        template_set, live, allow_destroy=allow_destroy, prune=prune
    )
    plan = Plan(tuple(changes), template_set, live, allow_destroy, prune)
    logger.info(
        "Computed the plan for %s: %s.",
        ", ".join(template_set.paths) or "the templates",
        ", ".join(f"{n} {action}" for action, n in plan.summary().items()),
    )
    return plan


def compute_changes(
    template_set: TemplateSet, live: LiveState, *, allow_destroy: bool, prune: bool
) -> list[Change]:
    """The changes: metrics first, then each plan followed by its charges."""
    context = DiffContext(template_set, live, allow_destroy, prune)
    return metric_changes(context) + plan_changes(context)
