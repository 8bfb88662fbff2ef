"""Write a version 1 template from what Lago holds.

The text round-trips: loading it gives specs equal to Lago's state, so
applying it changes nothing. Lago objects the format cannot express (a
recurring metric, a rounded metric or one with an expression, a graduated
charge, a filter on several values of a key or on any value of a key (Lago's
wildcard), a per-filter package size)
raise :class:`ExportError` naming the object, instead of being exported
approximately.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import yaml

from tokbill._errors import NotFoundError, SyncError
from tokbill.lago import LagoClient, api_path
from tokbill.sync._filter_removal import ALL_FILTER_VALUES
from tokbill.sync._live import Bucket, LiveCharge, LiveMetric, LivePlan, LiveState

_PACKAGE_KEYS = frozenset({"amount", "package_size", "free_units"})
_STANDARD_KEYS = frozenset({"amount"})
_EXPORTED_AGGREGATIONS = frozenset({"sum_agg", "count_agg"})


class ExportError(SyncError):
    """Something in Lago has no faithful form in a version 1 template."""


class _Flow(dict[str, Any]):
    """A mapping written on one line: ``{input: "0.03", output: "0.06"}``."""


class _FlowList(list[Any]):
    """A list written on one line: ``[gpt-4, gpt-4-32k]``."""


class _Dumper(yaml.SafeDumper):
    """SafeDumper plus one-line ``_Flow``/``_FlowList`` and exact Decimals."""


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    # Unquoted, so the loader reads it back as an exact number of days.
    return dumper.represent_scalar("tag:yaml.org,2002:float", format(value, "f"))


_Dumper.add_representer(
    _Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, True)
)
_Dumper.add_representer(
    _FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, True)
)
_Dumper.add_representer(Decimal, _represent_decimal)


def export_state(
    client: LagoClient,
    metric_codes: Sequence[str] = (),
    plan_codes: Sequence[str] = (),
) -> str:
    """A template for the named metrics and plans, or for everything.

    With neither list, every metric and plan. With plan codes, those plans
    and every metric their charges use, plus the named metrics. Raises
    :class:`ExportError` for an unknown code or an inexpressible object.
    """
    if not metric_codes and not plan_codes:
        metrics = list(client.paginate("/billable_metrics", "billable_metrics"))
        plans = [
            p
            for p in client.paginate("/plans", "plans")
            if not p.get("pending_deletion")
        ]
    else:
        plans = [_get(client, "plans", code, "plan") for code in plan_codes]
        used = {c.get("billable_metric_code") for p in plans for c in p["charges"]}
        wanted = dict.fromkeys([*metric_codes, *sorted(str(u) for u in used)])
        metrics = [
            _get(client, "billable_metrics", code, "billable_metric") for code in wanted
        ]
    return render_template(LiveState.from_lago(metrics, plans))


def render_template(live: LiveState) -> str:
    """The template text for every metric and plan of ``live``."""
    document: dict[str, Any] = {"version": 1}
    metrics = sorted(live.metrics.values(), key=lambda m: m.code)
    plans = sorted(live.plans.values(), key=lambda p: p.code)
    document["billable_metrics"] = [_metric(m) for m in metrics]
    document["plans"] = [_plan(p, live.metrics) for p in plans]
    header = (
        "# Exported from Lago by tokbill-sync export. Prices are per package\n"
        "# (package) or per unit (standard); applying this file changes nothing.\n"
    )
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return header + body


def _get(client: LagoClient, resource: str, code: str, root: str) -> dict[str, Any]:
    try:
        body: dict[str, Any] = client.get(api_path(resource, code))[root]
    except NotFoundError:
        raise ExportError(
            f"Lago has no {root.replace('_', ' ')} with code {code!r}."
        ) from None
    return body


def _metric(metric: LiveMetric) -> dict[str, Any]:
    if metric.aggregation_type not in _EXPORTED_AGGREGATIONS or metric.recurring:
        kind = "recurring" if metric.recurring else metric.aggregation_type
        raise ExportError(
            f"Metric {metric.code} is {kind}; templates support sum_agg and "
            "count_agg metrics that are not recurring."
        )
    if metric.rounding_function or metric.expression:
        kind = "rounded" if metric.rounding_function else "computed by an expression"
        raise ExportError(
            f"Metric {metric.code} is {kind}, which templates cannot express yet."
        )
    out: dict[str, Any] = {"code": metric.code, "name": metric.name}
    _put(out, "description", metric.description)
    out["aggregation_type"] = metric.aggregation_type
    _put(out, "field_name", metric.field_name)
    if metric.filters:
        out["filters"] = {k: _FlowList(v) for k, v in metric.filters.items()}
    return out


def _plan(plan: LivePlan, metrics: Mapping[str, LiveMetric]) -> dict[str, Any]:
    out: dict[str, Any] = {"code": plan.code, "name": plan.name}
    _put(out, "description", plan.description)
    _put(out, "invoice_display_name", plan.invoice_display_name)
    out.update(
        interval=plan.interval,
        amount_cents=plan.amount_cents,
        amount_currency=plan.amount_currency,
        pay_in_advance=plan.pay_in_advance,
    )
    if plan.trial_period:
        trial = plan.trial_period
        out["trial_period"] = int(trial) if trial == trial.to_integral() else trial
    charges = sorted(plan.charges.values(), key=lambda c: c.state.code)
    out["charges"] = [_charge(plan.code, c, metrics) for c in charges]
    return out


def _charge(
    plan: str, charge: LiveCharge, metrics: Mapping[str, LiveMetric]
) -> dict[str, Any]:
    state = charge.state
    where = f"Charge {state.code} of plan {plan}"
    _check_charge(where, charge)
    out: dict[str, Any] = {"billable_metric": state.billable_metric}
    if state.code != state.billable_metric:
        out["code"] = state.code
    out["charge_model"] = state.charge_model
    default = state.default
    if state.charge_model == "package":
        out["package_size"] = default.get("package_size")
        out["free_units"] = default.get("free_units") or 0
    out["unmatched_amount"] = str(default.get("amount") or "0")
    _put(out, "invoice_display_name", state.invoice_display_name)
    if state.filters:
        metric = metrics.get(state.billable_metric)
        price_by = _price_by(where, state.filters, metric)
        out["price_by"] = _FlowList(price_by)
        out["prices"] = _prices(where, charge, price_by)
    return out


def _check_charge(where: str, charge: LiveCharge) -> None:
    state = charge.state
    allowed = {"package": _PACKAGE_KEYS, "standard": _STANDARD_KEYS}.get(
        state.charge_model
    )
    if allowed is None:
        raise ExportError(
            f"{where} uses the {state.charge_model} model; templates "
            "support package and standard."
        )
    if state.pay_in_advance:
        raise ExportError(
            f"{where} is paid in advance, which templates cannot express yet."
        )
    for bucket in (state.default, *state.filters.values()):
        extra = {key for key, _ in bucket.properties} - allowed
        if extra:
            raise ExportError(
                f"{where} has properties {', '.join(sorted(extra))} "
                "that templates cannot express."
            )


def _price_by(
    where: str, filters: Iterable[Any], metric: LiveMetric | None
) -> list[str]:
    keys = {key for values in filters for key, _ in values}
    order = [k for k in (metric.filters if metric else ()) if k in keys]
    order += sorted(keys - set(order))
    for values in filters:
        one_each = all(
            len(vals) == 1 and vals[0] != ALL_FILTER_VALUES for _, vals in values
        )
        if len(values) != len(order) or not one_each:
            raise ExportError(
                f"{where} has a filter on {dict(values)}; templates express "
                f"filters with exactly one declared value for each of "
                f"{', '.join(order)}."
            )
    return order


def _prices(where: str, charge: LiveCharge, price_by: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    default = charge.state.default
    for key, bucket in sorted(charge.state.filters.items()):
        values = dict(key)
        path = [values[k][0] for k in price_by]
        if bucket.get("package_size") != default.get("package_size"):
            raise ExportError(
                f"{where} has a package size for {' / '.join(path)} "
                "that differs from the charge's."
            )
        node = tree
        for step in path[:-1]:
            node = node.setdefault(step, {})
        node[path[-1]] = _leaf(bucket, default)
    return _flow_leaves(tree, depth=len(price_by))


def _leaf(bucket: Bucket, default: Bucket) -> Any:
    amount = str(bucket.get("amount"))
    free_units = bucket.get("free_units")
    if free_units == default.get("free_units") and not bucket.invoice_display_name:
        return amount
    leaf: dict[str, Any] = {"amount": amount}
    if free_units != default.get("free_units"):
        leaf["free_units"] = free_units or 0
    _put(leaf, "invoice_display_name", bucket.invoice_display_name)
    return _Flow(leaf)


def _flow_leaves(tree: dict[str, Any], depth: int) -> dict[str, Any]:
    # The last level of prices reads best on one line, as in the README.
    if depth == 1:
        return _Flow(tree)
    return {k: _flow_leaves(v, depth - 1) for k, v in tree.items()}


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value
