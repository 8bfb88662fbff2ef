from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from tests.usage.conftest import KEY, URL, USAGE_URL, FakeClock, lago_error
from tokbill import AuthenticationError, NotAllowedError, NotFoundError, UsageError
from tokbill.usage import (
    AsyncUsageClient,
    CustomerNotFoundError,
    ForeignSubscriptionError,
    SubscriptionNotActiveError,
    UsageClient,
    UsageUnavailableError,
)

SUBSCRIPTION_URL = f"{URL}/subscriptions/sub_1"


def make_client(clock: FakeClock) -> UsageClient:
    return UsageClient(URL, KEY, clock=clock, max_retries=0)


def not_active() -> httpx.Response:
    return httpx.Response(405, json=lago_error(405, "no_active_subscription"))


def subscription(status: str, customer: str = "cus_1") -> dict[str, Any]:
    return {
        "subscription": {
            "external_id": "sub_1",
            "external_customer_id": customer,
            "plan_code": "gpt4",
            "status": status,
            "subscription_at": "2026-09-01T00:00:00Z",
        }
    }


@respx.mock
def test_an_unknown_customer_says_so(clock: FakeClock) -> None:
    respx.get(USAGE_URL).respond(404, json=lago_error(404, "customer_not_found"))

    with pytest.raises(
        CustomerNotFoundError, match="no customer with external id 'cus_1'"
    ) as caught:
        make_client(clock).current("cus_1", "sub_1")

    assert isinstance(caught.value.__cause__, NotFoundError)
    assert caught.value.__cause__.code == "customer_not_found"


@respx.mock
def test_a_subscription_lago_has_in_no_status_explains_the_405(
    clock: FakeClock,
) -> None:
    respx.get(USAGE_URL).mock(return_value=not_active())
    lookups = respx.get(SUBSCRIPTION_URL).respond(
        404, json=lago_error(404, "subscription_not_found")
    )

    with pytest.raises(SubscriptionNotActiveError) as caught:
        make_client(clock).current("cus_1", "sub_1")

    message = str(caught.value)
    assert "no active subscription 'sub_1'" in message
    assert "found none with that id" in message
    assert "GET /subscriptions?external_customer_id=cus_1" in message
    assert isinstance(caught.value.__cause__, NotAllowedError)
    assert caught.value.status is None
    assert [c.request.url.params["status"] for c in lookups.calls] == [
        "active",
        "pending",
        "terminated",
        "canceled",
    ]


@pytest.mark.parametrize(
    ("status", "field"),
    [("terminated", "terminated_at"), ("canceled", "canceled_at")],
)
def test_an_ended_subscription_says_when_it_ended(
    clock: FakeClock, status: str, field: str
) -> None:
    ended = subscription(status)
    ended["subscription"][field] = "2026-08-20T10:00:00Z"
    with respx.mock:
        respx.get(USAGE_URL).mock(return_value=not_active())
        respx.get(SUBSCRIPTION_URL, params={"status": status}).respond(json=ended)
        respx.get(SUBSCRIPTION_URL).respond(
            404, json=lago_error(404, "subscription_not_found")
        )

        with pytest.raises(SubscriptionNotActiveError) as caught:
            make_client(clock).current("cus_1", "sub_1")

    assert str(caught.value) == (
        f"Subscription 'sub_1' of customer 'cus_1' was {status} at "
        "2026-08-20T10:00:00Z, and Lago only reports usage of active subscriptions."
    )
    assert caught.value.status == status


@respx.mock
def test_a_pending_subscription_says_when_it_starts(clock: FakeClock) -> None:
    respx.get(USAGE_URL).mock(return_value=not_active())
    respx.get(SUBSCRIPTION_URL, params={"status": "active"}).respond(
        404, json=lago_error(404, "subscription_not_found")
    )
    respx.get(SUBSCRIPTION_URL, params={"status": "pending"}).respond(
        json=subscription("pending")
    )

    with pytest.raises(
        SubscriptionNotActiveError, match="pending: it starts at 2026-09-01"
    ) as caught:
        make_client(clock).current("cus_1", "sub_1")

    assert caught.value.status == "pending"


@respx.mock
def test_a_subscription_of_another_customer_names_its_owner(clock: FakeClock) -> None:
    respx.get(USAGE_URL).mock(return_value=not_active())
    respx.get(SUBSCRIPTION_URL).respond(json=subscription("active", customer="cus_2"))

    with pytest.raises(
        ForeignSubscriptionError, match="belongs to customer 'cus_2', not 'cus_1'"
    ) as caught:
        make_client(clock).current("cus_1", "sub_1")

    assert caught.value.owner_id == "cus_2"
    assert caught.value.status == "active"


@respx.mock
def test_a_pending_subscription_of_another_customer_says_both(
    clock: FakeClock,
) -> None:
    respx.get(USAGE_URL).mock(return_value=not_active())
    respx.get(SUBSCRIPTION_URL, params={"status": "active"}).respond(
        404, json=lago_error(404, "subscription_not_found")
    )
    respx.get(SUBSCRIPTION_URL, params={"status": "pending"}).respond(
        json=subscription("pending", customer="cus_2")
    )

    with pytest.raises(ForeignSubscriptionError) as caught:
        make_client(clock).current("cus_1", "sub_1")

    assert str(caught.value) == (
        "Subscription 'sub_1' belongs to customer 'cus_2', not 'cus_1'; "
        "and it is pending there."
    )
    assert (caught.value.owner_id, caught.value.status) == ("cus_2", "pending")


@respx.mock
def test_definitive_errors_are_not_hidden_by_a_stale_value(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    respx.get(USAGE_URL).mock(
        side_effect=[httpx.Response(200, json=gpt4_body), not_active()]
    )
    respx.get(SUBSCRIPTION_URL).respond(
        404, json=lago_error(404, "subscription_not_found")
    )
    client = make_client(clock)
    client.current("cus_1", "sub_1")
    clock.advance(10.0)

    with pytest.raises(SubscriptionNotActiveError):
        client.current("cus_1", "sub_1")


@respx.mock
def test_an_error_is_remembered_for_the_ttl_and_raised_afresh(clock: FakeClock) -> None:
    route = respx.get(USAGE_URL).respond(
        404, json=lago_error(404, "customer_not_found")
    )
    client = make_client(clock)

    errors = []
    for _ in range(2):
        with pytest.raises(CustomerNotFoundError) as caught:
            client.current("cus_1", "sub_1")
        errors.append(caught.value)

    assert route.call_count == 1
    assert errors[0] is not errors[1]


@respx.mock
def test_a_rejected_key_is_a_usage_error_caused_by_the_401(clock: FakeClock) -> None:
    respx.get(USAGE_URL).respond(401, json={"status": 401, "error": "Unauthorized"})

    with pytest.raises(UsageUnavailableError, match="401 Unauthorized") as caught:
        make_client(clock).current("cus_1", "sub_1")

    assert isinstance(caught.value.__cause__, AuthenticationError)
    assert KEY not in str(caught.value)


@respx.mock
def test_an_unreadable_answer_is_an_error_remembered_for_the_ttl(
    clock: FakeClock,
) -> None:
    route = respx.get(USAGE_URL).respond(json={"customer_usage": {"currency": "USD"}})
    client = make_client(clock)

    for _ in range(2):
        with pytest.raises(UsageError, match="could not be read: .*no 'from_dat"):
            client.current("cus_1", "sub_1")

    assert route.call_count == 1


def test_empty_ids_are_refused(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="Both customer_id and subscription_id"):
        make_client(clock).current("cus_1", "")


def test_async_405_of_another_customer(clock: FakeClock) -> None:
    async def scenario() -> None:
        with respx.mock:
            respx.get(USAGE_URL).mock(return_value=not_active())
            respx.get(SUBSCRIPTION_URL).respond(json=subscription("active", "cus_9"))
            async with AsyncUsageClient(URL, KEY, clock=clock, max_retries=0) as usage:
                await usage.current("cus_1", "sub_1")

    with pytest.raises(ForeignSubscriptionError, match="'cus_9'"):
        asyncio.run(scenario())


def test_async_unknown_customer(clock: FakeClock) -> None:
    async def scenario() -> None:
        with respx.mock:
            respx.get(USAGE_URL).respond(
                404, json=lago_error(404, "customer_not_found")
            )
            async with AsyncUsageClient(URL, KEY, clock=clock, max_retries=0) as usage:
                await usage.current("cus_1", "sub_1")

    with pytest.raises(CustomerNotFoundError):
        asyncio.run(scenario())
