"""Customers, subscriptions, billing periods and the usage error paths (§5, §6)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from tests.emulator.lago import (
    api_client,
    charge,
    create_metric,
    create_plan,
    ok,
    package,
    subscribe,
)
from tokbill.emulator.testing import running_emulator


def _plans(api: httpx.Client) -> None:
    metric = create_metric(api, filters=[])
    create_plan(api, [charge(metric, package("1", 10))])
    create_plan(api, [], code="cheap", amount_cents=0)
    create_plan(api, [], code="premium", amount_cents=10_000)


def test_customer_upsert_keeps_one_customer_per_external_id(api: httpx.Client) -> None:
    first = ok(api.post("/customers", json={"customer": {"external_id": "c1"}}))
    second = ok(
        api.post("/customers", json={"customer": {"external_id": "c1", "name": "Ada"}})
    )

    third = ok(
        api.post(
            "/customers",
            json={"customer": {"external_id": "c1", "name": {"first": "Bo"}}},
        )
    )

    assert first["customer"]["lago_id"] == second["customer"]["lago_id"]
    assert third["customer"]["name"] == "Ada"
    assert ok(api.get("/customers/c1"))["customer"]["name"] == "Ada"
    assert ok(api.get("/customers"))["meta"]["total_count"] == 1


def test_customer_delete_then_404(api: httpx.Client) -> None:
    ok(api.post("/customers", json={"customer": {"external_id": "c1"}}))

    deleted = ok(api.delete("/customers/c1"))
    missing = api.get("/customers/c1")

    assert deleted["customer"]["external_id"] == "c1"
    assert (missing.status_code, missing.json()["code"]) == (404, "customer_not_found")


def test_subscription_creates_its_customer_and_is_idempotent(api: httpx.Client) -> None:
    _plans(api)

    first = subscribe(api)
    again = subscribe(api)

    assert first["lago_id"] == again["lago_id"]
    assert first["status"] == "active"
    customer = ok(api.get("/customers/cust_1"))["customer"]
    assert customer["currency"] == "USD"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"plan_code": "nope"}, 404, "plan_not_found"),
        ({"external_id": None}, 422, "validation_errors"),
        ({"billing_time": "weekly"}, 422, "validation_errors"),
        ({"subscription_at": "soon"}, 422, "validation_errors"),
        ({"ending_at": "later"}, 422, "validation_errors"),
        ({"ending_at": "2020-01-01T00:00:00Z"}, 422, "validation_errors"),
    ],
    ids=[
        "unknown-plan",
        "no-external-id",
        "billing-time",
        "bad-date",
        "bad-end",
        "end-in-the-past",
    ],
)
def test_invalid_subscriptions(
    api: httpx.Client, payload: dict[str, object], status: int, code: str
) -> None:
    _plans(api)
    body = {
        "external_customer_id": "c",
        "plan_code": "pro",
        "external_id": "s",
        **payload,
    }

    response = api.post("/subscriptions", json={"subscription": body})

    assert (response.status_code, response.json()["code"]) == (status, code)


def test_external_id_of_another_customer_is_taken(api: httpx.Client) -> None:
    _plans(api)
    subscribe(api, customer="alice")

    response = api.post(
        "/subscriptions",
        json={
            "subscription": {
                "external_customer_id": "bob",
                "plan_code": "pro",
                "external_id": "sub_1",
            }
        },
    )

    assert response.json()["error_details"] == {"external_id": ["value_already_exist"]}


def test_upgrade_replaces_the_plan_at_once(api: httpx.Client) -> None:
    _plans(api)
    old = subscribe(api, plan_code="cheap")

    new = subscribe(api, plan_code="premium")

    assert (new["plan_code"], new["status"], new["lago_id"] != old["lago_id"]) == (
        "premium",
        "active",
        True,
    )
    terminated = ok(api.get("/subscriptions/sub_1", params={"status": "terminated"}))
    assert terminated["subscription"]["plan_code"] == "cheap"


def test_downgrade_waits_for_the_period_end(pinned_api: httpx.Client) -> None:
    _plans(pinned_api)
    subscribe(pinned_api, plan_code="premium")

    subscribe(pinned_api, plan_code="cheap")

    current = ok(pinned_api.get("/subscriptions/sub_1"))["subscription"]
    assert (current["plan_code"], current["next_plan_code"]) == ("premium", "cheap")
    assert current["downgrade_plan_date"] == "2026-09-01"


def test_future_subscription_is_pending_until_its_date() -> None:
    now = [datetime(2026, 8, 15, tzinfo=timezone.utc)]
    with running_emulator(clock=lambda: now[0]) as server, api_client(server) as api:
        _plans(api)
        pending = subscribe(api, subscription_at="2026-08-20T00:00:00Z")
        now[0] += timedelta(days=6)
        active = ok(api.get("/subscriptions/sub_1"))["subscription"]

    assert (pending["status"], pending["started_at"]) == ("pending", None)
    assert (active["status"], active["started_at"]) == (
        "active",
        "2026-08-20T00:00:00Z",
    )


def test_subscription_terminates_at_its_ending_at() -> None:
    now = [datetime(2026, 8, 15, tzinfo=timezone.utc)]
    with running_emulator(clock=lambda: now[0]) as server, api_client(server) as api:
        _plans(api)
        created = subscribe(api, ending_at="2026-08-20T02:00:00+02:00")
        now[0] = datetime(2026, 8, 19, 23, 59, tzinfo=timezone.utc)
        still_active = ok(api.get("/subscriptions/sub_1"))["subscription"]
        now[0] = datetime(2026, 8, 20, tzinfo=timezone.utc)
        ended = ok(api.get("/subscriptions/sub_1", params={"status": "terminated"}))

    assert created["ending_at"] == "2026-08-20T00:00:00Z"
    assert still_active["status"] == "active"
    assert ended["subscription"]["terminated_at"] == "2026-08-20T00:00:00Z"


@pytest.mark.parametrize(
    ("interval", "billing_time", "started", "period"),
    [
        ("monthly", "calendar", "2026-01-31", ("2026-08-01", "2026-08-31")),
        ("monthly", "anniversary", "2026-01-31", ("2026-07-31", "2026-08-30")),
        ("monthly", "anniversary", "2026-03-16", ("2026-07-16", "2026-08-15")),
        ("weekly", "calendar", "2026-01-01", ("2026-08-10", "2026-08-16")),
        ("quarterly", "calendar", "2026-01-01", ("2026-07-01", "2026-09-30")),
        ("yearly", "anniversary", "2025-09-01", ("2025-09-01", "2026-08-31")),
        ("monthly", "calendar", "2026-08-10", ("2026-08-10", "2026-08-31")),
    ],
    ids=[
        "calendar",
        "anniversary-31st",
        "anniversary",
        "weekly",
        "quarterly",
        "yearly",
        "started-mid-month",
    ],
)
def test_current_billing_period(
    pinned_api: httpx.Client,
    interval: str,
    billing_time: str,
    started: str,
    period: tuple[str, str],
) -> None:
    create_plan(pinned_api, [], code="p", interval=interval)

    subscription = subscribe(
        pinned_api,
        plan_code="p",
        billing_time=billing_time,
        subscription_at=f"{started}T09:30:00Z",
    )

    assert subscription["current_billing_period_started_at"] == f"{period[0]}T00:00:00Z"
    assert subscription["current_billing_period_ending_at"] == f"{period[1]}T23:59:59Z"


def test_list_filters_by_customer_plan_and_status(api: httpx.Client) -> None:
    _plans(api)
    subscribe(api, external_id="a", customer="alice")
    subscribe(api, external_id="b", customer="bob")
    subscribe(api, plan_code="cheap", external_id="c", customer="alice")
    ok(api.delete("/subscriptions/c"))

    def ids(**params: str | list[str]) -> list[str]:
        body = ok(api.get("/subscriptions", params=params))
        return [item["external_id"] for item in body["subscriptions"]]

    assert ids() == ["b", "a"]
    assert ids(external_customer_id="alice") == ["a"]
    assert ids(plan_code="pro") == ["b", "a"]
    assert ids(**{"status[]": ["active", "terminated"]}) == ["c", "b", "a"]


def test_usage_of_unknown_customer_is_404(api: httpx.Client) -> None:
    response = api.get("/customers/ghost/current_usage?external_subscription_id=s")

    assert (response.status_code, response.json()["code"]) == (
        404,
        "customer_not_found",
    )


@pytest.mark.parametrize("case", ["terminated", "other-customer", "unknown"])
def test_usage_without_an_active_subscription_is_405(
    api: httpx.Client, case: str
) -> None:
    _plans(api)
    subscribe(api, customer="alice")
    subscribe(api, customer="bob", external_id="bobs")
    if case == "terminated":
        ok(api.delete("/subscriptions/sub_1"))
    subscription = {"other-customer": "bobs", "unknown": "nope"}.get(case, "sub_1")

    response = api.get(
        "/customers/alice/current_usage",
        params={"external_subscription_id": subscription},
    )

    assert response.status_code == 405
    assert response.json() == {
        "status": 405,
        "error": "Method Not Allowed",
        "code": "no_active_subscription",
    }


def test_usage_narrowed_to_an_unknown_charge_is_404(api: httpx.Client) -> None:
    _plans(api)
    subscribe(api)

    response = api.get(
        "/customers/cust_1/current_usage",
        params={"external_subscription_id": "sub_1", "charge_code": "nope"},
    )

    assert response.json()["code"] == "charge_not_found"
