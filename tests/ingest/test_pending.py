from __future__ import annotations

import threading
from pathlib import Path

import httpx

from tests.ingest.conftest import FAST, MakeMeter, record_calls
from tests.ingest.fake_lago import Event, fake_lago, invalid, ok, unavailable
from tests.threads import join_meter_threads
from tokbill.ingest import MeterOptions


def ids(events: list[dict[str, object]]) -> list[object]:
    return sorted(event["transaction_id"] for event in events)


def test_pending_events_are_what_lago_has_not_acknowledged(
    make_meter: MakeMeter,
) -> None:
    gate = threading.Event()

    def after_gate(events: list[Event]) -> httpx.Response:
        return ok(events) if gate.is_set() else httpx.Response(503)

    meter = make_meter()
    with fake_lago(after_gate):
        record_calls(meter, 3)
        meter.record(
            subscription_id="sub_2",
            model="gpt-4",
            input_tokens=7,
            output_tokens=0,
            request_id="other",
            properties={"region": "eu"},
        )
        pending = meter.pending_events("sub_1")
        other = meter.pending_events("sub_2")
        gate.set()
        meter.flush(timeout_s=5)
        after = meter.pending_events("sub_1")

    assert ids(pending) == [
        f"req-{n}:{kind}" for n in range(3) for kind in ("input", "output")
    ]
    [event] = other
    assert event == {
        "transaction_id": "other:input",
        "external_subscription_id": "sub_2",
        "code": "llm_tokens",
        "timestamp": event["timestamp"],
        "properties": {"model": "gpt-4", "type": "input", "tokens": 7, "region": "eu"},
    }
    assert after == []


def test_events_recovered_or_spilled_to_disk_are_listed_once(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    first = make_meter(spool_dir=tmp_path)
    with fake_lago(unavailable):
        record_calls(first, 150)
        first.close(timeout_s=0.2)
    join_meter_threads()
    options = MeterOptions(linger_s=0.01, batch_size=50, max_buffered_events=100)
    second = make_meter(spool_dir=tmp_path, options=options)
    with fake_lago(unavailable):
        second.flush(timeout_s=0.3)
        record_calls(second, 150, prefix="new")
        pending = second.pending_events("sub_1")
        stats = second.stats()

    recorded = [
        f"{prefix}-{n}:{kind}"
        for prefix in ("req", "new")
        for n in range(150)
        for kind in ("input", "output")
    ]
    assert ids(pending) == sorted(recorded)
    assert stats.pending == len(recorded)


def test_a_call_split_by_lagos_answer_is_not_resent_after_a_restart(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    def reject_outputs(events: list[Event]) -> httpx.Response:
        bad = [i for i, e in enumerate(events) if e["properties"]["type"] == "output"]
        if not bad:
            return ok(events)
        return invalid({str(i): {"properties": ["invalid_value"]} for i in bad})

    first = make_meter(spool_dir=tmp_path)
    with fake_lago(reject_outputs) as lago:
        record_calls(first, 5)
        report = first.flush(timeout_s=5)
        first.close(timeout_s=1)
    second = make_meter(spool_dir=tmp_path, options=FAST)
    with fake_lago() as after:
        second.flush(timeout_s=1)

    assert (report.acked, report.quarantined, report.pending) == (5, 5, 0)
    assert sorted(lago.stored) == [f"req-{n}:input" for n in range(5)]
    assert second.stats().recovered == 0 and after.sent == []
