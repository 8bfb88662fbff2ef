from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from tests.ingest.conftest import MakeMeter
from tests.ingest.fake_lago import fake_lago
from tokbill.ingest import MeterOptions, anthropic_usage, openai_usage

Load = Callable[[str], Any]


@pytest.mark.parametrize(
    ("fixture", "model", "request_id", "tokens"),
    [
        (
            "openai_chat_completion.json",
            "gpt-4-0613",
            "chatcmpl-AhF3kXoQ8n2Vb7Qm1",
            (300, 144, 512),
        ),
        (
            "openai_chat_stream_final_chunk.json",
            "gpt-4-0613",
            "chatcmpl-AhF4qStr3amU5age",
            (40, 7, 0),
        ),
        (
            "openai_response.json",
            "gpt-4.1-2025-04-14",
            "resp_67ccd2bed1ec8190b14f964abc054267",
            (36, 87, 0),
        ),
        (
            "openai_response_completed_event.json",
            "gpt-4.1-mini-2025-04-14",
            "resp_68a1c0ffee00stream",
            (176, 300, 1024),
        ),
    ],
)
def test_openai_usage_shapes(
    load_fixture: Load,
    fixture: str,
    model: str,
    request_id: str,
    tokens: tuple[int, int, int],
) -> None:
    usage = openai_usage(load_fixture(fixture))

    assert (usage.model, usage.response_id) == (model, request_id)
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens) == tokens


@pytest.mark.parametrize(
    ("fixture", "model", "tokens"),
    [
        ("anthropic_message.json", "claude-sonnet-4-20250514", (2095, 503, 0, 0)),
        (
            "anthropic_message_cached.json",
            "claude-3-5-sonnet-20241022",
            (21, 393, 1000, 188086),
        ),
        (
            "anthropic_message_start_event.json",
            "claude-3-5-haiku-20241022",
            (25, 1, 0, 0),
        ),
    ],
)
def test_anthropic_usage_shapes(
    load_fixture: Load, fixture: str, model: str, tokens: tuple[int, ...]
) -> None:
    usage = anthropic_usage(load_fixture(fixture))

    assert usage.model == model
    assert (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
    ) == tokens


def test_sdk_objects_are_read_by_attribute() -> None:
    details = SimpleNamespace(cached_tokens=10)
    response = SimpleNamespace(
        id="chatcmpl-obj",
        model="gpt-4",
        usage=SimpleNamespace(
            prompt_tokens=50, completion_tokens=5, prompt_tokens_details=details
        ),
    )

    usage = openai_usage(response)

    assert (usage.input_tokens, usage.cache_read_tokens, usage.output_tokens) == (
        40,
        10,
        5,
    )


def test_a_chunk_without_usage_is_refused(load_fixture: Load) -> None:
    with pytest.raises(ValueError, match="include_usage"):
        openai_usage(load_fixture("openai_chat_stream_middle_chunk.json"))


def test_record_openai_sends_the_response_usage(
    make_meter: MakeMeter, load_fixture: Load
) -> None:
    meter = make_meter()

    with fake_lago() as lago:
        meter.record_openai(
            load_fixture("openai_chat_completion.json"), subscription_id="sub_1"
        )
        meter.flush(timeout_s=5)

    sent = {e["transaction_id"]: e["properties"] for e in lago.sent}
    assert sent == {
        "chatcmpl-AhF3kXoQ8n2Vb7Qm1:input": {
            "model": "gpt-4-0613",
            "type": "input",
            "tokens": 812,
        },
        "chatcmpl-AhF3kXoQ8n2Vb7Qm1:output": {
            "model": "gpt-4-0613",
            "type": "output",
            "tokens": 144,
        },
    }


def test_record_anthropic_can_price_cache_tokens_apart(
    make_meter: MakeMeter, load_fixture: Load
) -> None:
    meter = make_meter(options=MeterOptions(linger_s=0.01, cache_tokens="separate"))

    with fake_lago() as lago:
        meter.record_anthropic(
            load_fixture("anthropic_message_cached.json"),
            subscription_id="sub_1",
            request_id="call-9",
        )
        meter.flush(timeout_s=5)

    sent = {e["properties"]["type"]: e["properties"]["tokens"] for e in lago.sent}
    assert sent == {
        "input": 21,
        "output": 393,
        "cache_read": 1000,
        "cache_write": 188086,
    }
    assert {e["transaction_id"] for e in lago.sent} == {
        "call-9:input",
        "call-9:output",
        "call-9:cache_read",
        "call-9:cache_write",
    }


def test_a_usage_only_event_needs_an_explicit_model(make_meter: MakeMeter) -> None:
    meter = make_meter()
    delta = {"type": "message_delta", "usage": {"output_tokens": 15}}

    with pytest.raises(ValueError, match="model="):
        meter.record_anthropic(delta, subscription_id="s")
    with fake_lago() as lago:
        meter.record_anthropic(delta, subscription_id="s", model="claude-3-5-haiku")
        meter.flush(timeout_s=5)

    assert lago.sent[0]["properties"]["tokens"] == 15


@pytest.mark.parametrize(
    ("answered", "priced", "recorded"),
    [
        ("gpt-4-0613", {"gpt-4", "gpt-4-32k"}, "gpt-4"),
        ("gpt-4-32k-0613", {"gpt-4", "gpt-4-32k"}, "gpt-4-32k"),
        ("gpt-4o-2024-08-06", {"gpt-4o"}, "gpt-4o"),
        ("gpt-4-0613", {"gpt-4", "gpt-4-0613"}, "gpt-4-0613"),
        ("gpt-4-turbo-2024-04-09", {"gpt-4"}, "gpt-4-turbo-2024-04-09"),
        ("gpt-4-0613-preview", {"gpt-4"}, "gpt-4-0613-preview"),
    ],
    ids=["dated", "dated-32k", "iso-date", "snapshot-priced", "other-model", "tail"],
)
def test_a_dated_snapshot_is_recorded_as_the_model_the_template_prices(
    make_meter: MakeMeter, answered: str, priced: set[str], recorded: str
) -> None:
    meter = make_meter(known_models=priced)
    response = {
        "id": "chatcmpl-1",
        "model": answered,
        "usage": {"prompt_tokens": 7, "completion_tokens": 0},
    }

    with fake_lago() as lago:
        meter.record_openai(response, subscription_id="sub_1")
        meter.flush(timeout_s=5)

    assert [e["properties"]["model"] for e in lago.sent] == [recorded]


def test_an_anthropic_snapshot_is_undated_and_an_explicit_model_wins(
    make_meter: MakeMeter,
) -> None:
    meter = make_meter(known_models={"claude-sonnet-4", "claude-opus-4"})
    message = {
        "id": "msg_1",
        "model": "claude-sonnet-4-20250514",
        "usage": {"input_tokens": 5, "output_tokens": 0},
    }

    with fake_lago() as lago:
        meter.record_anthropic(message, subscription_id="s", request_id="a")
        meter.record_anthropic(
            message, subscription_id="s", request_id="b", model="claude-opus-4"
        )
        meter.flush(timeout_s=5)

    models = {e["transaction_id"]: e["properties"]["model"] for e in lago.sent}
    assert models == {"a:input": "claude-sonnet-4", "b:input": "claude-opus-4"}
