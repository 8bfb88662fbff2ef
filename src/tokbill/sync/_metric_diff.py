"""Billable metric changes: definition fields, filter values and pruning.

Two safety rules of ``_diff`` live here: Lago keeps a metric's definition
once a plan uses it, and removing a filter value makes Lago trim the filters
of every plan that prices it, whether the templates manage that plan or not.
"""

from __future__ import annotations

import dataclasses

from tokbill.sync._changes import Change, FieldChange
from tokbill.sync._diff_context import (
    DiffContext,
    action_for,
    joined,
    scalar_changes,
)
from tokbill.sync._live import LiveMetric
from tokbill.template._model import MetricSpec

FROZEN_METRIC_FIELDS = ("aggregation_type", "field_name", "recurring")
"""Metric fields Lago silently keeps once a plan uses the metric."""


def metric_changes(context: DiffContext) -> list[Change]:
    """One change per template metric, then, with ``prune``, the deletions."""
    changes = [_metric_change(context, spec) for spec in context.template_set.metrics]
    if context.prune:
        changes += _pruned_metrics(context)
    return changes


def _metric_change(context: DiffContext, spec: MetricSpec) -> Change:
    live = context.live.metrics.get(spec.code)
    if live is None:
        return _metric_create(spec)
    fields = scalar_changes(spec, live, ("name", "description", *FROZEN_METRIC_FIELDS))
    filters = _FilterDiff(context, spec, live)
    kept_reasons, kept_remedies = _definition_kept(context, spec, fields)
    reasons = filters.reasons + kept_reasons
    remedies = filters.remedies + kept_remedies
    fields += filters.fields
    return Change(
        "billable_metric",
        spec.code,
        action_for(fields, reasons),
        tuple(fields),
        reason=joined(reasons),
        remedy=joined(remedies),
        notes=tuple(filters.notes),
        desired=dataclasses.replace(spec, filters=filters.target),
        live=live,
    )


def _metric_create(spec: MetricSpec) -> Change:
    fields = tuple(
        FieldChange(
            f"filters.{key}",
            None,
            ", ".join(values),
            f"filters.{key}: {', '.join(values)}",
        )
        for key, values in sorted(spec.filters.items())
    )
    return Change("billable_metric", spec.code, "create", fields, desired=spec)


def _definition_kept(
    context: DiffContext, spec: MetricSpec, fields: list[FieldChange]
) -> tuple[list[str], list[str]]:
    """Reasons and remedies when a used metric's definition would change."""
    frozen = [f.field for f in fields if f.field in FROZEN_METRIC_FIELDS]
    users = sorted(
        p.code for p in context.live.plans.values() if p.uses_metric(spec.code)
    )
    if not (frozen and users):
        return [], []
    reason = (
        f"Lago keeps {', '.join(frozen)} of metric {spec.code} unchanged once a "
        f"plan uses it (used by {', '.join(users)}), and still answers 200."
    )
    remedy = (
        f"Declare the new definition as a metric with a new code (such as "
        f"{spec.code}_v2), price it in a new plan code, and migrate the "
        "subscriptions to that plan."
    )
    return [reason], [remedy]


class _FilterDiff:
    """Added and removed filter values of one metric, with the safety rule.

    ``fields`` has one line per value added or removed; ``target`` is the
    filters to send, which keep any value only plans outside the templates
    price (each such value gets a line in ``notes``). ``reasons`` and
    ``remedies`` are non-empty when a removal is blocked.
    """

    def __init__(self, context: DiffContext, spec: MetricSpec, live: LiveMetric):
        self.fields: list[FieldChange] = []
        self.notes: list[str] = []
        self.reasons: list[str] = []
        self.remedies: list[str] = []
        target = {key: set(values) for key, values in spec.filters.items()}
        for key in sorted(set(spec.filters) | set(live.filters)):
            wanted, present = spec.filters.get(key, ()), live.filters.get(key, ())
            for value in sorted(set(wanted) - set(present)):
                self._line(key, None, value)
            for value in sorted(set(present) - set(wanted)):
                if self._keeps(context, spec.code, key, value):
                    target.setdefault(key, set()).add(value)
                else:
                    self._line(key, value, None)
        self.target = {k: tuple(sorted(v)) for k, v in sorted(target.items()) if v}

    def _line(self, key: str, before: str | None, after: str | None) -> None:
        value = before or after
        self.fields.append(
            FieldChange(f"filters.{key}", before, after, f"filters.{key}: {value}")
        )

    def _keeps(self, context: DiffContext, metric: str, key: str, value: str) -> bool:
        outside = sorted(
            p.code
            for p in context.outside_plans()
            if p.prices_value(metric, key, value)
        )
        if not outside:
            return False
        managed = [context.live.plans.get(p.code) for p in context.template_set.plans]
        if not any(p and p.prices_value(metric, key, value) for p in managed):
            self.notes.append(
                f"{key}={value} stays: plan {', '.join(outside)} (not in these "
                "templates) prices it."
            )
            return True
        if not context.allow_destroy:
            self._block(metric, key, value, outside)
        return False

    def _block(self, metric: str, key: str, value: str, outside: list[str]) -> None:
        plans = ", ".join(outside)
        self.reasons.append(
            f"Removing {key}={value} from metric {metric} makes Lago trim the "
            f"filters of plan {plans}, which still prices it and is not in these "
            "templates: its events would be billed at a broader or default price."
        )
        self.remedies.append(
            f"Remove those prices from plan {plans} first (or add it to the "
            "templates), or rerun with --allow-destroy to let Lago trim them."
        )


def _pruned_metrics(context: DiffContext) -> list[Change]:
    wanted = {m.code for m in context.template_set.metrics}
    return [
        context.guard_destroy(
            Change("billable_metric", code, "delete", live=live),
            reason=f"Metric {code} is not in the templates and --prune deletes "
            "it: Lago then deletes every charge on it, in every plan.",
            remedy=f"Add metric {code} to the templates, leave out --prune, or "
            "rerun with --allow-destroy to delete it.",
        )
        for code, live in sorted(context.live.metrics.items())
        if code not in wanted
    ]
