from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.gpt4 import KEY, apply_gpt4, subscribe_to_gpt4
from tests.ingest.conftest import FAST, MakeMeter, assert_balanced
from tokbill.emulator import EmulatorServer
from tokbill.ingest import AsyncTokenMeter, MeterOptions, TokenMeter
from tokbill.ingest._frames import frame
from tokbill.lago import LagoClient
from tokbill.usage import UsageClient

WRITER = Path(__file__).with_name("spool_writer.py")


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def stored_tokens(server: EmulatorServer, subscription: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for event in server.store.events(subscription):
        kind = event["properties"]["type"]
        totals[kind] = totals.get(kind, 0) + event["properties"]["tokens"]
    return totals


def test_one_invalid_event_among_100(
    make_meter: MakeMeter, lago_emulator: EmulatorServer, tmp_path: Path
) -> None:
    lane = tmp_path / "lane-1-1"
    lane.mkdir()
    events = [
        {
            "transaction_id": f"old-{number}",
            "external_subscription_id": "sub_1",
            "code": "llm_tokens",
            "timestamp": "2026-08-01T00:00:00Z" if number == 42 else 1785542400.5,
            "properties": {"model": "gpt-4", "type": "input", "tokens": 10},
        }
        for number in range(100)
    ]
    segment = b"".join(frame(json.dumps(event).encode()) for event in events)
    (lane / "00000001.seg").write_bytes(segment)
    drops: list[str] = []

    meter = make_meter(
        api_url=lago_emulator.url,
        spool_dir=tmp_path,
        on_drop=lambda events, reason: drops.append(reason),
    )
    report = meter.flush(timeout_s=10)

    assert (report.acked, report.quarantined, report.pending) == (99, 1, 0)
    stored = {event["transaction_id"] for event in lago_emulator.store.events()}
    assert len(stored) == 99 and "old-42" not in stored
    assert drops == ["rejected: timestamp: invalid_format"]
    [line] = (tmp_path / "dead-letter.jsonl").read_text().splitlines()
    assert json.loads(line)["event"]["transaction_id"] == "old-42"


def billed_units(server: EmulatorServer, subscription: str) -> dict[str, Decimal]:
    """The units Lago's current usage bills per token type of gpt-4."""
    with UsageClient(server.api_url, "test-key") as client:
        usage = client.current(f"cus_{subscription}", subscription)
    lines = usage.by("model", "type")
    return {
        kind: Decimal(lines[("gpt-4", kind)].to_dict()["units"])
        for kind in ("input", "output")
    }


def test_every_event_lands_once_under_errors_429_storms_and_stalls(
    make_meter: MakeMeter, lago_emulator: EmulatorServer
) -> None:
    apply_gpt4(lago_emulator.api_url)
    with LagoClient(lago_emulator.api_url, KEY) as api:
        subscribe_to_gpt4(api, "cus_sub_chaos", "sub_chaos")
    lago_emulator.faults.update(
        error_rate=0.3, stall_rate=0.05, stall_after_commit_s=0.6, seed=7
    )
    options = MeterOptions(
        linger_s=0.01,
        request_timeout_s=0.3,
        retry_initial_delay_s=0.005,
        retry_max_delay_s=0.05,
    )
    meter = make_meter(api_url=lago_emulator.url, options=options)
    sent = {"input": 0, "output": 0}

    def record(worker: int) -> None:
        for number in range(1500):
            meter.record(
                subscription_id="sub_chaos",
                model="gpt-4",
                input_tokens=number % 97 + 1,
                output_tokens=number % 13 + 1,
                request_id=f"w{worker}-{number}",
            )

    for number in range(1500):
        sent["input"] += (number % 97 + 1) * 2
        sent["output"] += (number % 13 + 1) * 2
    workers = [threading.Thread(target=record, args=(n,)) for n in range(2)]
    for worker in workers:
        worker.start()
    lago_emulator.faults.update(rate_limit_for_s=0.5)
    for worker in workers:
        worker.join()
    report = meter.flush(timeout_s=60)

    stats = meter.stats()
    assert report.complete and stats.acked == 6000 and stats.retried > 0
    events = lago_emulator.store.events("sub_chaos")
    assert len(events) == 6000
    assert len({event["transaction_id"] for event in events}) == 6000
    assert stored_tokens(lago_emulator, "sub_chaos") == sent
    statuses = {entry.status for entry in lago_emulator.requests.entries()}
    assert {200, 429}.issubset(statuses) and statuses & {500, 502, 503}
    lago_emulator.faults.reset()
    assert billed_units(lago_emulator, "sub_chaos") == {
        kind: Decimal(tokens) for kind, tokens in sent.items()
    }


def test_commit_then_timeout_neither_double_counts_nor_stalls(
    make_meter: MakeMeter, lago_emulator: EmulatorServer
) -> None:
    lago_emulator.faults.update(stall_after_commit_s=1.0, stall_count=1)
    # One batch, sent by the flush: the one request that stalls holds all.
    options = MeterOptions(
        linger_s=30.0, request_timeout_s=0.3, retry_initial_delay_s=0.01
    )
    meter = make_meter(api_url=lago_emulator.url, options=options)

    for number in range(50):
        meter.record(
            subscription_id="sub_1",
            model="gpt-4",
            input_tokens=3,
            output_tokens=1,
            request_id=f"r{number}",
        )
    report = meter.flush(timeout_s=10)

    assert report.complete and report.acked == 100 and report.quarantined == 0
    assert lago_emulator.store.event_count() == 100
    assert [e.status for e in lago_emulator.requests.writes()] == [200, 422]


def test_kill_9_then_restart_delivers_everything_once(
    make_meter: MakeMeter, lago_emulator: EmulatorServer, tmp_path: Path
) -> None:
    lago_emulator.faults.update(latency_s=0.05)
    with subprocess.Popen(
        [sys.executable, str(WRITER), lago_emulator.url, str(tmp_path), "2000"],
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "recorded\n"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    delivered_before = lago_emulator.store.event_count()
    lago_emulator.faults.reset()

    meter = make_meter(api_url=lago_emulator.url, spool_dir=tmp_path)
    report = meter.flush(timeout_s=30)

    assert writer.returncode == -signal.SIGKILL
    assert delivered_before < 4000
    assert report.complete and meter.stats().recovered >= 4000 - delivered_before
    events = lago_emulator.store.events("sub_killed")
    assert len(events) == 4000
    assert len({event["transaction_id"] for event in events}) == 4000
    assert stored_tokens(lago_emulator, "sub_killed") == {
        "input": sum(range(1, 2001)),
        "output": 2000,
    }


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
def test_flush_and_close_return_against_a_hung_server(
    make_meter: MakeMeter, hung_url: str, tmp_path: Path, spooled: bool
) -> None:
    options = MeterOptions(linger_s=0.01, senders=2, request_timeout_s=30)
    errors: list[Exception] = []
    meter = make_meter(
        api_url=hung_url,
        options=options,
        spool_dir=tmp_path if spooled else None,
        on_error=errors.append,
    )
    for number in range(300):
        meter.record(
            subscription_id="s",
            model="m",
            input_tokens=1,
            output_tokens=1,
            request_id=f"r{number}",
        )

    flushed = meter.flush(timeout_s=0.3)
    closed = meter.close(timeout_s=0.3)

    # No request has timed out yet: both calls kept their own deadline and
    # did not wait for request_timeout_s.
    assert errors == []
    assert not flushed.complete and flushed.pending == 600
    assert not closed.complete and closed.acked == 0
    assert closed.recorded == closed.pending + closed.dropped == 600
    if spooled:
        assert closed.pending == 600
    else:
        assert closed.dropped > 0
    assert_balanced(meter)


def record_calls_for(meter: TokenMeter, subscription: str, calls: int) -> None:
    for number in range(calls):
        meter.record(
            subscription_id=subscription,
            model="gpt-4",
            input_tokens=5,
            output_tokens=1,
            request_id=f"{subscription}-{number}",
        )


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
def test_a_forked_child_sends_its_own_events_only(
    lago_emulator: EmulatorServer, tmp_path: Path, spooled: bool
) -> None:
    slow = MeterOptions(linger_s=5.0)
    meter = TokenMeter(
        api_url=lago_emulator.url,
        api_key="test-key",
        options=slow,
        spool_dir=tmp_path if spooled else None,
    )
    record_calls_for(meter, "parent", 10)
    assert meter.flush(timeout_s=10).complete
    record_calls_for(meter, "late", 5)

    pid = os.fork()
    if pid == 0:
        record_calls_for(meter, "child", 7)
        report = meter.close(timeout_s=10)
        os._exit(0 if (report.recorded, report.acked) == (14, 14) else 3)
    _, status = os.waitpid(pid, 0)
    report = meter.close(timeout_s=10)

    assert os.waitstatus_to_exitcode(status) == 0
    assert report.acked == 30
    counts = {
        sub: len(lago_emulator.store.events(sub)) for sub in ("parent", "late", "child")
    }
    assert counts == {"parent": 20, "late": 10, "child": 14}
    assert all(e.status == 200 for e in lago_emulator.requests.writes())


def test_the_async_meter_flushes_without_blocking_the_loop(
    lago_emulator: EmulatorServer,
) -> None:
    lago_emulator.faults.update(latency_s=0.2)

    async def main() -> tuple[int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        async with AsyncTokenMeter(
            api_url=lago_emulator.url, api_key="test-key", options=FAST
        ) as meter:
            record_calls_for(meter, "async", 20)
            report = await meter.flush(timeout_s=10)
        ticker.cancel()
        return report.acked, ticks

    acked, ticks = asyncio.run(main())

    assert acked == 40
    assert ticks >= 5
    assert len(lago_emulator.store.events("async")) == 40
