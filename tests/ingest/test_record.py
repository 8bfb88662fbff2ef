from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import tokbill
from tests.ingest.conftest import FAST, MakeMeter
from tests.ingest.fake_lago import fake_lago
from tokbill.ingest import AsyncTokenMeter, MeterOptions, TokenMeter

TEMPLATES = Path(__file__).parents[2] / "templates"


def test_one_call_becomes_one_event_per_token_type(make_meter: MakeMeter) -> None:
    meter = make_meter()

    with fake_lago() as lago:
        before = time.time()
        meter.record(
            subscription_id="sub_1",
            model="gpt-4",
            input_tokens=812,
            output_tokens=144,
            request_id="chatcmpl-123",
            properties={"region": "eu", "latency_ms": 420},
        )
        report = meter.flush(timeout_s=5)

    assert report.complete and report.acked == 2
    first, second = sorted(lago.sent, key=lambda event: event["transaction_id"])
    assert first == {
        "transaction_id": "chatcmpl-123:input",
        "external_subscription_id": "sub_1",
        "code": "llm_tokens",
        "timestamp": first["timestamp"],
        "properties": {
            "model": "gpt-4",
            "type": "input",
            "tokens": 812,
            "region": "eu",
            "latency_ms": 420,
        },
    }
    assert second["transaction_id"] == "chatcmpl-123:output"
    assert second["properties"]["tokens"] == 144
    assert first["timestamp"] == second["timestamp"]
    assert isinstance(first["timestamp"], float)
    assert before <= first["timestamp"] <= time.time()


def test_zero_token_types_send_nothing(make_meter: MakeMeter) -> None:
    meter = make_meter()

    with fake_lago() as lago:
        meter.record(subscription_id="s", model="m", input_tokens=0, output_tokens=7)
        meter.record(subscription_id="s", model="m", input_tokens=0, output_tokens=0)
        meter.flush(timeout_s=5)

    assert [event["properties"]["type"] for event in lago.sent] == ["output"]
    assert meter.stats().recorded == 1


def test_calls_without_request_id_get_unique_ids(make_meter: MakeMeter) -> None:
    meter = make_meter()

    with fake_lago() as lago:
        for _ in range(50):
            meter.record(
                subscription_id="s", model="m", input_tokens=1, output_tokens=1
            )
        meter.flush(timeout_s=5)

    ids = [event["transaction_id"] for event in lago.sent]
    assert len(ids) == 100 and len(set(ids)) == 100


def test_a_given_timestamp_is_kept(make_meter: MakeMeter) -> None:
    meter = make_meter()
    moment = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)

    with fake_lago() as lago:
        meter.record(
            subscription_id="s",
            model="m",
            input_tokens=1,
            output_tokens=0,
            timestamp=moment,
        )
        meter.record(
            subscription_id="s",
            model="m",
            input_tokens=1,
            output_tokens=0,
            timestamp=1767225600.5,
        )
        meter.flush(timeout_s=5)

    stamps = sorted(event["timestamp"] for event in lago.sent)
    assert stamps == [1767225600.5, moment.timestamp()]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"input_tokens": -1}, ValueError, "input_tokens must not be negative"),
        ({"output_tokens": 1.5}, TypeError, "output_tokens must be an integer"),
        ({"input_tokens": True}, TypeError, "input_tokens must be an integer"),
        ({"input_tokens": "12"}, TypeError, "input_tokens must be an integer"),
        ({"subscription_id": ""}, ValueError, "subscription_id must not be empty"),
        ({"subscription_id": None}, TypeError, "subscription_id must be a string"),
        ({"model": ""}, ValueError, "model must not be empty"),
        ({"request_id": ""}, ValueError, "request_id must not be empty"),
        ({"timestamp": math.nan}, ValueError, "finite"),
        ({"timestamp": 1767225600000}, ValueError, "looks like milliseconds"),
        ({"timestamp": datetime(2026, 1, 1)}, ValueError, "timezone-aware"),
        ({"timestamp": "2026-01-01"}, TypeError, "Unix seconds or a datetime"),
        ({"properties": {"model": "x"}}, ValueError, "set by the meter"),
        ({"properties": {"tags": ["a"]}}, TypeError, "string or a number"),
        ({"properties": "tier=pro"}, TypeError, "properties must be a mapping"),
        ({"properties": [("tier", "pro")]}, TypeError, "must be a mapping"),
        ({"properties": {"x": "y" * 40_000}}, ValueError, "max_event_bytes"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_invalid_input_raises_and_records_nothing(
    make_meter: MakeMeter,
    changes: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    meter = make_meter()
    arguments: dict[str, Any] = {
        "subscription_id": "sub_1",
        "model": "gpt-4",
        "input_tokens": 10,
        "output_tokens": 5,
        "request_id": "r-1",
    }

    with pytest.raises(error, match=message):
        meter.record(**{**arguments, **changes})

    assert meter.stats().recorded == 0


@pytest.mark.parametrize(
    ("cache_tokens", "expected"),
    [
        ("input", {"input": 1300, "output": 20}),
        (
            "separate",
            {"input": 100, "output": 20, "cache_read": 1000, "cache_write": 200},
        ),
    ],
)
def test_cached_tokens_follow_the_option(
    make_meter: MakeMeter, cache_tokens: Any, expected: dict[str, int]
) -> None:
    options = MeterOptions(linger_s=0.01, cache_tokens=cache_tokens)
    meter = make_meter(options=options)

    with fake_lago() as lago:
        meter.record(
            subscription_id="s",
            model="m",
            input_tokens=100,
            output_tokens=20,
            cache_read_tokens=1000,
            cache_write_tokens=200,
            request_id="r",
        )
        meter.flush(timeout_s=5)

    sent = {e["properties"]["type"]: e["properties"]["tokens"] for e in lago.sent}
    assert sent == expected


def test_from_template_uses_the_charged_metric(
    caplog: pytest.LogCaptureFixture,
) -> None:
    meter = TokenMeter.from_template(
        TEMPLATES / "gpt4.yaml", api_url="http://lago.test", options=FAST
    )

    with fake_lago() as lago:
        meter.record(
            subscription_id="s",
            model="gpt-4",
            input_tokens=5,
            output_tokens=0,
            request_id="a",
        )
        for number in range(3):
            meter.record(
                subscription_id="s",
                model="gpt-5",
                input_tokens=5,
                output_tokens=5,
                request_id=f"b{number}",
            )
        meter.close(timeout_s=5)

    assert meter.metric_code == "llm_tokens"
    assert {event["code"] for event in lago.sent} == {"llm_tokens"}
    assert len(lago.sent) == 7
    assert meter.stats().unpriced == {"model=gpt-5": 6}
    warnings = [r for r in caplog.records if "model=gpt-5" in r.getMessage()]
    assert len(warnings) == 1
    assert "no filter value of the metric llm_tokens;" in warnings[0].getMessage()


def test_from_template_maps_renamed_filter_keys(tmp_path: Path) -> None:
    template = tmp_path / "custom.yaml"
    template.write_text(
        "version: 1\n"
        "billable_metrics:\n"
        "  - code: tokens_used\n"
        "    name: Tokens used\n"
        "    aggregation_type: sum_agg\n"
        "    field_name: count\n"
        "    filters:\n"
        "      llm: [small, large]\n"
        "      direction: [input, output]\n"
    )
    meter = TokenMeter.from_template(template, api_url="http://lago.test", options=FAST)

    with fake_lago() as lago:
        meter.record(
            subscription_id="s",
            model="small",
            input_tokens=3,
            output_tokens=0,
            request_id="x",
        )
        meter.close(timeout_s=5)

    assert lago.sent[0]["code"] == "tokens_used"
    assert lago.sent[0]["properties"] == {
        "llm": "small",
        "direction": "input",
        "count": 3,
    }


def test_from_env_reads_the_connection(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LAGO_API_URL", "http://lago.test/")
    monkeypatch.setenv("LAGO_API_KEY", "env-key-0000111122223333")
    monkeypatch.setenv("TOKBILL_SPOOL_DIR", str(tmp_path / "spool"))

    meter = TokenMeter.from_env(options=FAST)

    with fake_lago() as lago:
        meter.record(subscription_id="s", model="m", input_tokens=1, output_tokens=0)
        meter.close(timeout_s=5)

    assert meter.api_url == "http://lago.test/api/v1"
    assert lago.headers[0]["authorization"] == "Bearer env-key-0000111122223333"
    assert "env-key-0000111122223333" not in repr(meter)
    assert repr(str(tmp_path / "spool")) in repr(meter)
    assert (tmp_path / "spool").is_dir()


def test_from_env_takes_a_url_or_key_given_as_none_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAGO_API_URL", "http://lago.test/")
    monkeypatch.setenv("LAGO_API_KEY", "env-key-0000111122223333")
    monkeypatch.delenv("TOKBILL_SPOOL_DIR", raising=False)

    meter = TokenMeter.from_env(api_url=None, api_key=None, options=FAST)

    with fake_lago() as lago:
        meter.record(subscription_id="s", model="m", input_tokens=1, output_tokens=0)
        meter.close(timeout_s=5)
    assert meter.api_url == "http://lago.test/api/v1"
    assert lago.headers[0]["authorization"] == "Bearer env-key-0000111122223333"


def test_the_meters_are_exported_at_the_top() -> None:
    assert tokbill.TokenMeter is TokenMeter
    assert tokbill.AsyncTokenMeter is AsyncTokenMeter
