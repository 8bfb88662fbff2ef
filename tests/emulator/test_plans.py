"""Plan, charge and charge-filter rules (lago-api.md §2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.lago import (
    charge,
    create_metric,
    create_plan,
    ok,
    ok_item,
    package,
    price,
    subscribe,
)


def _put_plan(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    return ok_item(api.put("/plans/pro", json={"plan": fields}), "plan")


def _details(response: httpx.Response) -> Any:
    assert response.status_code == 422, response.text
    return response.json()["error_details"]


@pytest.mark.parametrize(
    ("properties", "codes"),
    [
        ({"amount": 5, "package_size": 1000, "free_units": 0}, ["invalid_amount"]),
        ({"amount": "-1", "package_size": 1000, "free_units": 0}, ["invalid_amount"]),
        (
            {"amount": "1", "package_size": "1000", "free_units": 0},
            ["invalid_package_size"],
        ),
        (
            {"amount": "1", "package_size": 1000.0, "free_units": 0},
            ["invalid_package_size"],
        ),
        ({"amount": "1", "package_size": 0, "free_units": 0}, ["invalid_package_size"]),
        ({"amount": "1", "package_size": 1000}, ["invalid_free_units"]),
        (
            {"amount": "1", "package_size": 1000, "free_units": -1},
            ["invalid_free_units"],
        ),
    ],
    ids=[
        "number",
        "negative",
        "string-size",
        "float-size",
        "zero-size",
        "no-free",
        "negative-free",
    ],
)
def test_package_properties_are_validated_on_charges_and_filters(
    api: httpx.Client, properties: dict[str, Any], codes: list[str]
) -> None:
    metric = create_metric(api)
    on_charge = [charge(metric, properties)]
    on_filter = [
        charge(metric, package("1", 1), [price({"model": ["gpt-4o"]}, properties)])
    ]

    responses = [
        api.post("/plans", json={"plan": _plan_payload(charges)})
        for charges in (on_charge, on_filter)
    ]

    assert [_details(response) for response in responses] == [{"properties": codes}] * 2
    assert api.get("/plans/pro").status_code == 404


def _plan_payload(charges: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "name": "Pro",
        "code": "pro",
        "interval": "monthly",
        "amount_cents": 0,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": charges,
        **fields,
    }


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        ({"interval": None}, {"interval": ["value_is_invalid"]}),
        ({"pay_in_advance": None}, {"pay_in_advance": ["value_is_invalid"]}),
        ({"amount_currency": "XXX"}, {"amount_currency": ["value_is_invalid"]}),
        ({"name": ""}, {"name": ["value_is_mandatory"]}),
    ],
    ids=["interval", "pay-in-advance", "currency", "name"],
)
def test_plan_fields_are_validated(
    api: httpx.Client, fields: dict[str, Any], details: dict[str, Any]
) -> None:
    response = api.post("/plans", json={"plan": _plan_payload([], **fields)})

    assert _details(response) == details


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(1000, 1000), ("1000", 1000), (" 250 ", 250), (19.99, 19)],
    ids=["integer", "numeric-string", "padded-string", "float-truncated"],
)
def test_amount_cents_is_cast_like_a_rails_integer_column(
    api: httpx.Client, sent: Any, stored: int
) -> None:
    payload = _plan_payload([], amount_cents=sent)

    plan = ok_item(api.post("/plans", json={"plan": payload}), "plan")

    assert plan["amount_cents"] == stored


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        ({"interval": "yearly"}, False),
        ({"interval": "semiannual", "bill_charges_monthly": True}, True),
        ({"interval": "monthly", "bill_charges_monthly": True}, None),
    ],
    ids=["yearly-default", "semiannual-given", "monthly-ignored"],
)
def test_bill_charges_monthly_is_kept_only_for_long_intervals(
    api: httpx.Client, fields: dict[str, Any], stored: bool | None
) -> None:
    payload = _plan_payload([], **fields)

    plan = ok_item(api.post("/plans", json={"plan": payload}), "plan")

    assert plan["bill_charges_monthly"] is stored


def test_amount_cents_that_is_no_number_is_refused(api: httpx.Client) -> None:
    payload = _plan_payload([], amount_cents="ten dollars")

    response = api.post("/plans", json={"plan": payload})

    assert _details(response) == {"amount_cents": ["value_is_invalid"]}


def test_charge_filter_values_must_be_declared_on_the_metric(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    for values in ({"model": ["llama"]}, {"region": ["us"]}):
        filters = [price(values, package("1", 1))]
        response = api.post(
            "/plans",
            json={"plan": _plan_payload([charge(metric, package("1", 1), filters)])},
        )
        assert _details(response) == {"values": ["value_is_invalid"]}


def test_unknown_metric_id_is_404_billable_metrics_not_found(
    api: httpx.Client,
) -> None:
    ghost = {"lago_id": "00000000-0000-4000-8000-000000000000", "code": "x"}

    response = api.post("/plans", json={"plan": _plan_payload([charge(ghost, {})])})

    assert response.status_code == 404
    assert response.json()["code"] == "billable_metrics_not_found"


def test_charge_codes_are_generated_and_unique(api: httpx.Client) -> None:
    metric = create_metric(api)
    bare = {**charge(metric, package("1", 1)), "code": None}

    plan = create_plan(
        api, [bare, bare, charge(metric, {}, charge_model="standard", code="custom")]
    )

    assert [item["code"] for item in plan["charges"]] == [
        "llm_tokens",
        "llm_tokens_2",
        "custom",
    ]


def test_unknown_property_keys_are_dropped_and_defaults_filled(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)

    plan = create_plan(
        api,
        [
            charge(metric, {**package("1", 10), "rate": "9"}, code="a"),
            charge(metric, {}, code="b"),
        ],
    )

    assert [item["properties"] for item in plan["charges"]] == [
        {"amount": "1", "package_size": 10, "free_units": 0},
        {"package_size": 1, "amount": "0", "free_units": 0},
    ]


def test_unsupported_charge_model_is_refused(api: httpx.Client) -> None:
    metric = create_metric(api)

    response = api.post(
        "/plans",
        json={"plan": _plan_payload([charge(metric, {}, charge_model="graduated")])},
    )

    assert _details(response) == {"charge_model": ["value_is_invalid"]}


def test_update_matches_charges_by_id_creates_new_and_deletes_omitted(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    plan = create_plan(
        api, [charge(metric, package("1", 10), code="a"), charge(metric, {}, code="b")]
    )
    kept = plan["charges"][0]

    updated = _put_plan(
        api,
        charges=[
            {
                "id": kept["lago_id"],
                "charge_model": "package",
                "properties": package("2", 10),
            },
            charge(metric, package("3", 10), code="c"),
        ],
    )

    assert [(c["code"], c["properties"]["amount"]) for c in updated["charges"]] == [
        ("a", "2"),
        ("c", "3"),
    ]
    assert updated["charges"][0]["lago_id"] == kept["lago_id"]


def test_resending_a_charge_without_its_id_collides_on_its_code(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    create_plan(api, [charge(metric, package("1", 10))])

    response = api.put(
        "/plans/pro", json={"plan": {"charges": [charge(metric, package("1", 10))]}}
    )

    assert _details(response) == {"code": ["value_already_exist"]}
    assert len(ok(api.get("/plans/pro"))["plan"]["charges"]) == 1


def test_update_without_properties_resets_them_to_the_model_defaults(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    plan = create_plan(api, [charge(metric, package("5", 10, 7))])
    charge_id = plan["charges"][0]["lago_id"]

    updated = _put_plan(api, charges=[{"id": charge_id, "charge_model": "package"}])
    no_model = {"plan": {"charges": [{"id": charge_id}]}}
    unsubscribed = api.put("/plans/pro", json=no_model)
    subscribe(api)
    subscribed = api.put("/plans/pro", json=no_model)

    assert updated["charges"][0]["properties"] == package("0", 1)
    # Lago assigns the missing model unless the plan has subscriptions; then
    # the kept package model finds the properties empty.
    assert _details(unsubscribed) == {
        "charge_model": ["value_is_invalid", "value_is_mandatory"]
    }
    assert _details(subscribed) == {
        "properties": ["invalid_amount", "invalid_package_size", "invalid_free_units"]
    }


def test_subscribed_plan_keeps_frozen_fields_but_takes_prices(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    plan = create_plan(api, [charge(metric, package("1", 10), code="a")])
    subscribe(api)
    charge_id = plan["charges"][0]["lago_id"]

    updated = _put_plan(
        api,
        name="Renamed",
        code="renamed",
        interval="yearly",
        amount_currency="EUR",
        amount_cents=500,
        charges=[
            {
                "id": charge_id,
                "code": "b",
                "charge_model": "standard",
                "pay_in_advance": True,
                "properties": package("9", 10),
            },
        ],
    )

    assert (updated["name"], updated["amount_cents"]) == ("Renamed", 500)
    assert (updated["code"], updated["interval"], updated["amount_currency"]) == (
        "pro",
        "monthly",
        "USD",
    )
    [kept] = updated["charges"]
    assert (kept["code"], kept["charge_model"], kept["pay_in_advance"]) == (
        "a",
        "package",
        False,
    )
    assert kept["properties"] == package("9", 10)


def test_filters_are_matched_by_exact_values_and_keep_their_ids(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    gpt = price({"model": ["gpt-4o"], "type": ["input", "output"]}, package("1", 10))
    claude = price({"model": ["claude-sonnet"]}, package("2", 10))
    plan = create_plan(api, [charge(metric, package("1", 10), [gpt, claude])])
    charge_id = plan["charges"][0]["lago_id"]
    gpt_id, claude_id = (item["lago_id"] for item in plan["charges"][0]["filters"])

    reordered = price(
        {"type": ["output", "input"], "model": ["gpt-4o"]}, package("1", 10)
    )
    repriced = price({"model": ["claude-sonnet"]}, package("4", 10))
    updated = _put_plan(
        api,
        charges=[
            {
                "id": charge_id,
                "charge_model": "package",
                "properties": package("1", 10),
                "filters": [repriced, reordered],
            }
        ],
    )

    filters = updated["charges"][0]["filters"]
    assert filters[0]["lago_id"] == claude_id
    assert filters[0]["properties"]["amount"] == "4"
    assert filters[1]["lago_id"] != gpt_id
    assert filters[1]["values"] == {"type": ["output", "input"], "model": ["gpt-4o"]}


def test_charges_sub_resource_round_trip(api: httpx.Client) -> None:
    metric = create_metric(api)
    create_plan(api, [charge(metric, package("1", 10), code="a")])
    new_charge = charge(metric, {"amount": "0.5"}, charge_model="standard")
    del new_charge["code"]

    missing_code = api.post("/plans/pro/charges", json={"charge": new_charge})
    created = ok(
        api.post("/plans/pro/charges", json={"charge": {**new_charge, "code": "b"}})
    )
    updated = ok(
        api.put(
            "/plans/pro/charges/b",
            json={
                "charge": {"charge_model": "standard", "properties": {"amount": "2"}}
            },
        )
    )
    listed = ok(api.get("/plans/pro/charges"))
    deleted = ok(api.delete("/plans/pro/charges/a"))

    assert _details(missing_code) == {"code": ["value_is_mandatory"]}
    assert created["charge"]["code"] == "b"
    assert updated["charge"]["properties"] == {"amount": "2"}
    assert [item["code"] for item in listed["charges"]] == ["b", "a"]
    assert deleted["charge"]["code"] == "a"
    assert api.get("/plans/pro/charges/a").json()["code"] == "charge_not_found"


def test_charge_filters_sub_resource_round_trip(api: httpx.Client) -> None:
    metric = create_metric(api)
    create_plan(api, [charge(metric, package("1", 10), code="a")])
    base = "/plans/pro/charges/a/filters"

    created = ok(
        api.post(base, json={"filter": price({"model": ["gpt-4o"]}, package("3", 10))})
    )["filter"]
    updated = ok(
        api.put(
            f"{base}/{created['lago_id']}",
            json={
                "filter": {
                    "invoice_display_name": "GPT",
                    "properties": package("4", 10),
                }
            },
        )
    )["filter"]
    listed = ok(api.get(base))
    deleted = ok(api.delete(f"{base}/{created['lago_id']}"))

    assert created["charge_code"] == "a"
    assert (updated["invoice_display_name"], updated["values"]) == (
        "GPT",
        {"model": ["gpt-4o"]},
    )
    assert updated["properties"]["amount"] == "4"
    assert [item["lago_id"] for item in listed["filters"]] == [created["lago_id"]]
    assert deleted["filter"]["lago_id"] == created["lago_id"]
    assert api.get(f"{base}/{created['lago_id']}").status_code == 404


def test_delete_terminates_subscriptions_and_frees_the_code(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    create_plan(api, [charge(metric, package("1", 10))])
    subscribe(api)

    deleted = ok(api.delete("/plans/pro"))["plan"]

    assert deleted["pending_deletion"] is True
    assert api.get("/plans/pro").status_code == 404
    terminated = ok(api.get("/subscriptions/sub_1", params={"status": "terminated"}))
    assert terminated["subscription"]["status"] == "terminated"
    assert create_plan(api, [])["code"] == "pro"
