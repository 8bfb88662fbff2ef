"""Current usage priced on hand-worked cases (lago-api.md §3)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.emulator.lago import (
    buckets,
    charge,
    create_metric,
    create_plan,
    event,
    package,
    price,
    send,
    subscribe,
    tokens,
    update_metric,
    usage,
)


def _worked_example_plan(api: httpx.Client) -> None:
    metric = create_metric(api)
    filters = [
        price(
            {"model": ["gpt-4o"], "type": ["input"]},
            package("2.50", 1_000_000, 100_000),
        ),
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


def _package_plan_without_filters(api: httpx.Client) -> None:
    metric = create_metric(api, filters=[])
    create_plan(api, [charge(metric, package("1.00", 1000, free_units=500))])


@pytest.mark.parametrize(
    ("units", "expected_cents"),
    [(0, 0), (500, 0), (501, 100), (1500, 100), (1501, 200), (10_500, 1000)],
    ids=["nothing", "all-free", "one-over", "one-package", "two-packages", "ten"],
)
def test_package_subtracts_free_units_then_rounds_packages_up(
    api: httpx.Client, units: int, expected_cents: int
) -> None:
    _package_plan_without_filters(api)
    subscribe(api)

    if units:
        send(api, [event({"tokens": units})])
    [charge_usage] = usage(api)["charges_usage"]

    assert charge_usage["amount_cents"] == expected_cents
    assert charge_usage["filters"] == []


def test_default_bucket_takes_unmatched_events_at_the_charge_price(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    gpt_input = price({"model": ["gpt-4o"], "type": ["input"]}, package("5.00", 1000))
    create_plan(api, [charge(metric, package("1.00", 1000), [gpt_input])])
    subscribe(api)

    send(
        api,
        [
            tokens("gpt-4o", "input", 1000),
            tokens("gpt-4o", "output", 1000),
            event({"model": "gpt-4o", "tokens": 1000}),
            tokens("llama", "input", 1000),
        ],
    )
    [charge_usage] = usage(api)["charges_usage"]

    assert buckets(charge_usage) == {
        "[('model', ['gpt-4o']), ('type', ['input'])]": ("1000.0", 1, 500),
        "default": ("3000.0", 3, 300),
    }
    default = charge_usage["filters"][-1]
    assert (default["values"], default["invoice_display_name"]) == (None, None)


def test_charge_without_properties_prices_the_default_bucket_at_zero(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    gpt = price({"model": ["gpt-4o"]}, package("5.00", 1000))
    create_plan(api, [charge(metric, {}, [gpt])])
    subscribe(api)

    send(api, [tokens("gpt-4o", "input", 10), tokens("claude-sonnet", "input", 10)])
    [charge_usage] = usage(api)["charges_usage"]

    assert buckets(charge_usage)["default"] == ("10.0", 1, 0)
    assert charge_usage["amount_cents"] == 500


def _usage_of_filters(
    api: httpx.Client, filters: list[dict[str, Any]], sent: list[dict[str, Any]]
) -> dict[str, Any]:
    metric = create_metric(api)
    create_plan(api, [charge(metric, package("0", 1), filters)])
    subscribe(api)
    send(api, sent)
    [charge_usage] = usage(api)["charges_usage"]
    return charge_usage


def test_a_nested_filter_wins_over_the_broader_one(api: httpx.Client) -> None:
    filters = [
        price({"model": ["gpt-4o"]}, package("1.00", 1000)),
        price({"model": ["gpt-4o"], "type": ["input"]}, package("7.00", 1000)),
        price({"model": ["__ALL_FILTER_VALUES__"]}, package("5.00", 1000)),
    ]
    sent = [
        tokens("gpt-4o", "input", 1000),
        tokens("gpt-4o", "output", 1000),
        tokens("claude-sonnet", "output", 1000),
    ]

    charge_usage = _usage_of_filters(api, filters, sent)

    # gpt-4o/input goes to the two-key filter only; gpt-4o/output to the
    # gpt-4o filter, a child of "any model"; claude to "any model".
    assert [entry["amount_cents"] for entry in charge_usage["filters"]] == [
        100,
        700,
        500,
        0,
    ]
    assert charge_usage["events_count"] == 3


def test_filters_that_overlap_without_nesting_both_count_the_event(
    api: httpx.Client,
) -> None:
    filters = [
        price({"model": ["gpt-4o"]}, package("1.00", 1000)),
        price({"type": ["__ALL_FILTER_VALUES__"]}, package("3.00", 1000)),
    ]
    sent = [tokens("gpt-4o", "output", 1000), tokens("claude-sonnet", "output", 1000)]

    charge_usage = _usage_of_filters(api, filters, sent)

    # Neither filter has the other's key, so neither excludes the other's
    # events (ChargeFilters::MatchingAndIgnoredService): gpt-4o/output is
    # billed twice, 1.00 + 3.00, and claude once more at 3.00.
    assert buckets(charge_usage) == {
        "[('model', ['gpt-4o'])]": ("1000.0", 1, 100),
        "[('type', ['__ALL_FILTER_VALUES__'])]": ("2000.0", 2, 600),
        "default": ("0.0", 0, 0),
    }
    assert (charge_usage["units"], charge_usage["amount_cents"]) == ("3000.0", 700)


def test_of_identical_filters_only_the_oldest_counts(api: httpx.Client) -> None:
    filters = [
        price({"model": ["gpt-4o"]}, package("1.00", 1000)),
        price({"model": ["gpt-4o"]}, package("9.00", 1000)),
    ]

    charge_usage = _usage_of_filters(api, filters, [tokens("gpt-4o", "input", 10)])

    assert [entry["amount_cents"] for entry in charge_usage["filters"]] == [100, 0, 0]


def _plan_with_model_and_type_prices(api: httpx.Client) -> None:
    metric = create_metric(api)
    filters = [
        price({"model": ["gpt-4o"], "type": ["input"]}, package("2.00", 1000)),
        price({"model": ["claude-sonnet"]}, package("3.00", 1000)),
    ]
    create_plan(api, [charge(metric, package("1.00", 1000), filters)])
    subscribe(api)
    send(
        api,
        [
            tokens("gpt-4o", "input", 1000),
            tokens("gpt-4o", "output", 1000),
            tokens("claude-sonnet", "output", 1000),
        ],
    )


def test_removing_a_metric_value_deletes_the_emptied_filter_mid_period(
    api: httpx.Client,
) -> None:
    _plan_with_model_and_type_prices(api)
    before = usage(api)["charges_usage"][0]

    update_metric(
        api,
        "llm_tokens",
        filters=[
            {"key": "model", "values": ["gpt-4o"]},
            {"key": "type", "values": ["input", "output"]},
        ],
    )
    after = usage(api)["charges_usage"][0]

    assert before["amount_cents"] == 200 + 300 + 100
    assert buckets(after) == {
        "[('model', ['gpt-4o']), ('type', ['input'])]": ("1000.0", 1, 200),
        "default": ("2000.0", 2, 200),
    }


def test_removing_a_metric_key_broadens_the_filter_at_its_old_price(
    api: httpx.Client,
) -> None:
    _plan_with_model_and_type_prices(api)

    update_metric(
        api,
        "llm_tokens",
        filters=[{"key": "model", "values": ["claude-sonnet", "gpt-4o"]}],
    )
    charge_usage = usage(api)["charges_usage"][0]

    assert buckets(charge_usage) == {
        "[('model', ['gpt-4o'])]": ("2000.0", 2, 400),
        "[('model', ['claude-sonnet'])]": ("1000.0", 1, 300),
        "default": ("0.0", 0, 0),
    }


def test_amounts_are_rounded_to_cents_per_bucket_before_summing(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    standard = {"charge_model": "standard"}
    filters = [
        price({"model": ["gpt-4o"]}, {"amount": "0.015"}),
        price({"model": ["claude-sonnet"]}, {"amount": "0.015"}),
    ]
    create_plan(api, [charge(metric, {"amount": "0.005"}, filters, **standard)])
    subscribe(api)

    send(
        api,
        [
            tokens("gpt-4o", "input", 1),
            tokens("claude-sonnet", "input", 1),
            tokens("llama", "input", 1),
        ],
    )
    [charge_usage] = usage(api)["charges_usage"]

    # 0.015 rounds half up to 0.02 in each bucket, 0.005 to 0.01: 2 + 2 + 1,
    # where rounding the 0.035 total once would give 4.
    assert [entry["amount_cents"] for entry in charge_usage["filters"]] == [2, 2, 1]
    assert charge_usage["amount_cents"] == 5


def test_sum_ignores_values_that_are_not_plain_decimals(api: httpx.Client) -> None:
    _package_plan_without_filters(api)
    subscribe(api)

    send(
        api,
        [
            event({"tokens": 600}),
            event({"tokens": "400.5"}),
            event({"tokens": "1e3"}),
            event({"tokens": " 5"}),
            event({"other": 1}),
        ],
    )
    [charge_usage] = usage(api)["charges_usage"]

    assert charge_usage["units"] == "1000.5"
    assert charge_usage["events_count"] == 5
    assert charge_usage["amount_cents"] == 100


def test_sum_counts_json_numbers_written_with_an_exponent(
    api: httpx.Client,
) -> None:
    _package_plan_without_filters(api)
    subscribe(api)

    # json.dumps writes these floats as 1e-07 and 2.5e-05; Postgres stores
    # them as numeric, which matches Lago's plain-decimal check.
    send(
        api,
        [event({"tokens": 600}), event({"tokens": 1e-7}), event({"tokens": 2.5e-5})],
    )
    [charge_usage] = usage(api)["charges_usage"]

    assert charge_usage["units"] == "600.0000251"


def test_every_charge_is_listed_sorted_by_metric_name(api: httpx.Client) -> None:
    counted = create_metric(
        api, "requests", filters=[], name="requests", aggregation_type="count_agg"
    )
    summed = create_metric(api, "tokens", filters=[], name="Tokens")
    create_plan(
        api,
        [
            charge(summed, package("1.00", 1000)),
            charge(counted, {"amount": "0.10"}, charge_model="standard"),
        ],
    )
    subscribe(api)

    send(api, [event({}, code="requests"), event({}, code="requests")])
    result = usage(api)

    assert [item["billable_metric"]["name"] for item in result["charges_usage"]] == [
        "requests",
        "Tokens",
    ]
    requests_usage, tokens_usage = result["charges_usage"]
    assert (requests_usage["units"], requests_usage["amount_cents"]) == ("2.0", 20)
    assert (tokens_usage["units"], tokens_usage["amount_cents"]) == ("0.0", 0)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize(
    ("billing_time", "subscription_at", "period"),
    [
        (
            "calendar",
            "2026-01-10T08:00:00+00:00",
            ("2026-08-01T00:00:00+00:00", "2026-09-01T00:00:00+00:00"),
        ),
        (
            "anniversary",
            "2026-01-20T08:00:00+00:00",
            ("2026-07-20T00:00:00+00:00", "2026-08-20T00:00:00+00:00"),
        ),
    ],
    ids=["calendar", "anniversary"],
)
def test_only_events_inside_the_billing_period_count(
    pinned_api: httpx.Client,
    billing_time: str,
    subscription_at: str,
    period: tuple[str, str],
) -> None:
    _package_plan_without_filters(pinned_api)
    subscribe(pinned_api, billing_time=billing_time, subscription_at=subscription_at)
    start, end = _ts(period[0]), _ts(period[1])

    send(
        pinned_api,
        [
            event({"tokens": 1}, timestamp=start - 1),
            event({"tokens": 10}, timestamp=start),
            event({"tokens": 100}, timestamp=f"{start + 0.25}"),
            event({"tokens": 1000}, timestamp=f"{end - 0.5}"),
            event({"tokens": 10_000}, timestamp=end),
        ],
    )
    result = usage(pinned_api)

    # The period is [start, end): Lago shows its end as the second before.
    assert result["from_datetime"] == period[0].replace("+00:00", "Z")
    assert _ts(result["to_datetime"].replace("Z", "+00:00")) == end - 1
    assert result["charges_usage"][0]["units"] == "1110.0"
    # 1110 tokens less 500 free: one package of 1000 at 1.00.
    assert result["amount_cents"] == 100
