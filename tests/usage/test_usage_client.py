from __future__ import annotations

import asyncio

import pytest
import respx

from tests.usage.conftest import KEY, URL, lago_error
from tokbill import ConfigurationError
from tokbill.usage import (
    AsyncUsageClient,
    CustomerNotFoundError,
    Subscription,
    UsageClient,
)

NO_SUBSCRIPTIONS = {"subscriptions": [], "meta": {"next_page": None}}


def test_the_key_never_appears_in_the_repr() -> None:
    client = UsageClient(URL, KEY)

    assert KEY not in repr(client)
    assert "ttl_s=5" in repr(client)


def test_from_env_reads_the_lago_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAGO_API_URL", "https://lago.test")
    monkeypatch.setenv("LAGO_API_KEY", KEY)

    with respx.mock:
        route = respx.get(f"{URL}/subscriptions").respond(json=NO_SUBSCRIPTIONS)
        respx.get(f"{URL}/customers/cus_1").respond(json={"customer": {}})
        UsageClient.from_env().subscriptions("cus_1")

    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_from_env_without_a_url_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError, match="LAGO_API_URL is not set"):
        UsageClient.from_env()


def test_a_client_needs_somewhere_to_ask() -> None:
    with pytest.raises(ValueError, match="needs api_url"):
        UsageClient()


@respx.mock
def test_subscriptions_lists_the_customers_active_ones() -> None:
    route = respx.get(f"{URL}/subscriptions").respond(
        json={
            "subscriptions": [
                {
                    "external_id": "sub_1",
                    "external_customer_id": "cus_1",
                    "plan_code": "gpt4",
                    "status": "active",
                    "name": None,
                },
                {
                    "external_id": "sub_0",
                    "external_customer_id": "cus_1",
                    "plan_code": "gpt4",
                    "status": "terminated",
                },
            ],
            "meta": {"next_page": None},
        }
    )

    found = UsageClient(URL, KEY).subscriptions("cus_1")

    assert found == [Subscription("sub_1", "cus_1", "gpt4", "active")]
    params = route.calls.last.request.url.params
    assert params["external_customer_id"] == "cus_1"
    assert params["status[]"] == "active"


@respx.mock
def test_subscriptions_of_an_unknown_customer_says_so() -> None:
    respx.get(f"{URL}/subscriptions").respond(json=NO_SUBSCRIPTIONS)
    respx.get(f"{URL}/customers/cus_x").respond(
        404, json=lago_error(404, "customer_not_found")
    )

    with pytest.raises(CustomerNotFoundError, match="'cus_x'") as caught:
        UsageClient(URL, KEY).subscriptions("cus_x")

    assert caught.value.subscription_id is None


@respx.mock
def test_a_404_to_the_list_itself_is_an_unknown_customer() -> None:
    # Older Lago versions look the customer up before listing.
    respx.get(f"{URL}/subscriptions").respond(
        404, json=lago_error(404, "customer_not_found")
    )

    with pytest.raises(CustomerNotFoundError, match="'cus_x'"):
        UsageClient(URL, KEY).subscriptions("cus_x")


def test_async_subscriptions_of_an_unknown_customer_says_so() -> None:
    async def scenario() -> None:
        with respx.mock:
            respx.get(f"{URL}/subscriptions").respond(json=NO_SUBSCRIPTIONS)
            respx.get(f"{URL}/customers/cus_x").respond(
                404, json=lago_error(404, "customer_not_found")
            )
            async with AsyncUsageClient(URL, KEY) as usage:
                await usage.subscriptions("cus_x")

    with pytest.raises(CustomerNotFoundError, match="'cus_x'"):
        asyncio.run(scenario())


@respx.mock
def test_a_known_customer_without_subscriptions_has_none() -> None:
    respx.get(f"{URL}/subscriptions").respond(json=NO_SUBSCRIPTIONS)
    respx.get(f"{URL}/customers/cus_1").respond(json={"customer": {}})

    assert UsageClient(URL, KEY).subscriptions("cus_1") == []


def test_the_clients_are_importable_from_the_package_root() -> None:
    import tokbill
    from tokbill.usage import AsyncUsageClient

    assert tokbill.UsageClient is UsageClient
    assert tokbill.AsyncUsageClient is AsyncUsageClient
    assert {"UsageClient", "AsyncUsageClient"} <= set(tokbill.__all__)
