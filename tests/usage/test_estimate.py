from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import respx

from tests.usage.conftest import (
    KEY,
    URL,
    USAGE_URL,
    FakeClock,
    charge_usage,
    usage_body,
)
from tokbill.template import TemplateSet, load_templates
from tokbill.usage import AsyncUsageClient, UsageClient, UsageEstimate

TEMPLATES = Path(__file__).parents[2] / "templates"

# Lago's figure for plan gpt4 (templates/gpt4.yaml, packages of 1,000 tokens):
# gpt-4 input 2,500 -> 3 x 0.03 = 0.09; gpt-4 output 1,000 -> 1 x 0.06 = 0.06.
CONFIRMED = usage_body(
    [
        charge_usage(
            "llm_tokens",
            [
                ({"model": ["gpt-4"], "type": ["input"]}, "2500.0", 9, 2),
                ({"model": ["gpt-4"], "type": ["output"]}, "1000.0", 6, 1),
                ({"model": ["gpt-4-32k"], "type": ["input"]}, "0.0", 0, 0),
                ({"model": ["gpt-4-32k"], "type": ["output"]}, "0.0", 0, 0),
                (None, "0.0", 0, 0),
            ],
        )
    ]
)


class RecordedEvents:
    """A meter's pending events, as the PendingEvents protocol hands them over."""

    def __init__(self, *events: tuple[str, str, object]) -> None:
        self.events = [
            {
                "code": "llm_tokens",
                "external_subscription_id": "sub_1",
                "properties": {"model": model, "type": kind, "tokens": tokens},
            }
            for model, kind, tokens in events
        ]

    def pending_events(self, subscription_id: str) -> Iterable[Mapping[str, Any]]:
        return [
            e for e in self.events if e["external_subscription_id"] == subscription_id
        ]


@pytest.fixture(scope="module")
def gpt4() -> TemplateSet:
    return load_templates([TEMPLATES / "gpt4.yaml"])


def estimate(
    clock: FakeClock, templates: TemplateSet, meter: RecordedEvents, **kwargs: Any
) -> UsageEstimate:
    with respx.mock:
        respx.get(USAGE_URL).respond(json=CONFIRMED)
        client = UsageClient(URL, KEY, clock=clock, max_retries=0)
        return client.estimate(
            "cus_1", "sub_1", meter=meter, templates=templates, **kwargs
        )


def test_pending_tokens_inside_a_started_package_cost_nothing_more(
    clock: FakeClock, gpt4: TemplateSet
) -> None:
    # 2,500 + 400 = 2,900 -> ceil(2.9) = 3 packages, as before.
    result = estimate(clock, gpt4, RecordedEvents(("gpt-4", "input", 400)))

    line = result.by("model", "type")[("gpt-4", "input")]
    assert (line.pending_units, line.pending_amount) == (Decimal(400), Decimal("0.00"))
    assert (line.units, line.amount) == (Decimal("2900.0"), Decimal("0.09"))
    assert result.amount == Decimal("0.15")


def test_the_extra_cost_is_the_difference_of_whole_packages(
    clock: FakeClock, gpt4: TemplateSet
) -> None:
    # input: 2,500 + 400 + 600 = 3,500 -> 4 packages, one more: +0.03.
    # output: 1,000 + 1 = 1,001 -> ceil(1.001) = 2 packages: +0.06.
    # gpt-4-32k input: 0 + 1 -> 1 package x 0.06: +0.06.
    meter = RecordedEvents(
        ("gpt-4", "input", 400),
        ("gpt-4", "input", 600),
        ("gpt-4", "output", 1),
        ("gpt-4-32k", "input", 1),
    )

    result = estimate(clock, gpt4, meter)

    lines = result.by("model", "type")
    assert lines[("gpt-4", "input")].pending_amount == Decimal("0.03")
    assert lines[("gpt-4", "output")].pending_amount == Decimal("0.06")
    assert lines[("gpt-4-32k", "input")].pending_amount == Decimal("0.06")
    assert result.pending_amount == Decimal("0.15")
    assert result.confirmed.amount == Decimal("0.15")
    assert (result.amount, result.total_amount) == (Decimal("0.30"), Decimal("0.30"))
    assert (result.pending_events, result.unpriced_events) == (4, 0)


def test_a_model_without_a_price_falls_in_the_default_bucket(
    clock: FakeClock, gpt4: TemplateSet
) -> None:
    result = estimate(clock, gpt4, RecordedEvents(("gpt-3.5-turbo", "input", 5000)))

    default = result.by("model", "type")[(None, None)]
    assert (default.pending_units, default.pending_amount) == (
        Decimal(5000),
        Decimal(0),
    )
    assert result.unpriced_events == 0


def test_events_lago_would_not_sum_are_left_out_and_counted(
    clock: FakeClock, gpt4: TemplateSet
) -> None:
    meter = RecordedEvents(("gpt-4", "input", "1e3"), ("gpt-4", "input", 2000))
    meter.events.append({"code": "other_metric", "external_subscription_id": "sub_1"})

    result = estimate(clock, gpt4, meter)

    assert (result.pending_events, result.unpriced_events) == (3, 2)
    assert result.pending_amount == Decimal("0.06")


def test_another_subscriptions_events_are_not_counted(
    clock: FakeClock, gpt4: TemplateSet
) -> None:
    meter = RecordedEvents(("gpt-4", "output", 5000))
    meter.events[0]["external_subscription_id"] = "sub_2"

    assert estimate(clock, gpt4, meter).pending_amount == Decimal(0)


def test_several_plans_need_a_plan_code(clock: FakeClock) -> None:
    both = load_templates([TEMPLATES / "gpt4.yaml", TEMPLATES / "gpt35-turbo.yaml"])
    meter = RecordedEvents(("gpt-4", "output", 1))

    with pytest.raises(ValueError, match="needs a plan_code; the templates hold"):
        estimate(clock, both, meter)
    result = estimate(clock, both, meter, plan_code="gpt4")

    assert result.pending_amount == Decimal("0.06")


def test_an_unknown_plan_code_is_refused(clock: FakeClock, gpt4: TemplateSet) -> None:
    with pytest.raises(ValueError, match="not 'gpt5'"):
        estimate(clock, gpt4, RecordedEvents(), plan_code="gpt5")


def test_async_estimate(clock: FakeClock, gpt4: TemplateSet) -> None:
    async def scenario() -> UsageEstimate:
        with respx.mock:
            respx.get(USAGE_URL).respond(json=CONFIRMED)
            async with AsyncUsageClient(URL, KEY, clock=clock) as client:
                return await client.estimate(
                    "cus_1",
                    "sub_1",
                    meter=RecordedEvents(("gpt-4", "output", 1)),
                    templates=gpt4,
                )

    assert asyncio.run(scenario()).pending_amount == Decimal("0.06")


def test_by_without_keys_is_refused(clock: FakeClock, gpt4: TemplateSet) -> None:
    result = estimate(clock, gpt4, RecordedEvents(("gpt-4", "input", 1)))

    with pytest.raises(ValueError, match="at least one filter key"):
        result.by()
