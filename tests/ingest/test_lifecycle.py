from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from tests.ingest.conftest import MakeMeter, record_calls, wait_until
from tests.ingest.fake_lago import Event, fake_lago, ok
from tokbill.emulator import EmulatorServer
from tokbill.ingest import DropReason, MeterOptions

EXITING_WRITER = textwrap.dedent(
    """
    import gc, sys
    from tokbill.ingest import MeterOptions, TokenMeter

    def record(url, keep):
        meter = TokenMeter(api_url=url, api_key="k",
                           options=MeterOptions(linger_s=30.0))
        for number in range(5):
            meter.record(subscription_id="sub_exit", model="m",
                         input_tokens=number + 1, output_tokens=0,
                         request_id=f"exit-{number}")
        return meter if keep else None

    kept = record(sys.argv[1], sys.argv[2] == "keep")
    gc.collect()
    """
)


def ingest_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("tokbill")}


def test_no_thread_starts_before_first_use(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    before = ingest_threads()

    meter = make_meter(spool_dir=tmp_path)
    idle = ingest_threads()
    with fake_lago():
        record_calls(meter, 1)
        busy = ingest_threads()
        meter.close(timeout_s=5)

    assert not idle - before
    assert busy - before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("reference", ["keep", "drop"])
def test_interpreter_exit_delivers_what_is_left(
    lago_emulator: EmulatorServer, reference: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", EXITING_WRITER, lago_emulator.url, reference],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    events = lago_emulator.store.events("sub_exit")
    assert sorted(e["properties"]["tokens"] for e in events) == [1, 2, 3, 4, 5]


def test_a_closed_meter_starts_nothing(make_meter: MakeMeter, tmp_path: Path) -> None:
    meter = make_meter(spool_dir=tmp_path)
    meter.close(timeout_s=1)
    before = ingest_threads()

    with fake_lago() as lago:
        record_calls(meter, 1)
        report = meter.flush(timeout_s=1)

    assert not ingest_threads() - before
    assert list(tmp_path.iterdir()) == []
    assert report.complete and lago.sent == []
    assert meter.stats().dropped == {DropReason.CLOSED: 2}


def test_records_refused_during_close_do_not_cut_its_drain_short(
    make_meter: MakeMeter,
) -> None:
    options = MeterOptions(linger_s=30.0, batch_size=1)
    meter = make_meter(options=options)
    first = threading.Lock()

    def script(events: list[Event]) -> httpx.Response:
        if not first.acquire(blocking=False):
            return ok(events)
        # While this call waits, another is acked, and records made after
        # close began are refused: neither may end close's wait for it.
        record_calls(meter, 2, prefix="late")
        wait_until(lambda: meter.stats().acked >= 2)
        return httpx.Response(429, headers={"Retry-After": "0.3"})

    with fake_lago(script):
        record_calls(meter, 2)
        report = meter.close(timeout_s=5)

    assert report.complete and report.acked == 4
    assert meter.stats().dropped == {DropReason.CLOSED: 4}
