"""Payload builders and calls shared by the emulator tests."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx

from tokbill.emulator import EmulatorServer

TOKEN_FILTERS = [
    {"key": "model", "values": ["claude-sonnet", "gpt-4o"]},
    {"key": "type", "values": ["input", "output"]},
]
_transaction_ids = itertools.count()


def api_client(server: EmulatorServer) -> httpx.Client:
    """An HTTP client on the server's ``/api/v1``; any bearer key will do."""
    headers = {"Authorization": "Bearer test-key"}
    return httpx.Client(base_url=server.api_url, headers=headers)


def ok(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a 200 response; fails the test with the body otherwise."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ok_item(response: httpx.Response, root: str) -> dict[str, Any]:
    """The object under ``root`` of a 200 body; fails the test otherwise."""
    item: dict[str, Any] = ok(response)[root]
    return item


def package(amount: str, package_size: int, free_units: int = 0) -> dict[str, Any]:
    return {"amount": amount, "package_size": package_size, "free_units": free_units}


def create_metric(
    api: httpx.Client,
    code: str = "llm_tokens",
    filters: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    payload = {
        "name": fields.pop("name", "LLM tokens"),
        "code": code,
        "aggregation_type": "sum_agg",
        "field_name": "tokens",
        "filters": TOKEN_FILTERS if filters is None else filters,
        **fields,
    }
    response = api.post("/billable_metrics", json={"billable_metric": payload})
    return ok_item(response, "billable_metric")


def update_metric(
    api: httpx.Client, current_code: str, /, **fields: Any
) -> dict[str, Any]:
    """``PUT /billable_metrics/{current_code}`` with ``fields``; the new metric."""
    payload = {"billable_metric": fields}
    response = api.put(f"/billable_metrics/{current_code}", json=payload)
    return ok_item(response, "billable_metric")


def create_plan(
    api: httpx.Client, charges: list[dict[str, Any]], code: str = "pro", **fields: Any
) -> dict[str, Any]:
    payload = {
        "name": "Pro",
        "code": code,
        "interval": "monthly",
        "amount_cents": 0,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": charges,
        **fields,
    }
    return ok_item(api.post("/plans", json={"plan": payload}), "plan")


def charge(
    metric: dict[str, Any],
    properties: dict[str, Any],
    filters: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "billable_metric_id": metric["lago_id"],
        "code": metric["code"],
        "charge_model": "package",
        "properties": properties,
        "filters": filters or [],
        **fields,
    }


def price(values: dict[str, list[str]], properties: dict[str, Any]) -> dict[str, Any]:
    return {"values": values, "properties": properties}


def subscribe(
    api: httpx.Client,
    plan_code: str = "pro",
    external_id: str = "sub_1",
    customer: str = "cust_1",
    **fields: Any,
) -> dict[str, Any]:
    payload = {
        "external_customer_id": customer,
        "plan_code": plan_code,
        "external_id": external_id,
        **fields,
    }
    response = api.post("/subscriptions", json={"subscription": payload})
    return ok_item(response, "subscription")


def event(
    properties: dict[str, Any],
    timestamp: float | str | None = None,
    subscription: str = "sub_1",
    code: str = "llm_tokens",
) -> dict[str, Any]:
    return {
        "transaction_id": f"txn-{next(_transaction_ids)}",
        "external_subscription_id": subscription,
        "code": code,
        "timestamp": int(time.time()) if timestamp is None else timestamp,
        "properties": properties,
    }


def tokens(model: str, kind: str, count: int, **extra: Any) -> dict[str, Any]:
    return event({"model": model, "type": kind, "tokens": count}, **extra)


def send(api: httpx.Client, events: list[dict[str, Any]]) -> None:
    ok(api.post("/events/batch", json={"events": events}))


def usage(
    api: httpx.Client, customer: str = "cust_1", subscription: str = "sub_1"
) -> dict[str, Any]:
    response = api.get(
        f"/customers/{customer}/current_usage",
        params={"external_subscription_id": subscription},
    )
    return ok_item(response, "customer_usage")


def buckets(charge_usage: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    """Filter entries keyed by their values (``default`` for the default bucket)."""
    result = {}
    for entry in charge_usage["filters"]:
        values = entry["values"]
        key = "default" if values is None else repr(sorted(values.items()))
        result[key] = (entry["units"], entry["events_count"], entry["amount_cents"])
    return result
