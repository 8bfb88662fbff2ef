from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.ingest.conftest import (
    HELD,
    MakeMeter,
    assert_balanced,
    record_calls,
    wait_until,
)
from tests.ingest.fake_lago import Event, fake_lago, invalid, ok
from tokbill import LagoError, LagoTimeoutError, ServerError
from tokbill.ingest import MeterOptions, MeterStats, RateLimitInfo


def failing_first(*responses: httpx.Response | Exception) -> Callable[..., Any]:
    """Answer with ``responses`` in turn, then accept every batch."""
    queue = list(responses)
    lock = threading.Lock()

    def script(events: list[Event]) -> httpx.Response:
        with lock:
            answer = queue.pop(0) if queue else None
        if isinstance(answer, Exception):
            raise answer
        return answer or ok(events)

    return script


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(502, text="<html>Bad gateway</html>"),
        httpx.Response(503),
        httpx.Response(408),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
    ],
    ids=["500", "502", "503", "408", "timeout", "refused"],
)
def test_transient_failures_resend_the_same_body(
    make_meter: MakeMeter, failure: Any
) -> None:
    errors: list[Exception] = []
    meter = make_meter(options=HELD, on_error=errors.append)

    with fake_lago(failing_first(failure, failure)) as lago:
        record_calls(meter, 3)
        report = meter.flush(timeout_s=5)

    assert report.complete and report.acked == 6
    assert len(lago.bodies) == 3
    assert lago.bodies[0] == lago.bodies[1] == lago.bodies[2]
    assert meter.stats().retried == 12
    assert len(errors) == 2 and all(isinstance(e, LagoError) for e in errors)


def test_a_timeout_is_reported_as_such(make_meter: MakeMeter) -> None:
    errors: list[Exception] = []
    meter = make_meter(on_error=errors.append)

    with fake_lago(failing_first(httpx.ReadTimeout("slow"))):
        record_calls(meter, 1)
        meter.flush(timeout_s=5)

    assert isinstance(errors[0], LagoTimeoutError)
    assert "same ids" in str(errors[0])


def test_a_429_pauses_every_sender_for_the_reset(make_meter: MakeMeter) -> None:
    infos: list[RateLimitInfo] = []
    limited = httpx.Response(
        429,
        headers={
            "X-RateLimit-Limit": "500",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1",
        },
    )
    paused = threading.Event()

    def on_rate_limit(info: RateLimitInfo) -> None:
        infos.append(info)
        paused.set()

    meter = make_meter(options=HELD, on_rate_limit=on_rate_limit)
    arrivals: list[float] = []
    limited_at: list[float] = []
    first = failing_first(limited)

    def script(events: list[Event]) -> httpx.Response:
        now = time.monotonic()
        response: httpx.Response = first(events)
        (limited_at if response.status_code == 429 else arrivals).append(now)
        return response

    with fake_lago(script):
        record_calls(meter, 50)
        # The callback runs once the pause is set: the next three batches
        # are recorded after it, for the other senders to take.
        assert paused.wait(timeout=10)
        record_calls(meter, 150, prefix="after")
        report = meter.flush(timeout_s=10)

    assert report.complete and report.acked == 400
    assert infos[0] == RateLimitInfo(limit=500, remaining=0, reset_s=1.0, wait_s=1.0)
    assert len(arrivals) == 4 and min(arrivals) - limited_at[0] >= 0.99


def test_retry_after_is_honoured_too(make_meter: MakeMeter) -> None:
    arrivals: list[float] = []
    first = failing_first(httpx.Response(429, headers={"Retry-After": "0.4"}))

    def script(events: list[Event]) -> httpx.Response:
        arrivals.append(time.monotonic())
        return first(events)

    meter = make_meter()
    with fake_lago(script):
        record_calls(meter, 1)
        meter.flush(timeout_s=5)

    assert arrivals[1] - arrivals[0] >= 0.35


def test_one_invalid_event_is_quarantined_and_the_rest_resent_at_once(
    make_meter: MakeMeter,
) -> None:
    drops: list[tuple[list[Event], str]] = []

    def script(events: list[Event]) -> httpx.Response:
        bad = [i for i, e in enumerate(events) if e["properties"]["model"] == "bad"]
        if bad:
            return invalid({str(i): {"timestamp": ["invalid_format"]} for i in bad})
        return ok(events)

    meter = make_meter(
        options=HELD, on_drop=lambda events, reason: drops.append((events, reason))
    )
    with fake_lago(script) as lago:
        for number in range(100):
            meter.record(
                subscription_id="s",
                model="bad" if number == 37 else "gpt-4",
                input_tokens=10,
                output_tokens=0,
                request_id=f"r{number}",
            )
        report = meter.flush(timeout_s=5)

    assert (report.acked, report.quarantined, report.pending) == (99, 1, 0)
    assert len(lago.batches) == 2
    assert len(lago.stored) == 99 and "r37:input" not in lago.stored
    [(events, reason)] = drops
    assert events[0]["transaction_id"] == "r37:input"
    assert reason == "rejected: timestamp: invalid_format"
    assert meter.stats().retried == 0


def test_duplicates_count_as_delivered(make_meter: MakeMeter) -> None:
    def script(events: list[Event]) -> httpx.Response:
        dup = {"transaction_id": ["value_already_exist"]}
        return invalid({str(i): dup for i in range(0, len(events), 2)})

    meter = make_meter(options=HELD)
    with fake_lago(failing_first(script([{}] * 10))) as lago:
        record_calls(meter, 5)
        report = meter.flush(timeout_s=5)

    assert (report.acked, report.quarantined) == (10, 0)
    assert len(lago.batches) == 2 and len(lago.batches[1]) == 5


def test_a_422_without_indices_is_split_until_the_bad_event_is_alone(
    make_meter: MakeMeter,
) -> None:
    def script(events: list[Event]) -> httpx.Response:
        if any(e["external_subscription_id"] == "poison" for e in events):
            return httpx.Response(422, json={"status": 422, "code": "oops"})
        return ok(events)

    drops: list[str] = []
    meter = make_meter(
        options=HELD,
        on_drop=lambda events, reason: drops.append(reason),
    )
    with fake_lago(script) as lago:
        for number in range(64):
            sub = "poison" if number == 5 else "s"
            meter.record(
                subscription_id=sub,
                model="m",
                input_tokens=1,
                output_tokens=0,
                request_id=f"r{number}",
            )
        report = meter.flush(timeout_s=5)

    assert (report.acked, report.quarantined) == (63, 1)
    assert len(lago.stored) == 63
    assert drops == ["rejected: oops"]
    # Halving: the whole batch, then two halves at each of six levels.
    halves = [64 >> level for level in range(1, 7) for _ in range(2)]
    assert sorted(len(batch) for batch in lago.batches) == sorted([64, *halves])


def test_auth_failure_holds_events_until_fixed(
    make_meter: MakeMeter, caplog: pytest.LogCaptureFixture
) -> None:
    refusals = [httpx.Response(401, json={"status": 401, "error": "Unauthorized"})]
    meter = make_meter(api_key="sk_live_TOPSECRET_0123456789")

    with fake_lago(failing_first(*refusals * 5)) as lago:
        record_calls(meter, 10)
        held = meter.flush(timeout_s=0.1)
        report = meter.flush(timeout_s=5)

    assert not held.complete and held.pending > 0 and held.dropped == 0
    assert report.complete and report.acked == 20
    assert len(lago.stored) == 20
    assert meter.stats().blocked is None
    blocked_lines = [r for r in caplog.records if "suspended" in r.getMessage()]
    assert len(blocked_lines) == 1
    assert "kept in memory until close" in blocked_lines[0].getMessage()
    assert "TOPSECRET" not in caplog.text


def test_stats_report_the_block(make_meter: MakeMeter) -> None:
    forbidden = httpx.Response(403, json={"status": 403, "code": "forbidden"})
    meter = make_meter()

    refused = threading.Semaphore(0)

    def script(events: list[Event]) -> httpx.Response:
        refused.release()
        return forbidden

    with fake_lago(script):
        record_calls(meter, 1)
        # The second request is the probe, sent after the block was set.
        assert refused.acquire(timeout=10) and refused.acquire(timeout=10)
        stats = meter.stats()
        meter.close(timeout_s=0.1)

    assert stats.blocked is not None and stats.blocked.startswith("403")
    assert stats.pending == 2


def test_sustained_failure_logs_one_line_per_kind(
    make_meter: MakeMeter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tokbill")
    meter = make_meter()
    failures = threading.Semaphore(0)

    def unavailable(events: list[Event]) -> httpx.Response:
        failures.release()
        return httpx.Response(503)

    with fake_lago(unavailable) as lago:
        record_calls(meter, 300)
        for _ in range(60):
            assert failures.acquire(timeout=10)
        meter.close(timeout_s=0.1)

    assert len(lago.batches) >= 60
    retry_lines = [r for r in caplog.records if "Retrying" in r.getMessage()]
    assert len(retry_lines) == 1


def test_an_unexpected_failure_keeps_the_batch_and_logs_one_line(
    make_meter: MakeMeter, caplog: pytest.LogCaptureFixture
) -> None:
    calls = threading.Semaphore(0)

    def broken(request: httpx.Request) -> httpx.Response:
        calls.release()
        raise RuntimeError("a bug below the sender")

    meter = make_meter(transport=httpx.MockTransport(broken))
    record_calls(meter, 1)
    for _ in range(5):
        assert calls.acquire(timeout=10)
    report = meter.close(timeout_s=0.1)

    assert (report.acked, report.dropped + report.pending) == (0, 2)
    lines = [r for r in caplog.records if "Unexpected failure" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is not None
    assert "a bug below the sender" in str(lines[0].exc_info[1])


def test_the_budget_sends_a_failing_batch_to_the_back(make_meter: MakeMeter) -> None:
    options = MeterOptions(
        linger_s=0.01,
        senders=1,
        batch_size=1,
        retry_initial_delay_s=0.001,
        retry_max_delay_s=0.005,
        retry_budget_s=0.05,
    )
    meter = make_meter(options=options)
    order: list[str] = []

    def script(events: list[Event]) -> httpx.Response:
        order.append(events[0]["external_subscription_id"])
        # The flaky batch fails until the steady one got through, which
        # the single sender can only send once it gave the flaky one up.
        if order[-1] == "flaky" and "steady" not in order:
            return httpx.Response(500)
        return ok(events)

    with fake_lago(script):
        meter.record(
            subscription_id="flaky",
            model="m",
            input_tokens=1,
            output_tokens=0,
            request_id="a",
        )
        assert wait_until(lambda: order)  # the flaky batch is being tried
        meter.record(
            subscription_id="steady",
            model="m",
            input_tokens=1,
            output_tokens=0,
            request_id="b",
        )
        report = meter.flush(timeout_s=5)

    assert report.complete and report.acked == 2
    assert order.index("steady") < len(order) - 1 and order[-1] == "flaky"


def test_counters_add_up_under_random_failures(make_meter: MakeMeter) -> None:
    chance = random.Random(20260815)
    lock = threading.Lock()
    statuses = itertools.cycle([200, 500, 503, 429, 200, 422, 200, 408])

    def script(events: list[Event]) -> httpx.Response:
        with lock:
            status = next(statuses) if chance.random() < 0.7 else 200
        if status == 429:
            return httpx.Response(429, headers={"Retry-After": "0.01"})
        if status == 422:
            return invalid({"0": {"code": ["value_is_mandatory"]}})
        if status == 408 and chance.random() < 0.5:
            raise httpx.ReadTimeout("slow")
        return ok(events) if status == 200 else httpx.Response(status)

    meter = make_meter(
        options=MeterOptions(
            linger_s=0.005,
            batch_size=7,
            retry_initial_delay_s=0.001,
            retry_max_delay_s=0.01,
        )
    )
    samples = 0
    with fake_lago(script) as lago:
        for number in range(400):
            meter.record(
                subscription_id="s",
                model="m",
                input_tokens=number + 1,
                output_tokens=number % 3,
                request_id=f"r{number}",
            )
            if number % 20 == 0:
                assert_balanced(meter)
                samples += 1
        report = meter.flush(timeout_s=20)
    stats = meter.stats()

    assert report.complete and samples == 20
    assert_balanced(meter)
    assert stats.quarantined > 0 and stats.retried > 0
    assert stats.acked + stats.quarantined == stats.recorded
    assert len(lago.stored) == stats.acked


def test_the_api_key_stays_out_of_errors_and_reprs(make_meter: MakeMeter) -> None:
    key = "lago_key_SUPERSECRET_abcdef"
    errors: list[Exception] = []
    meter = make_meter(api_key=key, on_error=errors.append)

    with fake_lago(failing_first(httpx.Response(500))) as lago:
        record_calls(meter, 1)
        meter.flush(timeout_s=5)

    assert lago.headers[0]["authorization"] == f"Bearer {key}"
    assert isinstance(errors[0], ServerError)
    assert "SUPERSECRET" not in f"{errors[0]} {errors[0]!r} {meter!r} {meter.stats()}"


def test_a_failing_callback_does_not_stop_delivery(make_meter: MakeMeter) -> None:
    def explode(exc: Exception) -> None:
        raise RuntimeError("callback bug")

    meter = make_meter(on_error=explode)
    with fake_lago(failing_first(httpx.Response(500))):
        record_calls(meter, 2)
        report = meter.flush(timeout_s=5)

    assert report.complete and report.acked == 4


def test_a_404_suspends_sending_too(make_meter: MakeMeter) -> None:
    missing = httpx.Response(404, json={"status": 404, "code": "not_found"})
    meter = make_meter()

    with fake_lago(failing_first(missing, missing)) as lago:
        record_calls(meter, 3)
        report = meter.flush(timeout_s=5)

    assert report.complete and report.acked == 6
    assert len(lago.stored) == 6 and meter.stats().blocked is None


@pytest.mark.parametrize(
    "refusal",
    [
        httpx.Response(301, headers={"Location": "https://lago.test/api/v1/x"}),
        httpx.Response(308, headers={"Location": "https://lago.test/api/v1/x"}),
        httpx.Response(405, json={"status": 405, "error": "Method Not Allowed"}),
        httpx.Response(407, text="Proxy Authentication Required"),
    ],
    ids=["301", "308", "405", "407"],
)
def test_a_wrong_url_or_proxy_suspends_sending_and_quarantines_nothing(
    make_meter: MakeMeter, refusal: httpx.Response
) -> None:
    # One batch of 20 events: nothing leaves before the flush.
    meter = make_meter(options=HELD)
    answer = failing_first(refusal, refusal)
    seen: list[MeterStats] = []

    def script(events: list[Event]) -> httpx.Response:
        # The probe after the first refusal sees the meter while it is held.
        seen.append(meter.stats())
        return answer(events)

    with fake_lago(script) as lago:
        record_calls(meter, 10)
        report = meter.flush(timeout_s=5)

    held = seen[1]
    assert (held.pending, held.quarantined, held.acked) == (20, 0, 0)
    assert held.blocked is not None
    assert held.blocked.startswith(str(refusal.status_code))
    if refusal.status_code < 400:
        assert held.blocked.endswith("It redirects to https://lago.test/api/v1/x.")
    assert report.complete and (report.acked, report.quarantined) == (20, 0)
    assert len(lago.stored) == 20 and meter.stats().blocked is None


def test_sending_resumes_when_the_probe_is_rejected_as_invalid(
    make_meter: MakeMeter,
) -> None:
    refused = httpx.Response(401, json={"status": 401, "error": "Unauthorized"})

    def script(events: list[Event]) -> httpx.Response:
        if events[0]["external_subscription_id"] == "first":
            return invalid({"0": {"timestamp": ["invalid_format"]}})
        return ok(events)

    meter = make_meter()
    answers = iter([refused])
    with fake_lago(lambda events: next(answers, None) or script(events)) as lago:
        meter.record(
            subscription_id="first", model="m", input_tokens=1, output_tokens=0
        )
        assert meter.flush(timeout_s=5).quarantined == 1
        record_calls(meter, 2)
        report = meter.flush(timeout_s=5)

    assert report.complete and (report.acked, report.quarantined) == (4, 1)
    assert len(lago.stored) == 4 and meter.stats().blocked is None


def test_sending_resumes_when_the_probe_spent_its_retry_budget(
    make_meter: MakeMeter,
) -> None:
    refused = httpx.Response(401, json={"status": 401, "error": "Unauthorized"})
    options = MeterOptions(
        linger_s=0.01,
        senders=1,
        retry_initial_delay_s=0.001,
        retry_max_delay_s=0.005,
        retry_budget_s=0.05,
        auth_probe_interval_s=0.01,
    )
    outage = itertools.chain([refused], itertools.repeat(httpx.Response(503), 40))
    lock = threading.Lock()

    def script(events: list[Event]) -> httpx.Response:
        with lock:
            answer = next(outage, None)
        return answer or ok(events)

    meter = make_meter(options=options)
    with fake_lago(script) as lago:
        record_calls(meter, 2)
        report = meter.flush(timeout_s=5)

    assert report.complete and report.acked == 4
    assert len(lago.stored) == 4 and meter.stats().blocked is None


def test_a_flush_that_reports_a_rejection_has_seen_its_on_drop(
    make_meter: MakeMeter,
) -> None:
    drops: list[str] = []

    def slow_on_drop(events: list[Event], reason: str) -> None:
        time.sleep(0.2)
        drops.extend(event["transaction_id"] for event in events)

    meter = make_meter(on_drop=slow_on_drop)
    rejected = invalid({"0": {"timestamp": ["invalid_format"]}})
    with fake_lago(lambda events: rejected):
        meter.record(
            subscription_id="s",
            model="m",
            input_tokens=1,
            output_tokens=0,
            request_id="r",
        )
        report = meter.flush(timeout_s=5)

    assert report.complete and report.quarantined == 1
    assert drops == ["r:input"]


def test_a_422_mixing_duplicates_strings_and_field_errors(
    make_meter: MakeMeter,
) -> None:
    answer = invalid(
        {
            "0": "expression_evaluation_failed: Variable: b not found",
            "1": {"transaction_id": ["value_already_exist"]},
            "2": {"timestamp": ["invalid_format"]},
        }
    )
    drops: list[tuple[str, str]] = []
    meter = make_meter(
        options=MeterOptions(linger_s=30.0),
        on_drop=lambda events, reason: drops.extend(
            (event["transaction_id"], reason) for event in events
        ),
    )

    with fake_lago(failing_first(answer)) as lago:
        for number in range(4):
            meter.record(
                subscription_id="s",
                model="m",
                input_tokens=1,
                output_tokens=0,
                request_id=f"r{number}",
            )
        report = meter.flush(timeout_s=5)

    assert (report.acked, report.quarantined, report.pending) == (2, 2, 0)
    assert [len(batch) for batch in lago.batches] == [4, 1]
    assert lago.batches[1][0]["transaction_id"] == "r3:input"
    assert sorted(drops) == [
        ("r0:input", "rejected: expression_evaluation_failed: Variable: b not found"),
        ("r2:input", "rejected: timestamp: invalid_format"),
    ]


def test_a_429_with_a_zero_reset_still_waits(make_meter: MakeMeter) -> None:
    arrivals: list[float] = []
    limited = httpx.Response(429, headers={"X-RateLimit-Reset": "0"})
    first = failing_first(limited, limited)

    def script(events: list[Event]) -> httpx.Response:
        arrivals.append(time.monotonic())
        return first(events)

    options = MeterOptions(linger_s=0.01, senders=1, retry_initial_delay_s=0.2)
    meter = make_meter(options=options)
    with fake_lago(script):
        record_calls(meter, 1)
        report = meter.flush(timeout_s=5)

    assert report.complete and len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 0.2 and arrivals[2] - arrivals[1] >= 0.2


def test_the_larger_of_retry_after_and_the_reset_is_waited(
    make_meter: MakeMeter,
) -> None:
    infos: list[RateLimitInfo] = []
    limited = httpx.Response(
        429, headers={"Retry-After": "0.1", "X-RateLimit-Reset": "1"}
    )
    arrivals: list[float] = []
    first = failing_first(limited)

    def script(events: list[Event]) -> httpx.Response:
        arrivals.append(time.monotonic())
        return first(events)

    meter = make_meter(on_rate_limit=infos.append)
    with fake_lago(script):
        record_calls(meter, 1)
        meter.flush(timeout_s=5)

    assert infos[0].wait_s == 1.0
    assert arrivals[1] - arrivals[0] >= 0.95


def test_a_422_whose_details_name_no_error_is_split_not_resent_forever(
    make_meter: MakeMeter,
) -> None:
    drops: list[str] = []
    meter = make_meter(on_drop=lambda events, reason: drops.append(reason))

    with fake_lago(lambda events: invalid({"0": None})) as lago:
        record_calls(meter, 1)
        report = meter.flush(timeout_s=5)

    assert report.complete and report.quarantined == 2
    assert len(lago.batches) == 3
    assert drops == ["rejected: event 0: None"] * 2


def test_batches_hold_at_most_100_events_and_the_byte_cap(
    make_meter: MakeMeter,
) -> None:
    meter = make_meter(options=MeterOptions(linger_s=30.0, max_batch_bytes=4096))
    wide = make_meter(options=MeterOptions(linger_s=30.0))

    with fake_lago() as lago:
        record_calls(meter, 60)
        meter.flush(timeout_s=5)
        capped = list(lago.bodies)
        lago.bodies.clear()
        lago.batches.clear()
        record_calls(wide, 260, prefix="wide")
        wide.flush(timeout_s=5)

    assert all(len(body) <= 4096 for body in capped) and len(capped) > 1
    sizes = sorted(len(batch) for batch in lago.batches)
    assert sum(sizes) == 520 and max(sizes) == 100


def test_a_partial_batch_leaves_after_the_linger_without_a_flush(
    make_meter: MakeMeter,
) -> None:
    meter = make_meter()

    with fake_lago() as lago:
        record_calls(meter, 1)
        wait_until(lambda: lago.stored)

    assert len(lago.stored) == 2
