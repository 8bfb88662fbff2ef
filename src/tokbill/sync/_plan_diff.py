"""Plan and charge changes: plan fields, prices, deletions and pruning.

The safety rules of ``_diff`` for plans live here: Lago silently keeps a
plan's :data:`FROZEN_PLAN_FIELDS` and its charges' ``FROZEN_CHARGE_FIELDS``
once the plan has had a subscription, a deleted charge stops billing on every
subscription, and a plan code stays taken while Lago deletes the old plan.
"""

from __future__ import annotations

from tokbill._wording import counted
from tokbill.sync._changes import Change, FieldChange
from tokbill.sync._charge_diff import (
    FROZEN_CHARGE_FIELDS,
    charge_field_changes,
    describe_charge,
)
from tokbill.sync._diff_context import (
    DiffContext,
    action_for,
    created_fields,
    joined,
    scalar_changes,
)
from tokbill.sync._live import LivePlan, charge_state
from tokbill.template._model import ChargeSpec, PlanSpec

FROZEN_PLAN_FIELDS = ("interval", "pay_in_advance", "amount_currency", "trial_period")
"""Plan fields Lago silently keeps once the plan has had a subscription."""

_PLAN_FIELDS = ("name", "description", "invoice_display_name", "amount_cents")
_SHOWN_ON_CREATE = (
    "name",
    "interval",
    "amount_cents",
    "amount_currency",
    "pay_in_advance",
)


def plan_changes(context: DiffContext) -> list[Change]:
    """Each template plan followed by its charges; then, with ``prune``, deletions."""
    changes = []
    for spec in context.template_set.plans:
        changes += _plan_changes(context, spec)
    if context.prune:
        changes += _pruned_plans(context)
    return changes


def _plan_changes(context: DiffContext, spec: PlanSpec) -> list[Change]:
    live = context.live.plans.get(spec.code)
    if live is None:
        return _plan_create(context, spec)
    fields = scalar_changes(spec, live, (*_PLAN_FIELDS, *FROZEN_PLAN_FIELDS))
    reasons, remedies = _kept_once_subscribed(
        context, spec.code, fields, FROZEN_PLAN_FIELDS, f"plan {spec.code}"
    )
    plan_change = Change(
        "plan",
        spec.code,
        action_for(fields, reasons),
        tuple(fields),
        reason=joined(reasons),
        remedy=joined(remedies),
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


def _plan_create(context: DiffContext, spec: PlanSpec) -> list[Change]:
    fields = created_fields(spec, _SHOWN_ON_CREATE)
    if spec.code in context.live.pending_deletion:
        blocked = Change(
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
        return [blocked]
    charges = [_charge_create(context, spec.code, c) for c in spec.charges]
    return [Change("plan", spec.code, "create", fields, desired=spec), *charges]


def _charge_create(context: DiffContext, plan: str, spec: ChargeSpec) -> Change:
    fields = describe_charge(
        charge_state(spec),
        price_by=spec.price_by,
        words=context.words(spec.billable_metric),
        added=True,
    )
    return Change("charge", spec.code, "create", tuple(fields), plan=plan, desired=spec)


def _charge_change(
    context: DiffContext, plan: PlanSpec, live_plan: LivePlan, spec: ChargeSpec
) -> Change:
    live = live_plan.charges.get(spec.code)
    if live is None:
        return _charge_create(context, plan.code, spec)
    fields = charge_field_changes(
        live.state,
        charge_state(spec),
        price_by=spec.price_by,
        words=context.words(spec.billable_metric),
    )
    reasons, remedies = _kept_once_subscribed(
        context, plan.code, fields, FROZEN_CHARGE_FIELDS, f"charge {spec.code}"
    )
    return Change(
        "charge",
        spec.code,
        action_for(fields, reasons),
        tuple(fields),
        plan=plan.code,
        reason=joined(reasons),
        remedy=joined(remedies),
        desired=spec,
        live=live,
    )


def _charge_delete(
    context: DiffContext, plan: str, live: LivePlan, code: str
) -> Change:
    charge = live.charges[code]
    fields = describe_charge(
        charge.state,
        price_by=(),
        words=context.words(charge.state.billable_metric),
        added=False,
    )
    return context.guard_destroy(
        Change("charge", code, "delete", tuple(fields), plan=plan, live=charge),
        reason=f"Charge {code} of plan {plan} is in Lago but not in the "
        "template; deleting it stops billing that usage on every subscription.",
        remedy="Add the charge back to the template to keep it, or rerun with "
        "--allow-destroy to delete it.",
    )


def _kept_once_subscribed(
    context: DiffContext,
    plan: str,
    fields: list[FieldChange],
    frozen_fields: tuple[str, ...],
    owner: str,
) -> tuple[list[str], list[str]]:
    """Reasons and remedies when ``owner`` changes a field Lago keeps.

    ``owner`` (``plan gpt4``, ``charge llm_tokens``) belongs to ``plan``.
    """
    frozen = [f.field for f in fields if f.field in frozen_fields]
    count = context.subscriptions(plan)
    if not (frozen and count.ever):
        return [], []
    reason = (
        f"Lago keeps {', '.join(frozen)} of {owner} unchanged once the plan has "
        f"had a subscription ({plan} has {count.active} active, {count.ever} in "
        "all), and still answers 200."
    )
    remedy = (
        f"Declare the new terms as a plan with a new code (such as {plan}_v2), "
        f"apply it, migrate the subscriptions of {plan} to it, then retire {plan}."
    )
    return [reason], [remedy]


def _pruned_plans(context: DiffContext) -> list[Change]:
    return [
        _pruned_plan(context, code, live)
        for code, live in sorted(context.live.plans.items())
        if code not in context.plan_codes
    ]


def _pruned_plan(context: DiffContext, code: str, live: LivePlan) -> Change:
    count = context.subscriptions(code)
    delete = Change(
        "plan",
        code,
        "delete",
        active_subscriptions=context.active_subscriptions(code),
        live=live,
    )
    return context.guard_destroy(
        delete,
        reason=f"Plan {code} is not in the templates and --prune deletes it: "
        f"Lago then terminates its {counted(count.active, 'active subscription')}, "
        "billing them now, and holds the code until the deletion ends.",
        remedy=f"Add plan {code} to the templates, leave out --prune, or rerun "
        "with --allow-destroy to delete it.",
    )
