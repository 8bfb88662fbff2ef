"""The live estimate checked against the emulator's own pricing of the same events.

A plan templates cannot write (an overlapping filter, free units, a priced
default bucket) is created on the emulator by hand and mirrored in a
TemplateSet. Packages are paid per started package, after the free units:

    bucket             amount/size/free  confirmed         pending
    gpt-4 input        2.00/1000/500     700 -> 1 = 2.00   +400 -> 1,100: 1, +0.00
    gpt-4, other type  1.00/1000/0     1,500 -> 2 = 2.00   +600 -> 2,100: 3, +1.00
    gpt-4o output      0.30/100/0        150 -> 2 = 0.60   +30 +30 -> 210: 3, +0.30
    default            0.50/100/10        55 -> 1 = 0.50   +70 -> 125: 2, +0.50

gpt-4 input matches both gpt-4 filters and counts in the more specific one; the
default bucket holds gpt-4o input (no filter covers it) and mistral.
Confirmed 5.10, pending 1.80, estimate 6.90. Pricing the two pending gpt-4o
events alone, one package each, would wrongly add 0.60 where Lago adds 0.30.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.emulator.lago import (
    charge,
    create_metric,
    create_plan,
    package,
    price,
    send,
    subscribe,
    tokens,
)
from tokbill.emulator.testing import running_emulator
from tokbill.template import ChargeSpec, MetricSpec, PlanSpec, PriceSpec, TemplateSet
from tokbill.usage import UsageClient, UsageEstimate

KEY = "test-key"
MODELS = ("gpt-4", "gpt-4o", "mistral")
CONFIRMED = [
    tokens("gpt-4", "input", 700),
    tokens("gpt-4", "output", 1500),
    tokens("gpt-4o", "output", 150),
    tokens("mistral", "input", 50),
    tokens("gpt-4o", "input", 5),
]
PENDING = [
    tokens("gpt-4", "input", 400),
    tokens("gpt-4", "output", 600),
    tokens("gpt-4o", "output", 30),
    tokens("gpt-4o", "output", 30),
    tokens("mistral", "output", 70),
]
# (filter values, amount, package size, free units); None is the default bucket.
PRICES: list[tuple[dict[str, list[str]] | None, str, int, int]] = [
    (None, "0.50", 100, 10),
    ({"model": ["gpt-4"]}, "1.00", 1000, 0),
    ({"model": ["gpt-4"], "type": ["input"]}, "2.00", 1000, 500),
    ({"model": ["gpt-4o"], "type": ["output"]}, "0.30", 100, 0),
]


class Pending:
    """The PendingEvents a meter would hand over: PENDING, not yet sent."""

    def pending_events(self, subscription_id: str) -> Iterable[Mapping[str, Any]]:
        return [e for e in PENDING if e["external_subscription_id"] == subscription_id]


def mirrored_templates() -> TemplateSet:
    def spec(
        values: dict[str, list[str]] | None, amount: str, size: int, free: int
    ) -> PriceSpec:
        kept = None if values is None else {k: tuple(v) for k, v in values.items()}
        return PriceSpec(Decimal(amount), free, size, kept)

    default, *filters = (spec(*row) for row in PRICES)
    metric = MetricSpec(
        "llm_tokens",
        "LLM tokens",
        "sum_agg",
        "tokens",
        filters={"model": MODELS, "type": ("input", "output")},
    )
    llm = ChargeSpec("llm_tokens", "llm_tokens", "package", default, tuple(filters))
    plan = PlanSpec("pro", "Pro", "monthly", 0, "USD", False, charges=(llm,))
    return TemplateSet(metrics=(metric,), plans=(plan,))


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    """The plan of PRICES on the emulator; sub_1 of cust_1 has CONFIRMED."""
    headers = {"Authorization": f"Bearer {KEY}"}
    with (
        running_emulator() as server,
        httpx.Client(base_url=server.api_url, headers=headers) as client,
    ):
        filters = [
            {"key": "model", "values": list(MODELS)},
            {"key": "type", "values": ["input", "output"]},
        ]
        metric = create_metric(client, filters=filters)
        (_, amount, size, free), *rest = PRICES
        prices = [price(v or {}, package(a, s, f)) for v, a, s, f in rest]
        create_plan(client, [charge(metric, package(amount, size, free), prices)])
        subscribe(client)
        send(client, CONFIRMED)
        yield client


def current(api: httpx.Client, *, meter: Pending | None = None) -> Any:
    with UsageClient(str(api.base_url), KEY, max_retries=0) as usage:
        if meter is None:
            return usage.current("cust_1", "sub_1")
        return usage.estimate(
            "cust_1", "sub_1", meter=meter, templates=mirrored_templates()
        )


def amounts(estimate: UsageEstimate) -> dict[tuple[str | None, ...], Decimal]:
    return {
        key: line.pending_amount
        for key, line in estimate.by("model", "type").items()
        if line.pending_events
    }


def test_the_estimate_prices_pending_events_as_lago_then_does(
    api: httpx.Client,
) -> None:
    estimate = current(api, meter=Pending())
    send(api, PENDING)
    counted = current(api)

    assert estimate.confirmed.amount == Decimal("5.10")
    assert amounts(estimate) == {
        ("gpt-4", "input"): Decimal("0.00"),
        ("gpt-4", None): Decimal("1.00"),
        ("gpt-4o", "output"): Decimal("0.30"),
        (None, None): Decimal("0.50"),
    }
    assert (estimate.pending_amount, estimate.amount) == (
        Decimal("1.80"),
        Decimal("6.90"),
    )
    assert (estimate.pending_events, estimate.unpriced_events) == (5, 0)
    assert counted.amount == estimate.amount
    assert {k: v.amount for k, v in counted.by("model", "type").items()} == {
        k: v.amount for k, v in estimate.by("model", "type").items()
    }
