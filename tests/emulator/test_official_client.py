# lago-python-client builds its models on pydantic.v1 with Optional fields and
# no defaults (the pydantic mypy plugin reads them as required arguments), and
# types most responses as Optional or as its BaseModel.
# mypy: disable-error-code="call-arg, misc, union-attr, index, attr-defined, arg-type"
"""Lago's official Python client works against the emulator, call by call.

lago-python-client sends with module-level httpx calls and parses responses
with its own pydantic (v1) models, so this checks wire compatibility from a
second, independent implementation. Its known gaps (lago-api.md §8) shape
the calls: filter ``lago_id``s come back only through the filter endpoints.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.emulator.lago import package
from tokbill.emulator import EmulatorServer

lago = pytest.importorskip("lago_python_client")

from lago_python_client.client import Client  # noqa: E402 - after the importorskip
from lago_python_client.exceptions import LagoApiError  # noqa: E402
from lago_python_client.models import (  # noqa: E402
    BatchEvent,
    BillableMetric,
    BillableMetricFilter,
    BillableMetricFilters,
    Charge,
    ChargeFilter,
    ChargeFilters,
    Charges,
    Customer,
    Event,
    Plan,
    Subscription,
)


@pytest.fixture
def client(lago_emulator: EmulatorServer) -> Iterator[Client]:
    yield Client(api_key="official", api_url=lago_emulator.url)


def _metric(client: Client) -> object:
    filters = BillableMetricFilters(
        __root__=[
            BillableMetricFilter(key="model", values=["gpt-4o", "claude-sonnet"]),
            BillableMetricFilter(key="type", values=["input", "output"]),
        ]
    )
    return client.billable_metrics.create(
        BillableMetric(
            name="LLM tokens",
            code="llm_tokens",
            aggregation_type="sum_agg",
            field_name="tokens",
            filters=filters,
        )
    )


def _plan(client: Client, metric_id: str) -> object:
    gpt_input = ChargeFilter(
        invoice_display_name="GPT-4o input",
        properties=package("2.50", 1000),
        values={"model": ["gpt-4o"], "type": ["input"]},
    )
    charge = Charge(
        billable_metric_id=metric_id,
        code="llm_tokens",
        charge_model="package",
        properties=package("1.00", 1000),
        filters=ChargeFilters(__root__=[gpt_input]),
    )
    return client.plans.create(
        Plan(
            name="Pro",
            code="pro",
            interval="monthly",
            amount_cents=0,
            amount_currency="USD",
            pay_in_advance=False,
            charges=Charges(__root__=[charge]),
        )
    )


def test_billable_metric_calls(client: Client) -> None:
    created = _metric(client)

    found = client.billable_metrics.find("llm_tokens")
    listed = client.billable_metrics.find_all({"per_page": 10})
    updated = client.billable_metrics.update(
        BillableMetric(name="Tokens"), "llm_tokens"
    )
    destroyed = client.billable_metrics.destroy("llm_tokens")

    assert found.lago_id == created.lago_id
    assert [f.key for f in found.filters.__root__] == ["model", "type"]
    assert [m.code for m in listed["billable_metrics"]] == ["llm_tokens"]
    assert listed["meta"]["total_count"] == 1
    assert updated.name == "Tokens"
    assert destroyed.code == "llm_tokens"
    with pytest.raises(LagoApiError) as raised:
        client.billable_metrics.find("llm_tokens")
    assert raised.value.status_code == 404
    assert raised.value.response["code"] == "billable_metric_not_found"


def test_plan_charge_and_filter_calls(client: Client) -> None:
    metric = _metric(client)
    plan = _plan(client, metric.lago_id)
    charge_id = plan.charges.__root__[0].lago_id

    updated = client.plans.update(
        Plan(
            name="Pro 2",
            charges=Charges(
                __root__=[
                    Charge(
                        id=charge_id,
                        charge_model="package",
                        properties=package("1.50", 1000),
                    )
                ]
            ),
        ),
        "pro",
    )
    # lago-python-client 1.55 sends plan_charges.find_all without the
    # Authorization header, so Lago (and the emulator) answer 401.
    with pytest.raises(LagoApiError) as unauthorized:
        client.plan_charges.find_all("pro")
    extra = client.plan_charges.create(
        "pro",
        Charge(
            billable_metric_id=metric.lago_id,
            code="extra",
            charge_model="standard",
            properties={"amount": "0.01"},
        ),
    )
    found = client.plan_charges.find("pro", "extra")
    changed = client.plan_charges.update(
        "pro", "extra", Charge(charge_model="standard", properties={"amount": "0.02"})
    )
    removed = client.plan_charges.destroy("pro", "extra")
    listed = client.plans.find_all({"per_page": 10})

    assert updated.name == "Pro 2"
    assert updated.charges.__root__[0].properties["amount"] == "1.50"
    assert len(updated.charges.__root__[0].filters.__root__) == 1
    assert unauthorized.value.status_code == 401
    assert (extra.code, found.lago_id) == ("extra", extra.lago_id)
    assert changed.properties == {"amount": "0.02"}
    assert removed.code == "extra"
    assert [plan.code for plan in listed["plans"]] == ["pro"]
    assert listed["meta"]["total_count"] == 1
    assert client.plans.find("pro").code == "pro"


def test_charge_filter_calls(client: Client) -> None:
    metric = _metric(client)
    _plan(client, metric.lago_id)
    claude = ChargeFilter(
        properties=package("3.00", 1000), values={"model": ["claude-sonnet"]}
    )

    created = client.plans.create_charge_filter("pro", "llm_tokens", claude)
    listed = client.plans.find_all_charge_filters("pro", "llm_tokens")
    found = client.plans.find_charge_filter("pro", "llm_tokens", created.lago_id)
    updated = client.plans.update_charge_filter(
        "pro",
        "llm_tokens",
        created.lago_id,
        ChargeFilter(invoice_display_name="Claude", properties=package("4.00", 1000)),
    )
    destroyed = client.plans.destroy_charge_filter("pro", "llm_tokens", created.lago_id)

    assert created.values == {"model": ["claude-sonnet"]}
    assert len(listed["filters"]) == 2
    assert found.lago_id == created.lago_id
    assert (updated.invoice_display_name, updated.properties["amount"]) == (
        "Claude",
        "4.00",
    )
    assert destroyed.lago_id == created.lago_id
    assert client.plans.destroy("pro").code == "pro"


def test_customer_subscription_event_and_usage_calls(
    client: Client, lago_emulator: EmulatorServer
) -> None:
    metric = _metric(client)
    _plan(client, metric.lago_id)
    now = int(time.time())

    customer = client.customers.create(Customer(external_id="cust_1", name="Ada"))
    upserted = client.customers.create(
        Customer(external_id="cust_1", email="ada@example.com")
    )
    subscription = client.subscriptions.create(
        Subscription(
            external_customer_id="cust_1", plan_code="pro", external_id="sub_1"
        )
    )
    found = client.subscriptions.find("sub_1")
    listed = client.subscriptions.find_all({"external_customer_id": "cust_1"})
    by_plan = client.subscriptions.find_all({"plan_code": "pro", "status[]": "active"})
    single = client.events.create(
        Event(
            transaction_id="t-1",
            external_subscription_id="sub_1",
            code="llm_tokens",
            timestamp=now,
            properties={"model": "gpt-4o", "type": "input", "tokens": 1500},
        )
    )
    client.events.batch_create(
        BatchEvent(
            events=[
                Event(
                    transaction_id=f"t-{index}",
                    external_subscription_id="sub_1",
                    code="llm_tokens",
                    timestamp=str(now),
                    properties={"model": "llama", "tokens": 700},
                )
                for index in (2, 3)
            ]
        )
    )
    fetched = client.events.find("t-1")
    usage = client.customers.current_usage("cust_1", "sub_1")
    terminated = client.subscriptions.destroy("sub_1")
    ended = client.subscriptions.find_all({"status[]": "terminated"})

    assert (customer.external_id, subscription.status) == ("cust_1", "active")
    assert upserted.lago_id == customer.lago_id
    assert (upserted.name, upserted.email) == ("Ada", "ada@example.com")
    assert found.lago_id == subscription.lago_id
    assert [s.external_id for s in listed["subscriptions"]] == ["sub_1"]
    assert single.transaction_id == fetched.transaction_id == "t-1"
    assert len(lago_emulator.store.events("sub_1")) == 3
    assert usage.amount_cents == 500 + 200
    assert usage.charges_usage[0].units == "2900.0"
    assert terminated.status == "terminated"
    assert [s.external_id for s in by_plan["subscriptions"]] == ["sub_1"]
    assert [s.lago_id for s in ended["subscriptions"]] == [subscription.lago_id]


def test_duplicate_event_surfaces_lagos_error_details(client: Client) -> None:
    event = Event(
        transaction_id="same",
        external_subscription_id="sub_1",
        code="llm_tokens",
        timestamp=1_700_000_000,
        properties={},
    )
    client.events.create(event)

    with pytest.raises(LagoApiError) as raised:
        client.events.create(event)

    assert raised.value.status_code == 422
    assert raised.value.response["error_details"] == {
        "transaction_id": ["value_already_exist"]
    }
