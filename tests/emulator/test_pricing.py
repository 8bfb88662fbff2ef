"""Current usage priced on hand-worked cases (lago-api.md §3)."""

from __future__ import annotations

import httpx

from tests.emulator.lago import (
    buckets,
    charge,
    create_metric,
    create_plan,
    package,
    price,
    send,
    subscribe,
    tokens,
    usage,
)


def _worked_example_plan(api: httpx.Client) -> None:
    metric = create_metric(api)
    filters = [
        price({"model": ["gpt-4o"], "type": ["input"]}, package("2.50", 1_000_000, 100_000)),
        price({"model": ["gpt-4o"], "type": ["output"]}, package("10.00", 1_000_000)),
        price({"model": ["claude-sonnet"]}, package("3.00", 1_000_000)),
    ]
    create_plan(api, [charge(metric, package("1.00", 1000), filters)])
    subscribe(api)


def test_worked_example_of_the_reference(api: httpx.Client) -> None:
    _worked_example_plan(api)

    send(
        api,
        [
            tokens("gpt-4o", "input", 1_250_000),
            tokens("gpt-4o", "output", 10),
            tokens("claude-sonnet", "input", 300_000),
            tokens("claude-sonnet", "output", 200_000),
            tokens("mistral", "input", 2_000),
            tokens("gpt-4o", "cached", 500),
        ],
    )
    result = usage(api)

    assert (result["amount_cents"], result["total_amount_cents"]) == (2100, 2100)
    [charge_usage] = result["charges_usage"]
    assert charge_usage["units"] == "1752510.0"
    assert charge_usage["events_count"] == 6
    assert buckets(charge_usage) == {
        "[('model', ['gpt-4o']), ('type', ['input'])]": ("1250000.0", 1, 500),
        "[('model', ['gpt-4o']), ('type', ['output'])]": ("10.0", 1, 1000),
        "[('model', ['claude-sonnet'])]": ("500000.0", 2, 300),
        "default": ("2500.0", 2, 300),
    }
