from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import httpx
import pytest

from tests.ingest.conftest import (
    FAST,
    MakeMeter,
    assert_balanced,
    record_calls,
    wait_until,
)
from tests.ingest.fake_lago import Event, fake_lago, invalid, ok, unavailable
from tests.threads import join_meter_threads
from tokbill.ingest import DropReason, MeterOptions
from tokbill.ingest._frames import frame, read_frames


def lanes(spool: Path) -> list[Path]:
    return sorted(path for path in spool.iterdir() if path.name.startswith("lane-"))


def dead_lane_segment(make_meter: MakeMeter, spool: Path) -> Path:
    """Leave 10 unsent calls in a lane of ``spool`` whose meter is gone, and
    return the segment file that holds them."""
    first = make_meter(spool_dir=spool)
    with fake_lago(unavailable):
        record_calls(first, 10)
        first.close(timeout_s=0.2)
    join_meter_threads()
    [segment] = lanes(spool)[0].glob("*.seg")
    return segment


def test_a_restart_sends_what_the_last_run_left(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    first = make_meter(spool_dir=tmp_path)
    with fake_lago(unavailable):
        record_calls(first, 50)
        left = first.close(timeout_s=0.2)
    join_meter_threads()

    second = make_meter(spool_dir=tmp_path)
    with fake_lago() as lago:
        report = second.flush(timeout_s=5)
        second.close(timeout_s=1)

    assert (left.pending, left.dropped) == (100, 0)
    assert report.complete and report.acked == 100
    assert second.stats().recovered == 100
    assert len(lago.stored) == 100
    assert lanes(tmp_path) == []


def test_acked_events_are_not_sent_again(make_meter: MakeMeter, tmp_path: Path) -> None:
    answered = threading.Event()

    def first_batch_only(events: list[Event]) -> httpx.Response:
        if answered.is_set():
            return httpx.Response(503)
        answered.set()
        return ok(events)

    first = make_meter(spool_dir=tmp_path, options=MeterOptions(senders=1))
    with fake_lago(first_batch_only) as before:
        record_calls(first, 150)
        wait_until(lambda: first.stats().acked >= 100)
        left = first.close(timeout_s=0.3)
    join_meter_threads()
    second = make_meter(spool_dir=tmp_path, options=FAST)
    with fake_lago() as after:
        second.flush(timeout_s=5)

    assert (left.acked, left.pending) == (100, 200)
    delivered_first = set(before.stored)
    resent = {event["transaction_id"] for event in after.sent}
    assert len(resent) == 200 and not resent & delivered_first
    assert delivered_first | resent == {
        f"req-{n}:{kind}" for n in range(150) for kind in ("input", "output")
    }


def test_a_torn_tail_is_skipped(
    make_meter: MakeMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    segment = dead_lane_segment(make_meter, tmp_path)
    with segment.open("ab") as file:
        file.write(b'\x40\x00\x00\x00\x01\x02\x03\x04{"transaction_id":')

    second = make_meter(spool_dir=tmp_path)
    with fake_lago() as lago:
        report = second.flush(timeout_s=5)

    assert report.acked == 20 and len(lago.stored) == 20
    assert "torn or corrupt tail" in caplog.text


def test_two_live_meters_never_share_a_spool(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    def by_subscription(events: list[Event]) -> httpx.Response:
        if events[0]["external_subscription_id"] == "stuck":
            return httpx.Response(503)
        return ok(events)

    stuck = make_meter(spool_dir=tmp_path)
    live = make_meter(spool_dir=tmp_path)
    with fake_lago(by_subscription) as lago:
        stuck.record(
            subscription_id="stuck",
            model="m",
            input_tokens=1,
            output_tokens=0,
            request_id="a",
        )
        record_calls(live, 5)
        report = live.flush(timeout_s=5)
        assert len(lanes(tmp_path)) == 2
        stuck.close(timeout_s=0.1)

    assert report.complete and report.acked == 10
    assert live.stats().recovered == 0
    assert {e["external_subscription_id"] for e in lago.stored.values()} == {"sub_1"}


def test_events_beyond_the_memory_buffer_wait_on_disk(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    options = MeterOptions(
        linger_s=0.01,
        batch_size=50,
        max_buffered_events=100,
        spool_segment_bytes=8 * 1024,
    )
    meter = make_meter(spool_dir=tmp_path, options=options)
    gate = threading.Event()

    def after_gate(events: list[Event]) -> httpx.Response:
        return ok(events) if gate.is_set() else httpx.Response(503)

    with fake_lago(after_gate) as lago:
        record_calls(meter, 1000)
        waiting = meter.stats()
        gate.set()
        report = meter.flush(timeout_s=20)

    assert waiting.pending == 2000 and waiting.dropped_total == 0
    assert waiting.spool_bytes > 8 * 1024
    assert report.complete and report.acked == 2000
    assert len(lago.stored) == 2000
    assert_balanced(meter)


def test_a_full_spool_drops_and_counts(make_meter: MakeMeter, tmp_path: Path) -> None:
    drops: list[tuple[int, str]] = []
    options = MeterOptions(linger_s=0.01, spool_max_bytes=4096)
    meter = make_meter(
        spool_dir=tmp_path,
        options=options,
        on_drop=lambda events, reason: drops.append((len(events), reason)),
    )

    with fake_lago(unavailable):
        record_calls(meter, 40)
        stats = meter.stats()
        meter.close(timeout_s=0.1)

    full = stats.dropped.get(DropReason.SPOOL_FULL, 0)
    assert full > 0 and stats.spool_bytes <= 4096
    assert sum(count for count, _ in drops) == full
    assert {reason for _, reason in drops} == {"spool_full"}
    assert stats.recorded == stats.pending + full


def test_without_spool_the_buffer_overflow_is_counted(make_meter: MakeMeter) -> None:
    drops: list[int] = []
    options = MeterOptions(linger_s=0.01, max_buffered_events=100)
    meter = make_meter(
        options=options, on_drop=lambda events, reason: drops.append(len(events))
    )

    with fake_lago(unavailable):
        record_calls(meter, 500)
        stats = meter.stats()
        closed = meter.close(timeout_s=0.1)
        # A sender still retrying at close's deadline drops its batch when
        # it notices, after close returned, and calls on_drop after counting.
        wait_until(
            lambda: (
                not meter.stats().pending and sum(drops) >= meter.stats().dropped_total
            )
        )
    final = meter.stats()

    assert stats.dropped[DropReason.BUFFER_FULL] > 0
    assert stats.pending <= 100 + options.batch_size * options.senders
    assert closed.recorded == closed.pending + closed.dropped + closed.acked == 1000
    assert final.pending == 0 and sum(drops) == final.dropped_total == 1000


def test_quarantined_events_go_to_the_dead_letter_file(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    def reject_second(events: list[Event]) -> httpx.Response:
        if len(events) > 1:
            return invalid({"1": {"timestamp": ["invalid_format"]}})
        return ok(events)

    meter = make_meter(spool_dir=tmp_path)
    with fake_lago(reject_second):
        record_calls(meter, 1)
        meter.flush(timeout_s=5)

    [line] = (tmp_path / "dead-letter.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["event"]["transaction_id"] == "req-0:output"
    assert entry["error"] == {"timestamp": ["invalid_format"]}
    assert entry["status"] == 422


def leave_an_unreadable_record(make_meter: MakeMeter, spool: Path) -> None:
    """Leave 10 calls in a dead lane, with an intact frame whose content this
    version cannot read (another version's format, say) among them."""
    segment = dead_lane_segment(make_meter, spool)
    data = segment.read_bytes()
    payloads, _ = read_frames(data)
    payloads.insert(3, b'["a format from the future"]')
    rewritten = b"".join(frame(payload) for payload in payloads)
    segment.write_bytes(rewritten.ljust(len(data), b"\0"))


def test_an_unreadable_record_of_a_dead_lane_is_set_aside(
    make_meter: MakeMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    leave_an_unreadable_record(make_meter, tmp_path)

    second = make_meter(spool_dir=tmp_path)
    with fake_lago() as lago:
        report = second.flush(timeout_s=5)
        second.close(timeout_s=1)

    assert report.complete and report.acked == 20 and len(lago.stored) == 20
    [line] = (tmp_path / "dead-letter.jsonl").read_text().splitlines()
    assert json.loads(line)["record"] == '["a format from the future"]'
    assert "Set aside 1 unreadable record" in caplog.text
    assert lanes(tmp_path) == []


def test_an_unreadable_record_stays_on_disk_when_the_dead_letter_is_full(
    make_meter: MakeMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    leave_an_unreadable_record(make_meter, tmp_path)

    options = dataclasses.replace(FAST, dead_letter_max_bytes=10)
    second = make_meter(spool_dir=tmp_path, options=options)
    with fake_lago() as lago:
        report = second.flush(timeout_s=5)
        second.close(timeout_s=1)

    assert report.complete and len(lago.stored) == 20
    assert not (tmp_path / "dead-letter.jsonl").read_text()
    assert "left in place" in caplog.text
    [lane] = lanes(tmp_path)
    assert list(lane.glob("*.seg"))


def test_close_is_idempotent_and_later_records_are_counted(
    make_meter: MakeMeter,
) -> None:
    drops: list[str] = []
    meter = make_meter(on_drop=lambda events, reason: drops.append(reason))

    with fake_lago():
        with meter:
            record_calls(meter, 2)
        again = meter.close(timeout_s=1)
        record_calls(meter, 1)

    assert again.complete and again.acked == 4
    assert meter.stats().dropped == {DropReason.CLOSED: 2}
    assert drops == [DropReason.CLOSED]
    assert_balanced(meter)


def test_the_dead_letter_file_is_bounded(
    make_meter: MakeMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def reject_all(events: list[Event]) -> httpx.Response:
        return invalid(
            {str(n): {"properties": ["invalid"]} for n in range(len(events))}
        )

    options = MeterOptions(linger_s=0.01, dead_letter_max_bytes=2048)
    meter = make_meter(spool_dir=tmp_path, options=options)
    with fake_lago(reject_all):
        record_calls(meter, 50)
        report = meter.flush(timeout_s=5)

    assert report.complete and report.quarantined == 100
    assert (tmp_path / "dead-letter.jsonl").stat().st_size <= 2048
    assert "dead-letter file" in caplog.text


def test_a_lane_left_half_deleted_is_cleaned_up(
    make_meter: MakeMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A process killed between deleting a finished segment and its .done file.
    lane = tmp_path / "lane-1-1"
    lane.mkdir()
    (lane / "00000003.done").write_bytes(b"\x00" * 12)

    meter = make_meter(spool_dir=tmp_path)
    with fake_lago() as lago:
        report = meter.flush(timeout_s=5)

    assert report.complete and lago.sent == []
    assert not lane.exists()
    assert "Could not remove" not in caplog.text


def test_a_spool_that_cannot_be_opened_falls_back_to_memory(
    make_meter: MakeMeter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "spool"
    meter = make_meter(spool_dir=spool)
    # Gone by first use: a file now stands where the directory was.
    spool.rmdir()
    spool.write_text("not a directory")

    with fake_lago() as lago:
        record_calls(meter, 3)
        report = meter.flush(timeout_s=5)

    assert report.complete and report.acked == 6 and len(lago.stored) == 6
    assert meter.stats().spool_bytes == 0
    [line] = [r for r in caplog.records if "cannot be opened" in r.getMessage()]
    assert "memory only" in line.getMessage()


def test_no_room_for_the_first_segment_leaves_no_lane_behind(
    make_meter: MakeMeter, tmp_path: Path
) -> None:
    # No disk has room for a petabyte segment: posix_fallocate refuses it.
    huge = 2**50
    options = MeterOptions(
        linger_s=0.01, spool_max_bytes=huge, spool_segment_bytes=huge
    )
    meter = make_meter(spool_dir=tmp_path, options=options)

    with fake_lago() as lago:
        record_calls(meter, 2)
        report = meter.flush(timeout_s=5)

    assert report.complete and len(lago.stored) == 4
    assert list(tmp_path.iterdir()) == []
