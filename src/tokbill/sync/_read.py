"""Read the part of Lago a template set touches; reads only, never writes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from tokbill._errors import NotFoundError
from tokbill.lago import LagoClient, api_path
from tokbill.sync._diff import compute_changes
from tokbill.sync._live import LiveState, SubscriptionCount
from tokbill.template._model import TemplateSet

_EVERY_STATUS = ("active", "pending", "terminated", "canceled")


def read_state(
    client: LagoClient, template_set: TemplateSet, *, prune: bool = False
) -> LiveState:
    """What Lago holds for ``template_set``, with subscriptions of changed plans.

    Reads each template metric by code, every plan (Lago cannot filter plans
    by metric, and plans outside the templates matter: they may price a
    filter value the templates remove), and, for each plan with changes,
    how many subscriptions it has (two small list calls). With ``prune``,
    every metric too. Costs ``metrics + ceil(plans / 100) + 2 * changed``
    requests. Raises :class:`tokbill.LagoError` when a read fails.
    """
    metric_codes = {metric.code for metric in template_set.metrics}
    plan_codes = {plan.code for plan in template_set.plans}
    if prune:
        metrics = list(client.paginate("/billable_metrics", "billable_metrics"))
    else:
        metrics = list(_read_metrics(client, sorted(metric_codes)))
    plans = [
        plan
        for plan in client.paginate("/plans", "plans")
        if prune
        or plan.get("code") in plan_codes
        or _charges_metric(plan, metric_codes)
    ]
    state = LiveState.from_lago(metrics, plans)
    counts = {
        code: count_subscriptions(client, code)
        for code in _plans_with_changes(template_set, state, prune)
    }
    return dataclasses.replace(state, subscriptions=counts)


def count_subscriptions(client: LagoClient, plan_code: str) -> SubscriptionCount:
    """Active subscriptions of a plan, and subscriptions in any status."""
    return SubscriptionCount(
        active=_count(client, plan_code, ("active",)),
        ever=_count(client, plan_code, _EVERY_STATUS),
    )


def _read_metrics(client: LagoClient, codes: Iterable[str]) -> Iterator[dict[str, Any]]:
    for code in codes:
        try:
            body = client.get(api_path("billable_metrics", code))
        except NotFoundError:
            continue
        yield body["billable_metric"]


def _charges_metric(plan: Mapping[str, Any], metric_codes: set[str]) -> bool:
    return any(
        charge.get("billable_metric_code") in metric_codes
        for charge in plan.get("charges") or ()
    )


def _plans_with_changes(
    template_set: TemplateSet, state: LiveState, prune: bool
) -> list[str]:
    changes = compute_changes(template_set, state, allow_destroy=True, prune=prune)
    codes = {
        change.plan or change.code
        for change in changes
        if change.kind != "billable_metric" and change.action != "unchanged"
    }
    return sorted(code for code in codes if code in state.plans)


def _count(client: LagoClient, plan_code: str, statuses: tuple[str, ...]) -> int:
    params = {"plan_code": plan_code, "status[]": list(statuses), "per_page": 1}
    body = client.get("/subscriptions", params)
    total = (body.get("meta") or {}).get("total_count")
    if isinstance(total, int):
        return total
    # A server without Lago's pagination meta: count the pages ourselves.
    params.pop("per_page")
    return sum(1 for _ in client.paginate("/subscriptions", "subscriptions", params))
