from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx

from tests.usage.conftest import KEY, URL, USAGE_URL, FakeClock
from tokbill.usage import AsyncUsageClient, BudgetStatus, UsageClient

# The gpt4 body totals 0.15 USD (see conftest).


def check(body: dict[str, Any], clock: FakeClock, limit: object) -> BudgetStatus:
    with respx.mock:
        respx.get(USAGE_URL).respond(json=body)
        client = UsageClient(URL, KEY, clock=clock, max_retries=0)
        return client.check_budget("cus_1", "sub_1", limit=limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limit", "remaining", "exceeded"),
    [
        (Decimal("0.16"), Decimal("0.01"), False),
        (Decimal("0.15"), Decimal("0"), True),
        (Decimal("0.14"), Decimal("0"), True),
    ],
    ids=["under", "at", "over"],
)
def test_budget_at_under_and_over_its_limit(
    gpt4_body: dict[str, Any],
    clock: FakeClock,
    limit: Decimal,
    remaining: Decimal,
    exceeded: bool,
) -> None:
    status = check(gpt4_body, clock, limit)

    assert status.spent == Decimal("0.15")
    assert status.limit == limit
    assert status.remaining == remaining
    assert status.exceeded is exceeded
    assert (status.currency, status.stale) == ("USD", False)


def test_spent_includes_taxes(clock: FakeClock, gpt4_body: dict[str, Any]) -> None:
    gpt4_body["customer_usage"].update(taxes_amount_cents=3, total_amount_cents=18)

    status = check(gpt4_body, clock, "0.17")

    assert (status.spent, status.exceeded) == (Decimal("0.18"), True)


@pytest.mark.parametrize(
    "limit", [50, "50", Decimal("50.00")], ids=["int", "str", "decimal"]
)
def test_a_limit_may_be_an_int_a_string_or_a_decimal(
    gpt4_body: dict[str, Any], clock: FakeClock, limit: object
) -> None:
    assert check(gpt4_body, clock, limit).remaining == Decimal("49.85")


@pytest.mark.parametrize(
    ("limit", "error", "match"),
    [
        (0.5, TypeError, "not float"),
        (True, TypeError, "not bool"),
        ("-1", ValueError, ">= 0"),
        ("NaN", ValueError, ">= 0"),
        ("fifty", ValueError, ">= 0"),
    ],
    ids=["float", "bool", "negative", "nan", "garbage"],
)
def test_a_bad_limit_is_refused(
    gpt4_body: dict[str, Any],
    clock: FakeClock,
    limit: object,
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        check(gpt4_body, clock, limit)


@respx.mock
def test_a_budget_from_a_stale_value_says_so(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    respx.get(USAGE_URL).mock(
        side_effect=[httpx.Response(200, json=gpt4_body), httpx.ConnectError("down")]
    )
    client = UsageClient(URL, KEY, clock=clock, max_retries=0)
    fresh = client.check_budget("cus_1", "sub_1", limit=1)
    clock.advance(7.0)

    status = client.check_budget("cus_1", "sub_1", limit=1)

    assert (status.stale, status.age_s) == (True, 7.0)
    assert status.as_of == fresh.as_of


def test_async_budget(gpt4_body: dict[str, Any], clock: FakeClock) -> None:
    async def scenario() -> BudgetStatus:
        with respx.mock:
            respx.get(USAGE_URL).respond(json=gpt4_body)
            async with AsyncUsageClient(URL, KEY, clock=clock, max_retries=0) as usage:
                return await usage.check_budget("cus_1", "sub_1", Decimal("0.15"))

    status = asyncio.run(scenario())

    assert (status.spent, status.remaining, status.exceeded) == (
        Decimal("0.15"),
        Decimal("0"),
        True,
    )
