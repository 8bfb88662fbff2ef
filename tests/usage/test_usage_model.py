from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
import respx

from tests.usage.conftest import (
    GPT4_BUCKETS,
    KEY,
    URL,
    USAGE_URL,
    FakeClock,
    charge_usage,
    usage_body,
)
from tokbill.usage import Usage, UsageClient, UsageLine


def fetch(body: dict[str, Any], clock: FakeClock) -> Usage:
    with respx.mock:
        respx.get(USAGE_URL).respond(json=body)
        with UsageClient(URL, KEY, clock=clock, max_retries=0) as client:
            return client.current("cus_1", "sub_1")


def test_money_is_exact_decimal_in_currency_units(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    usage = fetch(gpt4_body, clock)

    assert usage.currency == "USD"
    assert usage.amount == Decimal("0.15")
    assert str(usage.amount) == "0.15"
    assert usage.taxes_amount == Decimal("0.00")
    assert usage.total_amount == Decimal("0.15")


@pytest.mark.parametrize(
    ("currency", "cents", "expected"),
    [("USD", 2100, "21.00"), ("JPY", 2100, "2100"), ("KWD", 2100, "2.100")],
    ids=["two-decimals", "zero-decimals", "three-decimals"],
)
def test_subunits_follow_the_currency_exponent(
    clock: FakeClock, currency: str, cents: int, expected: str
) -> None:
    charge = charge_usage("tokens", [(None, "10.0", cents, 1)], currency=currency)
    body = usage_body([charge], currency=currency, taxes_cents=cents)

    usage = fetch(body, clock)

    assert str(usage.amount) == expected
    assert usage.total_amount == 2 * Decimal(expected)


def test_the_period_and_fetch_time_are_aware_datetimes(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    usage = fetch(gpt4_body, clock)

    assert usage.period_start == datetime(2026, 8, 1, tzinfo=timezone.utc)
    assert usage.period_end == datetime(2026, 8, 31, 23, 59, 59, tzinfo=timezone.utc)
    assert usage.fetched_at.tzinfo is not None
    assert (usage.stale, usage.age_s) == (False, 0.0)


def test_each_filter_bucket_is_a_line_and_the_default_bucket_has_no_filters(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    usage = fetch(gpt4_body, clock)

    assert len(usage.lines) == len(GPT4_BUCKETS)
    assert usage.lines[0] == UsageLine(
        metric_code="llm_tokens",
        charge_code="llm_tokens",
        filters={"model": ("gpt-4",), "type": ("input",)},
        units=Decimal("2500.0"),
        amount=Decimal("0.09"),
        events_count=2,
    )
    assert usage.lines[-1].filters is None
    assert usage.units == Decimal("3500")


def test_a_charge_without_filters_is_one_line(clock: FakeClock) -> None:
    charge = charge_usage("requests", [])
    charge.update(units="42.0", amount_cents=420, events_count=42)

    usage = fetch(usage_body([charge]), clock)

    assert [(line.filters, line.units, line.amount) for line in usage.lines] == [
        (None, Decimal("42.0"), Decimal("4.20"))
    ]


def test_by_keys_lines_on_their_filter_values(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    usage = fetch(gpt4_body, clock)

    lines = usage.by("model", "type")

    assert list(lines) == [
        ("gpt-4", "input"),
        ("gpt-4", "output"),
        ("gpt-4-32k", "input"),
        (None, None),
    ]
    assert lines[("gpt-4", "output")].amount == Decimal("0.06")


def test_by_fewer_keys_sums_the_lines_that_share_a_group(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    usage = fetch(gpt4_body, clock)

    gpt4 = usage.by("model")[("gpt-4",)]

    assert (gpt4.units, gpt4.amount, gpt4.events_count) == (
        Decimal("3500.0"),
        Decimal("0.15"),
        4,
    )
    assert gpt4.filters == {"model": ("gpt-4",)}


def test_a_filter_with_several_values_reports_them_joined(clock: FakeClock) -> None:
    bucket = ({"model": ["gpt-4-0613", "gpt-4"]}, "5.0", 3, 1)

    usage = fetch(usage_body([charge_usage("tokens", [bucket])]), clock)

    assert usage.lines[0].value("model") == "gpt-4|gpt-4-0613"
    assert usage.lines[0].value("type") is None


def test_by_without_keys_is_refused(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    with pytest.raises(ValueError, match="at least one filter key"):
        fetch(gpt4_body, clock).by()
