from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from tests.usage.conftest import (
    KEY,
    URL,
    USAGE_URL,
    FakeClock,
    in_threads,
    lago_error,
)
from tokbill import ServerError
from tokbill.usage import (
    AsyncUsageClient,
    Usage,
    UsageClient,
    UsageUnavailableError,
)

CALLERS = 100


def make_client(clock: FakeClock, **kwargs: Any) -> UsageClient:
    return UsageClient(URL, KEY, clock=clock, max_retries=0, **kwargs)


@respx.mock
def test_a_value_is_served_from_cache_for_the_ttl(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    route = respx.get(USAGE_URL).respond(json=gpt4_body)
    client = make_client(clock, ttl_s=5.0)

    client.current("cus_1", "sub_1")
    clock.advance(4.9)
    cached = client.current("cus_1", "sub_1")
    clock.advance(0.1)
    client.current("cus_1", "sub_1")

    assert route.call_count == 2
    assert cached.age_s == pytest.approx(4.9)
    assert route.calls[0].request.url.params["external_subscription_id"] == "sub_1"


@respx.mock
def test_subscriptions_are_cached_separately(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    route = respx.get(USAGE_URL).respond(json=gpt4_body)
    client = make_client(clock)

    client.current("cus_1", "sub_1")
    client.current("cus_1", "sub_2")
    client.current("cus_1", "sub_1")

    assert route.call_count == 2


@respx.mock
def test_a_hundred_threads_asking_at_once_cause_one_call(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    # Each thread reads the clock once before it queues for the refresh,
    # and the refreshing thread once more: hold the answer until then.
    gate = clock.first_call_waits_for_reads(CALLERS + 1)

    def respond_once_every_thread_is_waiting(request: httpx.Request) -> httpx.Response:
        gate()
        return httpx.Response(200, json=gpt4_body)

    route = respx.get(USAGE_URL).mock(side_effect=respond_once_every_thread_is_waiting)
    client = make_client(clock)
    results: list[object] = []

    in_threads(lambda: results.append(client.current("cus_1", "sub_1")), CALLERS)

    assert route.call_count == 1
    assert len(results) == CALLERS


def _tasks_asking_at_once(
    clock: FakeClock, response: httpx.Response
) -> tuple[int, list[Any]]:
    """CALLERS tasks ask at once, then Lago gives ``response``; the calls Lago
    saw and what each task got (a Usage or the error it raised)."""

    async def scenario() -> tuple[int, list[Any]]:
        everyone_waits = asyncio.Event()

        async def respond_later(request: httpx.Request) -> httpx.Response:
            await everyone_waits.wait()
            return response

        with respx.mock:
            route = respx.get(USAGE_URL).mock(side_effect=respond_later)
            async with AsyncUsageClient(URL, KEY, clock=clock, max_retries=0) as usage:
                tasks = [
                    asyncio.create_task(usage.current("cus_1", "sub_1"))
                    for _ in range(CALLERS)
                ]
                assert await clock.reached(CALLERS)
                everyone_waits.set()
                results = await asyncio.gather(*tasks, return_exceptions=True)
            return route.call_count, results

    return asyncio.run(scenario())


def test_a_hundred_tasks_asking_at_once_cause_one_call(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    calls, results = _tasks_asking_at_once(clock, httpx.Response(200, json=gpt4_body))

    assert calls == 1
    assert all(isinstance(r, Usage) for r in results)
    assert all(r.amount == results[0].amount for r in results)


@respx.mock
def test_threads_waiting_on_a_failed_call_share_its_error_not_retry_it(
    clock: FakeClock,
) -> None:
    gate = clock.first_call_waits_for_reads(CALLERS + 1)

    def fail_once_every_thread_is_waiting(request: httpx.Request) -> httpx.Response:
        gate()
        return httpx.Response(503, json=lago_error(503, "unavailable"))

    route = respx.get(USAGE_URL).mock(side_effect=fail_once_every_thread_is_waiting)
    client = make_client(clock)
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            client.current("cus_1", "sub_1")
        except UsageUnavailableError as exc:
            errors.append(exc)

    in_threads(ask, CALLERS)

    assert route.call_count == 1
    assert len(errors) == CALLERS
    assert all(isinstance(e.__cause__, ServerError) for e in errors)


@respx.mock
def test_a_call_that_outlasts_the_ttl_still_serves_the_threads_that_waited(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    gate = clock.first_call_waits_for_reads(CALLERS + 1)

    def answer_after_the_ttl(request: httpx.Request) -> httpx.Response:
        gate()
        clock.advance(3 * 5.0)
        return httpx.Response(200, json=gpt4_body)

    route = respx.get(USAGE_URL).mock(side_effect=answer_after_the_ttl)
    client = make_client(clock, ttl_s=5.0)
    results: list[Usage] = []

    in_threads(lambda: results.append(client.current("cus_1", "sub_1")), CALLERS)

    assert route.call_count == 1
    assert len(results) == CALLERS
    assert {(r.stale, r.age_s) for r in results} == {(False, 0.0)}


def test_tasks_waiting_on_a_failed_call_share_its_error_not_retry_it(
    clock: FakeClock,
) -> None:
    calls, errors = _tasks_asking_at_once(
        clock, httpx.Response(503, json=lago_error(503, "unavailable"))
    )

    assert calls == 1
    assert len(errors) == CALLERS
    assert all(isinstance(e, UsageUnavailableError) for e in errors)


def test_cancelling_the_task_that_started_a_call_neither_aborts_nor_repeats_it(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    async def scenario() -> tuple[int, list[Usage]]:
        asked = asyncio.Event()
        answer = asyncio.Event()
        requests: list[httpx.Request] = []

        async def respond_when_told(request: httpx.Request) -> httpx.Response:
            # Counted on arrival: respx counts a call only once it is answered.
            requests.append(request)
            asked.set()
            await answer.wait()
            return httpx.Response(200, json=gpt4_body)

        with respx.mock:
            respx.get(USAGE_URL).mock(side_effect=respond_when_told)
            async with AsyncUsageClient(URL, KEY, clock=clock, max_retries=0) as usage:
                leader = asyncio.create_task(usage.current("cus_1", "sub_1"))
                await asyncio.wait_for(asked.wait(), timeout=10)
                waiters = [
                    asyncio.create_task(usage.current("cus_1", "sub_1"))
                    for _ in range(CALLERS - 1)
                ]
                await asyncio.sleep(0)
                leader.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await leader
                answer.set()
                results = await asyncio.gather(*waiters)
                clock.advance(1.0)
                later = await usage.current("cus_1", "sub_1")
            return len(requests), [*results, later]

    calls, results = asyncio.run(scenario())

    assert calls == 1
    assert len(results) == CALLERS
    assert results[-1].age_s == 1.0


@respx.mock
def test_when_lago_fails_the_last_good_value_is_served_stale_with_its_age(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    route = respx.get(USAGE_URL).mock(
        side_effect=[
            httpx.Response(200, json=gpt4_body),
            httpx.Response(503, json=lago_error(503, "unavailable")),
        ]
    )
    client = make_client(clock, ttl_s=5.0, max_stale_s=60.0)
    fresh = client.current("cus_1", "sub_1")
    clock.advance(6.0)

    stale = client.current("cus_1", "sub_1")

    assert (stale.stale, stale.age_s) == (True, 6.0)
    assert stale.amount == fresh.amount
    assert route.call_count == 2


@respx.mock
def test_a_failing_lago_is_asked_once_per_ttl_and_logged_once(
    gpt4_body: dict[str, Any], clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    route = respx.get(USAGE_URL).mock(
        side_effect=[httpx.Response(200, json=gpt4_body), httpx.ConnectError("down")]
        + [httpx.ConnectError("down")] * 3
    )
    client = make_client(clock, ttl_s=5.0)
    client.current("cus_1", "sub_1")
    clock.advance(5.0)

    ages = []
    for _ in range(3):
        ages.append(client.current("cus_1", "sub_1").age_s)
        clock.advance(2.0)

    assert route.call_count == 2
    assert ages == [5.0, 7.0, 9.0]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "marked stale" in warnings[0].getMessage()
    assert KEY not in caplog.text


@respx.mock
def test_past_the_maximum_staleness_the_error_is_raised_chained(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    respx.get(USAGE_URL).mock(
        side_effect=[httpx.Response(200, json=gpt4_body)]
        + [httpx.Response(500, json=lago_error(500, "internal_error"))] * 2
    )
    client = make_client(clock, ttl_s=5.0, max_stale_s=30.0)
    client.current("cus_1", "sub_1")
    clock.advance(31.0)

    with pytest.raises(UsageUnavailableError, match="31 s old") as caught:
        client.current("cus_1", "sub_1")

    assert isinstance(caught.value.__cause__, ServerError)
    assert caught.value.stale_age_s == 31.0
    assert "500" in str(caught.value)


@respx.mock
def test_a_value_exactly_the_maximum_staleness_old_is_still_served(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    respx.get(USAGE_URL).mock(
        side_effect=[
            httpx.Response(200, json=gpt4_body),
            httpx.Response(500, json=lago_error(500, "internal_error")),
        ]
    )
    client = make_client(clock, ttl_s=5.0, max_stale_s=30.0)
    client.current("cus_1", "sub_1")
    clock.advance(30.0)

    usage = client.current("cus_1", "sub_1")

    assert (usage.stale, usage.age_s) == (True, 30.0)


@respx.mock
def test_a_failure_with_nothing_cached_is_raised(clock: FakeClock) -> None:
    respx.get(USAGE_URL).mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(UsageUnavailableError) as caught:
        make_client(clock).current("cus_1", "sub_1")

    assert caught.value.stale_age_s is None
    assert "could not reach Lago" in str(caught.value)


@respx.mock
def test_a_recovered_lago_serves_fresh_values_again(
    gpt4_body: dict[str, Any], clock: FakeClock
) -> None:
    respx.get(USAGE_URL).mock(
        side_effect=[
            httpx.Response(200, json=gpt4_body),
            httpx.ConnectError("down"),
            httpx.Response(200, json=gpt4_body),
        ]
    )
    client = make_client(clock, ttl_s=5.0)
    client.current("cus_1", "sub_1")
    clock.advance(5.0)
    assert client.current("cus_1", "sub_1").stale
    clock.advance(5.0)

    usage = client.current("cus_1", "sub_1")

    assert (usage.stale, usage.age_s) == (False, 0.0)


def test_async_stale_on_error(gpt4_body: dict[str, Any], clock: FakeClock) -> None:
    async def scenario() -> tuple[bool, float]:
        with respx.mock:
            respx.get(USAGE_URL).mock(
                side_effect=[httpx.Response(200, json=gpt4_body), httpx.ReadTimeout("")]
            )
            async with AsyncUsageClient(URL, KEY, clock=clock, max_retries=0) as usage:
                await usage.current("cus_1", "sub_1")
                clock.advance(8.0)
                served = await usage.current("cus_1", "sub_1")
        return served.stale, served.age_s

    assert asyncio.run(scenario()) == (True, 8.0)


@pytest.mark.parametrize(
    ("ttl_s", "max_stale_s"), [(-1.0, 10.0), (5.0, -1.0)], ids=["ttl", "staleness"]
)
def test_negative_durations_are_refused(ttl_s: float, max_stale_s: float) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        UsageClient(URL, KEY, ttl_s=ttl_s, max_stale_s=max_stale_s)
