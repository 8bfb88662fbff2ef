"""Billable metric rules (lago-api.md §1)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.lago import (
    charge,
    create_metric,
    create_plan,
    ok,
    package,
    price,
    subscribe,
    update_metric,
)


def _charge_filters(api: httpx.Client) -> list[dict[str, Any]]:
    plan = ok(api.get("/plans/pro"))["plan"]
    return plan["charges"][0]["filters"]  # type: ignore[no-any-return]


def test_create_sorts_filters_and_values_and_reports_zero_counters(
    api: httpx.Client,
) -> None:
    metric = create_metric(
        api,
        filters=[
            {"key": "type", "values": ["output", "input", "output"]},
            {"key": "model", "values": ["gpt-4o", "claude-sonnet"]},
        ],
    )

    assert metric["filters"] == [
        {"key": "model", "values": ["claude-sonnet", "gpt-4o"]},
        {"key": "type", "values": ["input", "output"]},
    ]
    assert metric["plans_count"] == metric["active_subscriptions_count"] == 0
    assert (
        "plans_count"
        not in ok(api.get("/billable_metrics/llm_tokens"))["billable_metric"]
    )


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        (
            {"aggregation_type": "median_agg"},
            {"aggregation_type": ["value_is_invalid"]},
        ),
        ({"field_name": None}, {"field_name": ["value_is_mandatory"]}),
        ({"code": ""}, {"code": ["value_is_mandatory"]}),
        (
            {"aggregation_type": "max_agg", "recurring": True},
            {"recurring": ["not_compatible_with_aggregation_type"]},
        ),
        (
            {"filters": [{"key": "model", "values": []}]},
            {"values": ["value_is_mandatory"]},
        ),
        (
            {"rounding_function": "round", "rounding_precision": True},
            {"rounding_precision": ["value_is_invalid"]},
        ),
    ],
    ids=["aggregation", "field-name", "code", "recurring", "empty-filter", "precision"],
)
def test_invalid_metrics_are_422(
    api: httpx.Client, fields: dict[str, Any], details: dict[str, Any]
) -> None:
    payload = {
        "name": "Tokens",
        "code": "tokens",
        "aggregation_type": "sum_agg",
        "field_name": "tokens",
        **fields,
    }

    response = api.post("/billable_metrics", json={"billable_metric": payload})

    assert response.status_code == 422
    assert response.json()["error_details"] == details


def test_count_agg_needs_no_field_name_and_drops_one(api: httpx.Client) -> None:
    metric = create_metric(api, "calls", aggregation_type="count_agg")

    assert metric["field_name"] is None


def test_duplicate_code_is_taken_until_the_metric_is_deleted(
    api: httpx.Client,
) -> None:
    create_metric(api)
    duplicate = api.post(
        "/billable_metrics",
        json={
            "billable_metric": {
                "name": "x",
                "code": "llm_tokens",
                "aggregation_type": "count_agg",
            }
        },
    )
    ok(api.delete("/billable_metrics/llm_tokens"))

    assert duplicate.json()["error_details"] == {"code": ["value_already_exist"]}
    assert create_metric(api)["code"] == "llm_tokens"
    assert api.get("/billable_metrics").json()["meta"]["total_count"] == 1


def test_unused_metric_takes_every_field(api: httpx.Client) -> None:
    create_metric(api)

    updated = update_metric(
        api, "llm_tokens", code="tokens", field_name="count", name="T"
    )

    assert (updated["code"], updated["field_name"], updated["name"]) == (
        "tokens",
        "count",
        "T",
    )
    assert api.get("/billable_metrics/llm_tokens").status_code == 404


def test_metric_used_by_a_plan_keeps_guarded_fields_silently(
    api: httpx.Client,
) -> None:
    metric = create_metric(api)
    create_plan(api, [charge(metric, package("1.00", 1000))])

    updated = update_metric(
        api,
        "llm_tokens",
        code="renamed",
        field_name="count",
        aggregation_type="count_agg",
        name="Renamed",
        description="now described",
    )

    assert (updated["code"], updated["field_name"], updated["aggregation_type"]) == (
        "llm_tokens",
        "tokens",
        "sum_agg",
    )
    assert (updated["name"], updated["description"]) == ("Renamed", "now described")


def _plan_with_region_filters(api: httpx.Client) -> None:
    metric = create_metric(
        api,
        filters=[
            {"key": "region", "values": ["europe", "us"]},
            {"key": "cloud", "values": ["aws", "gcp"]},
        ],
    )
    filters = [
        price({"region": ["us", "europe"]}, package("1.00", 10)),
        price({"region": ["us"], "cloud": ["aws"]}, package("2.00", 10)),
        price({"cloud": ["gcp"]}, package("3.00", 10)),
    ]
    create_plan(api, [charge(metric, package("0", 1), filters)])


def test_removed_metric_values_trim_broaden_and_delete_charge_filters(
    api: httpx.Client,
) -> None:
    _plan_with_region_filters(api)
    ids_before = [item["lago_id"] for item in _charge_filters(api)]

    update_metric(
        api,
        "llm_tokens",
        filters=[
            {"key": "region", "values": ["europe"]},
            {"key": "cloud", "values": ["aws"]},
        ],
    )
    after = _charge_filters(api)

    assert [item["values"] for item in after] == [
        {"region": ["europe"]},
        {"cloud": ["aws"]},
    ]
    assert [item["properties"]["amount"] for item in after] == ["1.00", "2.00"]
    assert [item["lago_id"] for item in after] == ids_before[:2]


def test_removed_metric_key_discards_its_values_in_charge_filters(
    api: httpx.Client,
) -> None:
    _plan_with_region_filters(api)

    update_metric(
        api, "llm_tokens", filters=[{"key": "cloud", "values": ["aws", "gcp"]}]
    )

    assert [item["values"] for item in _charge_filters(api)] == [
        {"cloud": ["aws"]},
        {"cloud": ["gcp"]},
    ]


def test_delete_discards_the_charges_that_use_the_metric(api: httpx.Client) -> None:
    metric = create_metric(api)
    create_plan(api, [charge(metric, package("1.00", 1000))])
    subscribe(api)

    deleted = ok(api.delete("/billable_metrics/llm_tokens"))["billable_metric"]

    assert deleted["code"] == "llm_tokens"
    assert ok(api.get("/plans/pro"))["plan"]["charges"] == []
    assert api.get("/billable_metrics/llm_tokens").json()["code"] == (
        "billable_metric_not_found"
    )


def test_list_is_paginated_newest_first(api: httpx.Client) -> None:
    for index in range(3):
        create_metric(api, f"m{index}", filters=[])

    first = ok(api.get("/billable_metrics", params={"per_page": 2}))
    second = ok(api.get("/billable_metrics", params={"per_page": 2, "page": 2}))

    assert [item["code"] for item in first["billable_metrics"]] == ["m2", "m1"]
    assert first["meta"] == {
        "current_page": 1,
        "next_page": 2,
        "prev_page": None,
        "total_pages": 2,
        "total_count": 3,
    }
    assert [item["code"] for item in second["billable_metrics"]] == ["m0"]
    assert (second["meta"]["next_page"], second["meta"]["prev_page"]) == (None, 1)


def test_an_empty_list_is_page_zero_of_zero(api: httpx.Client) -> None:
    body = ok(api.get("/billable_metrics"))

    assert body == {
        "billable_metrics": [],
        "meta": {
            "current_page": 0,
            "next_page": None,
            "prev_page": None,
            "total_pages": 0,
            "total_count": 0,
        },
    }


@pytest.mark.parametrize(
    "params",
    [{"per_page": 10**30}, {"page": 10**30}, {"page": 2**40, "per_page": 2**40}],
    ids=["huge-per-page", "huge-page", "huge-offset"],
)
def test_huge_page_numbers_are_an_answer_not_a_crash(
    api: httpx.Client, params: dict[str, int]
) -> None:
    create_metric(api, filters=[])

    body = ok(api.get("/billable_metrics", params=params))

    assert body["meta"]["total_count"] == 1
    page = params.get("page", 1)
    assert len(body["billable_metrics"]) == (1 if page == 1 else 0)
