"""Compare templates with Lago and classify every change; no I/O.

The safety rules live here, so ``plan`` shows exactly what ``apply`` refuses:

- deleting a charge, or (with ``prune``) a plan or a metric, is blocked
  unless ``allow_destroy``;
- removing a metric filter value is blocked unless ``allow_destroy`` when the
  templates stop pricing it while a plan outside them still prices it (Lago
  would trim that plan's filters and re-price its events). A value that only
  plans outside the templates price, and the templates never priced, belongs
  to those plans: it is kept and noted, so templates sharing a metric (GPT-4
  and GPT-3.5, say) can be applied in any order;
- changing a field Lago silently keeps on a live object is always blocked:
  metric definition fields once a plan uses the metric, plan interval,
  currency, advance billing and trial once the plan ever had a subscription,
  a charge's model, metric and advance billing likewise.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokbill.sync._changes import Action, Change, FieldChange, Plan
from tokbill.sync._charge_diff import (
    FROZEN_CHARGE_FIELDS,
    UnitWords,
    charge_field_changes,
    describe_charge,
)
from tokbill.sync._live import (
    LiveMetric,
    LivePlan,
    LiveState,
    SubscriptionCount,
    charge_state,
)
from tokbill.template._model import (
    ChargeSpec,
    MetricSpec,
    PlanSpec,
    TemplateSet,
    money_string,
)

logger = logging.getLogger(__name__)

FROZEN_METRIC_FIELDS = ("aggregation_type", "field_name", "recurring")
FROZEN_PLAN_FIELDS = ("interval", "pay_in_advance", "amount_currency", "trial_period")
_PLAN_FIELDS = ("name", "description", "invoice_display_name", "amount_cents")
_NO_SUBSCRIPTIONS = SubscriptionCount(active=0, ever=0)


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
    context = _Context(template_set, live, allow_destroy, prune)
    changes = [_metric_change(context, spec) for spec in template_set.metrics]
    if prune:
        changes += _pruned_metrics(context)
    for spec in template_set.plans:
        changes += _plan_changes(context, spec)
    if prune:
        changes += _pruned_plans(context)
    return changes


@dataclass(frozen=True)
class _Context:
    template_set: TemplateSet
    live: LiveState
    allow_destroy: bool
    prune: bool

    @property
    def plan_codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.template_set.plans)

    def outside_plans(self) -> Iterator[LivePlan]:
        """Live plans the templates do not manage and that will remain."""
        if self.prune:
            return iter(())
        return (p for c, p in self.live.plans.items() if c not in self.plan_codes)

    def words(self, metric: str) -> UnitWords:
        try:
            return UnitWords.for_field(self.template_set.metric(metric).field_name)
        except KeyError:
            live = self.live.metrics.get(metric)
        if live is None:
            return UnitWords("unit", "units")
        return UnitWords.for_field(live.field_name)

    def subscriptions(self, plan: str) -> SubscriptionCount:
        return self.live.subscriptions.get(plan, _NO_SUBSCRIPTIONS)

    def active_subscriptions(self, plan: str) -> int | None:
        count = self.live.subscriptions.get(plan)
        return None if count is None else count.active

    def destroy(self) -> Action:
        return "delete" if self.allow_destroy else "blocked"


# Metrics


def _metric_change(context: _Context, spec: MetricSpec) -> Change:
    live = context.live.metrics.get(spec.code)
    if live is None:
        fields = [
            FieldChange(
                f"filters.{key}",
                None,
                ", ".join(values),
                f"filters.{key}: {', '.join(values)}",
            )
            for key, values in sorted(spec.filters.items())
        ]
        return Change(
            "billable_metric", spec.code, "create", tuple(fields), desired=spec
        )
    fields = _scalar_changes(spec, live, ("name", "description", *FROZEN_METRIC_FIELDS))
    filters = _FilterDiff(context, spec, live)
    reasons, remedies = filters.reasons, filters.remedies
    frozen = [f.field for f in fields if f.field in FROZEN_METRIC_FIELDS]
    users = sorted(
        p.code for p in context.live.plans.values() if p.uses_metric(spec.code)
    )
    if frozen and users:
        reasons.append(
            f"Lago keeps {', '.join(frozen)} of metric {spec.code} unchanged once a "
            f"plan uses it (used by {', '.join(users)}), and still answers 200."
        )
        remedies.append(
            f"Declare the new definition as a metric with a new code (such as "
            f"{spec.code}_v2), price it in a new plan code, and migrate the "
            "subscriptions to that plan."
        )
    fields += filters.fields
    target = dataclasses.replace(spec, filters=filters.target)
    return Change(
        "billable_metric",
        spec.code,
        _action(fields, reasons),
        tuple(fields),
        reason=_join(reasons),
        remedy=_join(remedies),
        notes=tuple(filters.notes),
        desired=target,
        live=live,
    )


class _FilterDiff:
    """Added and removed filter values of one metric, with the safety rule."""

    def __init__(self, context: _Context, spec: MetricSpec, live: LiveMetric):
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

    def _keeps(self, context: _Context, metric: str, key: str, value: str) -> bool:
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


def _scalar_changes(spec: Any, live: Any, names: tuple[str, ...]) -> list[FieldChange]:
    changes = []
    for name in names:
        old, new = getattr(live, name), getattr(spec, name)
        if name == "trial_period":
            new = Decimal(str(new or 0)).normalize()
        elif new == "":
            new = None  # Lago answers an empty text as it was sent; both mean none
        if old != new:
            text = f"{name}: {_show(old)} -> {_show(new)}"
            changes.append(FieldChange(name, _str(old), _str(new), text))
    return changes


# Plans and charges


def _plan_changes(context: _Context, spec: PlanSpec) -> list[Change]:
    live = context.live.plans.get(spec.code)
    if live is None:
        return _plan_create(context, spec)
    fields = _scalar_changes(spec, live, (*_PLAN_FIELDS, *FROZEN_PLAN_FIELDS))
    subscriptions = context.subscriptions(spec.code)
    reasons, remedies = [], []
    frozen = [f.field for f in fields if f.field in FROZEN_PLAN_FIELDS]
    if frozen and subscriptions.ever:
        reasons.append(
            _frozen_reason(
                f"{', '.join(frozen)} of plan {spec.code}", spec.code, subscriptions
            )
        )
        remedies.append(_new_plan_remedy(spec.code))
    plan_change = Change(
        "plan",
        spec.code,
        _action(fields, reasons),
        tuple(fields),
        reason=_join(reasons),
        remedy=_join(remedies),
        active_subscriptions=context.active_subscriptions(spec.code),
        desired=spec,
        live=live,
    )
    charges = [_charge_change(context, spec, live, c) for c in spec.charges]
    wanted = {c.code for c in spec.charges}
    charges += [
        _charge_delete(context, spec.code, live, code)
        for code in sorted(set(live.charges) - wanted)
    ]
    return [plan_change, *charges]


def _plan_create(context: _Context, spec: PlanSpec) -> list[Change]:
    fields = tuple(
        FieldChange(name, None, _str(value), f"{name}: {_show(value)}")
        for name in (
            "name",
            "interval",
            "amount_cents",
            "amount_currency",
            "pay_in_advance",
        )
        if (value := getattr(spec, name)) is not None
    )
    if spec.code in context.live.pending_deletion:
        return [
            Change(
                "plan",
                spec.code,
                "blocked",
                fields,
                reason=f"Plan code {spec.code} is still held by a plan Lago is "
                "deleting, so creating it would fail.",
                remedy="Wait until Lago has finished deleting the old plan, then "
                "rerun, or use another plan code.",
                desired=spec,
            )
        ]
    charges = [
        Change(
            "charge",
            c.code,
            "create",
            tuple(_describe(context, c)),
            plan=spec.code,
            desired=c,
        )
        for c in spec.charges
    ]
    return [Change("plan", spec.code, "create", fields, desired=spec), *charges]


def _describe(context: _Context, spec: ChargeSpec) -> list[FieldChange]:
    return describe_charge(
        charge_state(spec),
        price_by=spec.price_by,
        words=context.words(spec.billable_metric),
        added=True,
    )


def _charge_change(
    context: _Context, plan: PlanSpec, live_plan: LivePlan, spec: ChargeSpec
) -> Change:
    live = live_plan.charges.get(spec.code)
    if live is None:
        return Change(
            "charge",
            spec.code,
            "create",
            tuple(_describe(context, spec)),
            plan=plan.code,
            desired=spec,
        )
    fields = charge_field_changes(
        live.state,
        charge_state(spec),
        price_by=spec.price_by,
        words=context.words(spec.billable_metric),
    )
    subscriptions = context.subscriptions(plan.code)
    reasons, remedies = [], []
    frozen = [f.field for f in fields if f.field in FROZEN_CHARGE_FIELDS]
    if frozen and subscriptions.ever:
        what = f"{', '.join(frozen)} of charge {spec.code}"
        reasons.append(_frozen_reason(what, plan.code, subscriptions))
        remedies.append(_new_plan_remedy(plan.code))
    return Change(
        "charge",
        spec.code,
        _action(fields, reasons),
        tuple(fields),
        plan=plan.code,
        reason=_join(reasons),
        remedy=_join(remedies),
        desired=spec,
        live=live,
    )


def _charge_delete(context: _Context, plan: str, live: LivePlan, code: str) -> Change:
    charge = live.charges[code]
    fields = describe_charge(
        charge.state,
        price_by=(),
        words=context.words(charge.state.billable_metric),
        added=False,
    )
    action = context.destroy()
    return Change(
        "charge",
        code,
        action,
        tuple(fields),
        plan=plan,
        reason=None
        if action == "delete"
        else (
            f"Charge {code} of plan {plan} is in Lago but not in the template; "
            "deleting it stops billing that usage on every subscription."
        ),
        remedy=None
        if action == "delete"
        else (
            "Add the charge back to the template to keep it, or rerun with "
            "--allow-destroy to delete it."
        ),
        live=charge,
    )


# Pruning


def _pruned_plans(context: _Context) -> list[Change]:
    changes = []
    for code, live in sorted(context.live.plans.items()):
        if code in context.plan_codes:
            continue
        action = context.destroy()
        count = context.subscriptions(code)
        changes.append(
            Change(
                "plan",
                code,
                action,
                plan=None,
                reason=None
                if action == "delete"
                else (
                    f"Plan {code} is not in the templates and --prune deletes it: Lago "
                    f"then terminates its {count.active} active subscription(s), "
                    "billing them now, and holds the code until the deletion ends."
                ),
                remedy=None
                if action == "delete"
                else (
                    f"Add plan {code} to the templates, leave out --prune, or rerun "
                    "with --allow-destroy to delete it."
                ),
                active_subscriptions=context.active_subscriptions(code),
                live=live,
            )
        )
    return changes


def _pruned_metrics(context: _Context) -> list[Change]:
    wanted = {m.code for m in context.template_set.metrics}
    changes = []
    for code, live in sorted(context.live.metrics.items()):
        if code in wanted:
            continue
        action = context.destroy()
        changes.append(
            Change(
                "billable_metric",
                code,
                action,
                reason=None
                if action == "delete"
                else (
                    f"Metric {code} is not in the templates and --prune deletes it: "
                    "Lago then deletes every charge on it, in every plan."
                ),
                remedy=None
                if action == "delete"
                else (
                    f"Add metric {code} to the templates, leave out --prune, or "
                    "rerun with --allow-destroy to delete it."
                ),
                live=live,
            )
        )
    return changes


# Wording


def _frozen_reason(what: str, plan: str, count: SubscriptionCount) -> str:
    return (
        f"Lago keeps {what} unchanged once the plan has had a subscription "
        f"({plan} has {count.active} active, {count.ever} in all), and still "
        "answers 200."
    )


def _new_plan_remedy(plan: str) -> str:
    return (
        f"Declare the new terms as a plan with a new code (such as {plan}_v2), "
        f"apply it, migrate the subscriptions of {plan} to it, then retire {plan}."
    )


def _action(fields: list[FieldChange], reasons: list[str]) -> Action:
    if reasons:
        return "blocked"
    return "update" if fields else "unchanged"


def _join(sentences: list[str]) -> str | None:
    return " ".join(sentences) or None


def _show(value: object) -> str:
    if isinstance(value, bool | Decimal):
        return _str(value) or ""
    return repr(value) if isinstance(value, str) or value is None else str(value)


def _str(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, Decimal):
        return money_string(value)
    return str(value).lower() if isinstance(value, bool) else str(value)
