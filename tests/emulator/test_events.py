"""Event ingestion rules of Lago's Postgres store (lago-api.md §4)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.lago import event, ok
from tokbill.emulator import EmulatorServer


def _batch(api: httpx.Client, events: list[dict[str, Any]]) -> httpx.Response:
    return api.post("/events/batch", json={"events": events})


def _errors(response: httpx.Response) -> Any:
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["status"], body["code"]) == (422, "validation_errors")
    return body["error_details"]


def test_batch_is_stored_and_echoed(
    api: httpx.Client, lago_emulator: EmulatorServer
) -> None:
    events = [event({"tokens": n}, timestamp=1_700_000_000 + n) for n in range(3)]

    body = ok(_batch(api, events))

    assert [item["transaction_id"] for item in body["events"]] == [
        item["transaction_id"] for item in events
    ]
    assert body["events"][1]["timestamp"] == "2023-11-14T22:13:21.000Z"
    assert body["events"][1]["properties"] == {"tokens": 1}
    assert len(lago_emulator.store.events("sub_1")) == 3


def test_invalid_event_rejects_the_whole_batch_with_indexed_errors(
    api: httpx.Client, lago_emulator: EmulatorServer
) -> None:
    events = [
        event({}),
        event({}, timestamp="2024-01-01T00:00:00Z"),
        {**event({}), "transaction_id": ""},
        {**event({}), "code": None},
    ]

    details = _errors(_batch(api, events))

    assert details == {
        "1": {"timestamp": ["invalid_format"]},
        "2": {"transaction_id": ["value_is_mandatory"]},
        "3": {"code": ["value_is_mandatory"]},
    }
    assert lago_emulator.store.events() == []


@pytest.mark.parametrize(
    ("timestamp", "shown"),
    [
        (1651240791, "2022-04-29T13:59:51.000Z"),
        (1651240791.987, "2022-04-29T13:59:51.987Z"),
        ("1651240791.123", "2022-04-29T13:59:51.123Z"),
        (" 1651240791 ", "2022-04-29T13:59:51.000Z"),
    ],
    ids=["int", "float", "numeric-string", "padded-string"],
)
def test_unix_second_timestamps_are_accepted(
    api: httpx.Client, timestamp: Any, shown: str
) -> None:
    body = ok(api.post("/events", json={"event": event({}, timestamp=timestamp)}))

    assert body["event"]["timestamp"] == shown


@pytest.mark.parametrize(
    "timestamp",
    ["2022-04-29T13:59:51Z", "Fri, 29 Apr 2022", "NaN", "", True],
    ids=["iso", "text", "nan", "empty", "true"],
)
def test_other_timestamps_are_an_invalid_format(
    api: httpx.Client, timestamp: Any
) -> None:
    response = api.post("/events", json={"event": event({}, timestamp=timestamp)})

    assert _errors(response) == {"timestamp": ["invalid_format"]}


@pytest.mark.parametrize(
    "timestamp",
    ["absent", None, False, {"s": 1}, [1651240791]],
    ids=["absent", "null", "false", "object", "array"],
)
def test_missing_timestamp_means_now(pinned_api: httpx.Client, timestamp: Any) -> None:
    # Rails' permit(:timestamp) drops objects and arrays, and Lago reads a
    # falsy timestamp as "now".
    payload = {key: value for key, value in event({}).items() if key != "timestamp"}
    if timestamp != "absent":
        payload["timestamp"] = timestamp

    body = ok(pinned_api.post("/events", json={"event": payload}))

    assert body["event"]["timestamp"] == "2026-08-15T12:00:00.000Z"


def test_an_object_where_a_scalar_belongs_is_a_missing_field(
    api: httpx.Client,
) -> None:
    payload = {**event({}), "transaction_id": {"id": "t"}, "code": ["llm_tokens"]}

    response = api.post("/events/batch", json={"events": [payload]})

    assert _errors(response) == {
        "0": {
            "transaction_id": ["value_is_mandatory"],
            "code": ["value_is_mandatory"],
        }
    }


def test_duplicate_in_store_fails_its_index_and_rolls_back_the_batch(
    api: httpx.Client, lago_emulator: EmulatorServer
) -> None:
    first = event({})
    ok(_batch(api, [first]))

    details = _errors(_batch(api, [event({}), first, event({})]))

    assert details == {"1": {"transaction_id": ["value_already_exist"]}}
    assert len(lago_emulator.store.events()) == 1


def test_repeats_within_a_batch_fail_from_the_second_occurrence(
    api: httpx.Client,
) -> None:
    same = event({})

    details = _errors(_batch(api, [same, same, same]))

    assert details == {
        "1": {"transaction_id": ["value_already_exist"]},
        "2": {"transaction_id": ["value_already_exist"]},
    }


def test_duplicates_are_reported_only_once_formats_are_clean(
    api: httpx.Client,
) -> None:
    same = event({})
    ok(_batch(api, [same]))
    bad = event({}, timestamp="yesterday")

    first = _errors(_batch(api, [same, bad]))
    second = _errors(_batch(api, [same, {**bad, "timestamp": 1}]))

    assert first == {"1": {"timestamp": ["invalid_format"]}}
    assert second == {"0": {"transaction_id": ["value_already_exist"]}}


def test_same_transaction_id_on_another_subscription_is_a_new_event(
    api: httpx.Client, lago_emulator: EmulatorServer
) -> None:
    first = event({}, subscription="sub_1")

    ok(_batch(api, [first]))
    ok(_batch(api, [{**first, "external_subscription_id": "sub_2"}]))

    assert len(lago_emulator.store.events()) == 2


def test_one_batch_repeating_an_id_for_two_subscriptions_fails_the_second(
    api: httpx.Client, lago_emulator: EmulatorServer
) -> None:
    # Lago matches the inserted rows back to the batch by transaction id only.
    first = event({}, subscription="sub_1")
    other = {**first, "external_subscription_id": "sub_2"}
    without = {**first, "external_subscription_id": None}

    details = _errors(_batch(api, [first, other, without, without]))

    taken = {"transaction_id": ["value_already_exist"]}
    assert details == {"1": taken, "2": taken, "3": taken}
    assert lago_emulator.store.events() == []


def test_single_duplicate_is_value_already_exist(api: httpx.Client) -> None:
    payload = {"event": event({})}
    ok(api.post("/events", json=payload))

    response = api.post("/events", json=payload)

    assert _errors(response) == {"transaction_id": ["value_already_exist"]}


@pytest.mark.parametrize(
    ("events", "code"),
    [([], "no_events"), (None, "no_events"), ([{}] * 101, "too_many_events")],
    ids=["empty", "missing", "101"],
)
def test_batch_size_limits(
    api: httpx.Client, events: list[dict[str, Any]] | None, code: str
) -> None:
    body = {} if events is None else {"events": events}

    response = api.post("/events/batch", json=body)

    assert _errors(response) == {"events": [code]}


def test_unknown_code_and_subscription_are_accepted(api: httpx.Client) -> None:
    payload = event({"x": 1}, code="nobody_knows", subscription="ghost")

    body = ok(api.post("/events", json={"event": payload}))

    assert body["event"]["code"] == "nobody_knows"
    assert body["event"]["lago_subscription_id"] is None


def test_get_by_transaction_id_and_404(api: httpx.Client) -> None:
    payload = event({"tokens": 5})
    ok(api.post("/events", json={"event": payload}))

    found = ok(api.get(f"/events/{payload['transaction_id']}"))
    missing = api.get("/events/nope")

    assert found["event"]["properties"] == {"tokens": 5}
    assert missing.status_code == 404
    assert missing.json()["code"] == "event_not_found"


def test_list_filters_by_subscription_code_and_time(api: httpx.Client) -> None:
    ok(
        _batch(
            api,
            [
                event({}, subscription="a", timestamp=1_700_000_000),
                event({}, subscription="a", timestamp=1_800_000_000),
                event({}, subscription="b", timestamp=1_700_000_000),
                event({}, subscription="a", code="other", timestamp=1_700_000_000),
            ],
        )
    )

    body = ok(
        api.get(
            "/events",
            params={
                "external_subscription_id": "a",
                "code": "llm_tokens",
                "timestamp_to": "2024-01-01T00:00:00Z",
            },
        )
    )

    assert [item["timestamp"] for item in body["events"]] == [
        "2023-11-14T22:13:20.000Z"
    ]
    assert body["meta"]["total_count"] == 1
