"""Billable metric changes: definition fields, filter values and pruning.

Two safety rules of ``_diff`` apply here: Lago keeps a metric's definition
once a plan uses it, and removing a filter value makes Lago rewrite the
charge filters of every plan that prices it (see ``_filter_removal``).
"""

from __future__ import annotations

from tokbill.sync._changes import Change, FieldChange
from tokbill.sync._diff_context import (
    DiffContext,
    action_for,
    created_fields,
    joined,
    scalar_changes,
)
from tokbill.sync._filter_removal import removal_block
from tokbill.sync._live import LiveMetric
from tokbill.template._model import MetricSpec

FROZEN_METRIC_FIELDS = (
    "aggregation_type",
    "field_name",
    "recurring",
    "rounding_function",
    "rounding_precision",
    "expression",
)
"""Metric fields Lago silently keeps once a plan uses the metric.

Templates cannot set rounding or an expression, but both change the units
billed, so one set in Lago (by its UI, say) shows as a change to undo.
"""

_SHOWN_ON_CREATE = ("name", "description", *FROZEN_METRIC_FIELDS)


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
    reasons, remedies = _definition_kept(context, spec, fields)
    removal = removal_block(context, spec.code, live.filters, spec.filters)
    if removal is not None:
        reasons.append(removal[0])
        remedies.append(removal[1])
    fields += _filter_value_changes(spec, live)
    return Change(
        "billable_metric",
        spec.code,
        action_for(fields, reasons),
        tuple(fields),
        reason=joined(reasons),
        remedy=joined(remedies),
        desired=spec,
        live=live,
    )


def _metric_create(spec: MetricSpec) -> Change:
    """A new metric, listing what it is created with: fields, then filters."""
    fields = created_fields(spec, _SHOWN_ON_CREATE)
    fields += tuple(
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


def _filter_value_changes(spec: MetricSpec, live: LiveMetric) -> list[FieldChange]:
    """One line per filter value added (``+``) or removed (``-``), by key."""
    lines = []
    for key in sorted(set(spec.filters) | set(live.filters)):
        wanted = set(spec.filters.get(key, ()))
        present = set(live.filters.get(key, ()))
        lines += [_value_line(key, None, v) for v in sorted(wanted - present)]
        lines += [_value_line(key, v, None) for v in sorted(present - wanted)]
    return lines


def _value_line(key: str, before: str | None, after: str | None) -> FieldChange:
    value = before or after
    return FieldChange(f"filters.{key}", before, after, f"filters.{key}: {value}")


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
