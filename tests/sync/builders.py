"""Template specs and the Lago JSON that holds them, for diff tests on plain data.

``lago_metric`` and ``lago_plan`` render a spec the way Lago answers a GET:
lago ids, sorted filter values, amounts as strings, the deprecated counters.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from tokbill.template import (
    ChargeSpec,
    MetricSpec,
    PlanSpec,
    PriceSpec,
    TemplateSet,
)

GPT4_PRICES = {
    ("gpt-4", "input"): "0.03",
    ("gpt-4", "output"): "0.06",
    ("gpt-4-32k", "input"): "0.06",
    ("gpt-4-32k", "output"): "0.12",
}


def metric(
    models: tuple[str, ...] = ("gpt-4", "gpt-4-32k"), **overrides: Any
) -> MetricSpec:
    fields: dict[str, Any] = {
        "code": "llm_tokens",
        "name": "LLM tokens",
        "aggregation_type": "sum_agg",
        "field_name": "tokens",
        "filters": {"model": tuple(sorted(models)), "type": ("input", "output")},
    }
    return MetricSpec(**{**fields, **overrides})


def charge(
    prices: dict[tuple[str, str], str] | None = None,
    *,
    charge_model: str = "package",
    package_size: int | None = 1000,
    unmatched: str = "0",
    **overrides: Any,
) -> ChargeSpec:
    size = package_size if charge_model == "package" else None
    filters = tuple(
        PriceSpec(
            Decimal(amount),
            package_size=size,
            values={"model": (model,), "type": (kind,)},
        )
        for (model, kind), amount in sorted((prices or GPT4_PRICES).items())
    )
    fields: dict[str, Any] = {
        "code": "llm_tokens",
        "billable_metric": "llm_tokens",
        "charge_model": charge_model,
        "default": PriceSpec(Decimal(unmatched), package_size=size),
        "filters": filters,
        "price_by": ("model", "type"),
    }
    return ChargeSpec(**{**fields, **overrides})


def plan(*charges: ChargeSpec, **overrides: Any) -> PlanSpec:
    fields: dict[str, Any] = {
        "code": "gpt4",
        "name": "GPT-4",
        "interval": "monthly",
        "amount_cents": 0,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": charges or (charge(),),
    }
    return PlanSpec(**{**fields, **overrides})


def templates(*specs: MetricSpec | PlanSpec) -> TemplateSet:
    return TemplateSet(
        metrics=tuple(s for s in specs if isinstance(s, MetricSpec)),
        plans=tuple(s for s in specs if isinstance(s, PlanSpec)),
        paths=("test.yaml",),
    )


def lago_metric(spec: MetricSpec) -> dict[str, Any]:
    body = spec.payload()
    return {
        **body,
        "lago_id": f"bm-{spec.code}",
        "created_at": "2026-01-01T00:00:00Z",
        "rounding_function": None,
        "rounding_precision": None,
        "expression": None,
        "plans_count": 0,
        "active_subscriptions_count": 0,
    }


def lago_charge(spec: ChargeSpec) -> dict[str, Any]:
    body = spec.payload(f"bm-{spec.billable_metric}")
    del body["billable_metric_id"]
    for entry in body["filters"]:
        entry["values"] = {k: sorted(v) for k, v in entry["values"].items()}
    return {
        **body,
        "lago_id": f"ch-{spec.code}",
        "lago_billable_metric_id": f"bm-{spec.billable_metric}",
        "billable_metric_code": spec.billable_metric,
        "invoiceable": True,
        "prorated": False,
        "min_amount_cents": 0,
        "taxes": [],
    }


def lago_plan(spec: PlanSpec, **overrides: Any) -> dict[str, Any]:
    body = spec.payload(_ids(spec))
    del body["charges"]
    return {
        **body,
        "lago_id": f"plan-{spec.code}",
        "trial_period": spec.trial_period,
        "bill_charges_monthly": None,
        "active_subscriptions_count": 0,
        "charges": [lago_charge(c) for c in spec.charges],
        **overrides,
    }


def _ids(spec: PlanSpec) -> dict[str, str]:
    return {c.billable_metric: f"bm-{c.billable_metric}" for c in spec.charges}


def replace(spec: Any, **changes: Any) -> Any:
    return dataclasses.replace(spec, **changes)
