"""Measure UsageClient: cached latency, and upstream calls under many callers.

An in-process emulator gets templates/gpt4.yaml applied, one subscription and
a few events. Then:

1. cached ``current()`` latency: one warm-up fetch, then N calls served from
   the cache (TTL one hour), each timed with ``perf_counter_ns``;
2. uncached latency for comparison (TTL 0: every call is a GET to the
   emulator over loopback HTTP, emulator in the same process);
3. 1,000 threads released together by a barrier, and 1,000 asyncio tasks
   gathered at once, each asking for the same subscription; the emulator's
   request log counts the ``current_usage`` calls that reached it;
4. sustained load: 50 threads asking in a loop for 2 s with a 0.25 s TTL, to
   show the calls stay at about one per TTL.

    .venv/bin/python scripts/bench_usage.py [--calls 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tokbill.emulator import EmulatorServer
from tokbill.emulator.testing import running_emulator
from tokbill.lago import LagoClient
from tokbill.sync import apply_plan, make_plan, read_state
from tokbill.template import load_templates
from tokbill.usage import AsyncUsageClient, UsageClient

KEY = "bench-key"
CUSTOMER, SUBSCRIPTION = "cus_bench", "sub_bench"
TEMPLATE = Path(__file__).parents[1] / "templates" / "gpt4.yaml"
Row = tuple[str, str, str]


def seed(server: EmulatorServer) -> None:
    templates = load_templates([TEMPLATE])
    with LagoClient(server.api_url, KEY) as api:
        apply_plan(api, make_plan(templates, read_state(api, templates)))
        subscription = {
            "external_customer_id": CUSTOMER,
            "plan_code": "gpt4",
            "external_id": SUBSCRIPTION,
        }
        api.post("/subscriptions", {"subscription": subscription})
        events = [
            {
                "transaction_id": f"bench-{n}",
                "external_subscription_id": SUBSCRIPTION,
                "code": "llm_tokens",
                "properties": {"model": "gpt-4", "type": kind, "tokens": 700 + n},
            }
            for n, kind in enumerate(["input", "output"] * 50)
        ]
        api.post("/events/batch", {"events": events})


def usage_calls(server: EmulatorServer) -> int:
    return sum(1 for entry in server.requests if entry.path.endswith("/current_usage"))


def latencies_us(ask: Callable[[], object], calls: int) -> list[float]:
    timings = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        ask()
        timings.append((time.perf_counter_ns() - start) / 1000)
    return timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_row(name: str, timings: list[float]) -> Row:
    p50, p99 = percentile(timings, 0.50), percentile(timings, 0.99)
    mean = statistics.fmean(timings)
    detail = f"p50 {p50:,.1f} us, p99 {p99:,.1f} us, mean {mean:,.1f} us"
    return (name, f"{len(timings):,} calls", detail)


def threads_at_once(server: EmulatorServer, callers: int) -> tuple[int, float]:
    client = UsageClient(server.api_url, KEY, ttl_s=3600.0)
    barrier = threading.Barrier(callers + 1)
    errors: list[Exception] = []

    def ask() -> None:
        barrier.wait()
        try:
            client.current(CUSTOMER, SUBSCRIPTION)
        except Exception as exc:  # Any failure is reported below, not lost.
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for thread in threads:
        thread.start()
    before = usage_calls(server)
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed_s = time.perf_counter() - start
    client.close()
    if errors:
        raise RuntimeError(f"{len(errors)} callers failed; first: {errors[0]}")
    return usage_calls(server) - before, elapsed_s


def tasks_at_once(server: EmulatorServer, callers: int) -> tuple[int, float]:
    async def ask_all() -> float:
        async with AsyncUsageClient(server.api_url, KEY, ttl_s=3600.0) as client:
            start = time.perf_counter()
            await asyncio.gather(
                *(client.current(CUSTOMER, SUBSCRIPTION) for _ in range(callers))
            )
            return time.perf_counter() - start

    before = usage_calls(server)
    elapsed_s = asyncio.run(ask_all())
    return usage_calls(server) - before, elapsed_s


def sustained(
    server: EmulatorServer, threads: int, ttl_s: float, duration_s: float
) -> tuple[int, int]:
    client = UsageClient(server.api_url, KEY, ttl_s=ttl_s)
    deadline = time.monotonic() + duration_s
    served = [0] * threads

    def loop(index: int) -> None:
        while time.monotonic() < deadline:
            client.current(CUSTOMER, SUBSCRIPTION)
            served[index] += 1

    before = usage_calls(server)
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    client.close()
    return usage_calls(server) - before, sum(served)


def latency_rows(server: EmulatorServer, calls: int) -> list[Row]:
    rows = []
    for name, ttl_s, count in [
        ("cached current()", 3600.0, calls),
        ("uncached current() (HTTP)", 0.0, 300),
    ]:
        with UsageClient(server.api_url, KEY, ttl_s=ttl_s) as client:
            client.current(CUSTOMER, SUBSCRIPTION)
            ask = functools.partial(client.current, CUSTOMER, SUBSCRIPTION)
            timings = latencies_us(ask, count)
        rows.append(latency_row(name, timings))
    return rows


def concurrency_rows(server: EmulatorServer, callers: int) -> list[Row]:
    rows = []
    for name, run in [
        (f"{callers:,} threads at once", threads_at_once),
        (f"{callers:,} asyncio tasks at once", tasks_at_once),
    ]:
        calls, elapsed_s = run(server, callers)
        served = f"all served in {elapsed_s * 1000:,.0f} ms"
        rows.append((name, f"{calls} upstream call(s)", served))
    calls, served_count = sustained(server, threads=50, ttl_s=0.25, duration_s=2.0)
    rows.append(
        (
            "50 threads looping 2 s, TTL 0.25 s",
            f"{calls} upstream call(s)",
            f"{served_count:,} calls served (at most 2 s / 0.25 s + 1 = 9)",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--callers", type=int, default=1000)
    args = parser.parse_args()

    with running_emulator() as server:
        seed(server)
        rows = latency_rows(server, args.calls)
        rows += concurrency_rows(server, args.callers)

    print_table(("scenario", "count", "result"), rows)


def print_table(head: Row, rows: list[Row]) -> None:
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(3)]
    for row in [head, tuple("-" * w for w in widths), *rows]:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


if __name__ == "__main__":
    main()
