from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tokbill.template import (
    ChargeSpec,
    MetricSpec,
    PlanSpec,
    PriceSpec,
    load_templates,
)

TEMPLATES = Path(__file__).parents[2] / "templates"
GPT4 = str(TEMPLATES / "gpt4.yaml")
GPT35 = str(TEMPLATES / "gpt35-turbo.yaml")

LLM_TOKENS = MetricSpec(
    code="llm_tokens",
    name="LLM tokens",
    aggregation_type="sum_agg",
    field_name="tokens",
    filters={
        "model": ("gpt-3.5-turbo", "gpt-3.5-turbo-16k", "gpt-4", "gpt-4-32k"),
        "type": ("input", "output"),
    },
)


def per_thousand(model: str, kind: str, amount: str) -> PriceSpec:
    return PriceSpec(
        amount=Decimal(amount),
        package_size=1000,
        values={"model": (model,), "type": (kind,)},
    )


def token_plan(code: str, name: str, prices: list[PriceSpec]) -> PlanSpec:
    charge = ChargeSpec(
        code="llm_tokens",
        billable_metric="llm_tokens",
        charge_model="package",
        default=PriceSpec(amount=Decimal("0"), package_size=1000),
        filters=tuple(prices),
        price_by=("model", "type"),
    )
    return PlanSpec(
        code=code,
        name=name,
        interval="monthly",
        amount_cents=0,
        amount_currency="USD",
        pay_in_advance=False,
        charges=(charge,),
    )


GPT4_PLAN = token_plan(
    "gpt4",
    "GPT-4",
    [
        per_thousand("gpt-4", "input", "0.03"),
        per_thousand("gpt-4", "output", "0.06"),
        per_thousand("gpt-4-32k", "input", "0.06"),
        per_thousand("gpt-4-32k", "output", "0.12"),
    ],
)
GPT35_PLAN = token_plan(
    "gpt35-turbo",
    "GPT-3.5 Turbo",
    [
        per_thousand("gpt-3.5-turbo", "input", "0.0015"),
        per_thousand("gpt-3.5-turbo", "output", "0.002"),
        per_thousand("gpt-3.5-turbo-16k", "input", "0.003"),
        per_thousand("gpt-3.5-turbo-16k", "output", "0.005"),
    ],
)


@pytest.mark.parametrize(
    ("path", "plan"), [(GPT4, GPT4_PLAN), (GPT35, GPT35_PLAN)], ids=["gpt4", "gpt35"]
)
def test_each_shipped_template_compiles_to_the_exact_specs(
    path: str, plan: PlanSpec
) -> None:
    templates = load_templates([path])

    assert templates.metrics == (LLM_TOKENS,)
    assert templates.plans == (plan,)
    assert templates.warnings == ()
    assert templates.paths == (path,)


def test_the_gpt4_input_price_is_exact_and_per_thousand_tokens() -> None:
    charge = load_templates([GPT4]).plan("gpt4").charges[0]

    price = charge.price_for({"model": "gpt-4", "type": "input"})

    assert price.amount == Decimal("0.03")
    assert price.package_size == 1000
    assert price.free_units == 0
    assert price.filter_payload("package") == {
        "invoice_display_name": None,
        "properties": {"amount": "0.03", "package_size": 1000, "free_units": 0},
        "values": {"model": ["gpt-4"], "type": ["input"]},
    }


def test_models_another_plan_prices_fall_to_the_free_default_bucket() -> None:
    charge = load_templates([GPT4]).plan("gpt4").charges[0]

    price = charge.price_for({"model": "gpt-3.5-turbo", "type": "output"})

    assert price.values is None
    assert price.amount == Decimal("0")


@pytest.mark.parametrize("order", [(GPT4, GPT35), (GPT35, GPT4)], ids=["4-35", "35-4"])
def test_both_shipped_templates_load_together_in_either_order(
    order: tuple[str, str],
) -> None:
    templates = load_templates(list(order))

    assert templates.metrics == (LLM_TOKENS,)
    assert {plan.code: plan for plan in templates.plans} == {
        "gpt4": GPT4_PLAN,
        "gpt35-turbo": GPT35_PLAN,
    }
    assert templates.warnings == ()


def test_sources_point_at_the_declaring_lines() -> None:
    templates = load_templates([GPT4])
    text = Path(GPT4).read_text(encoding="utf-8").splitlines()

    plan = templates.plan("gpt4")
    input_price = plan.charges[0].filters[0]

    assert plan.source is not None and input_price.source is not None
    assert text[plan.source.line - 1].strip() == "- code: gpt4"
    assert text[input_price.source.line - 1].strip().startswith("gpt-4: ")
    assert str(templates.metric("llm_tokens").source).startswith(f"{GPT4}:")
