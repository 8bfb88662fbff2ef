from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

URL = "https://lago.test/api/v1"
KEY = "sk_live_usage_0123456789"
USAGE_URL = f"{URL}/customers/cus_1/current_usage"

Bucket = tuple[dict[str, list[str]] | None, str, int, int]
"""(filter values or None, units, amount_cents, events_count)."""


class FakeClock:
    """A monotonic clock that moves only when told, and counts its readers."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self.reads = 0
        self._changed = threading.Condition()

    def __call__(self) -> float:
        with self._changed:
            self.reads += 1
            self._changed.notify_all()
            return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    def wait_for_reads(self, count: int, timeout_s: float = 10.0) -> bool:
        """Block until the clock was read ``count`` times (a gate for tests)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.reads >= count, timeout_s)

    async def reached(self, count: int, timeout_s: float = 10.0) -> bool:
        """Yield to the event loop until the clock was read ``count`` times."""
        deadline = time.monotonic() + timeout_s
        while self.reads < count:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0)
        return True

    def first_call_waits_for_reads(self, count: int) -> Callable[[], None]:
        """A gate for a fake Lago: its first call waits for ``count`` reads.

        Later calls pass at once, so a client that wrongly makes one call per
        caller fails the test quickly instead of waiting at the gate each time.
        """
        first = threading.Lock()

        def gate() -> None:
            if first.acquire(blocking=False):
                self.wait_for_reads(count)

        return gate


def in_threads(work: Callable[[], object], count: int, timeout_s: float = 30.0) -> None:
    """Run ``work`` on ``count`` threads at once; all must end by the deadline."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    assert not any(thread.is_alive() for thread in threads), "threads still running"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def charge_usage(
    metric: str, buckets: Sequence[Bucket], *, currency: str = "USD"
) -> dict[str, Any]:
    filters = [
        {
            "units": units,
            "total_aggregated_units": units,
            "events_count": events,
            "amount_cents": cents,
            "invoice_display_name": None,
            "values": values,
        }
        for values, units, cents, events in buckets
    ]
    return {
        "units": "0.0",
        "events_count": sum(bucket[3] for bucket in buckets),
        "amount_cents": sum(bucket[2] for bucket in buckets),
        "amount_currency": currency,
        "charge": {"lago_id": "c1", "code": metric, "charge_model": "package"},
        "billable_metric": {"lago_id": "b1", "code": metric, "name": metric},
        "filters": filters,
        "grouped_usage": [],
    }


def usage_body(
    charges: Sequence[dict[str, Any]],
    *,
    currency: str = "USD",
    taxes_cents: int = 0,
) -> dict[str, Any]:
    amount = sum(charge["amount_cents"] for charge in charges)
    return {
        "customer_usage": {
            "from_datetime": "2026-08-01T00:00:00Z",
            "to_datetime": "2026-08-31T23:59:59Z",
            "issuing_date": "2026-08-31",
            "currency": currency,
            "amount_cents": amount,
            "taxes_amount_cents": taxes_cents,
            "total_amount_cents": amount + taxes_cents,
            "lago_invoice_id": None,
            "charges_usage": list(charges),
        }
    }


GPT4_BUCKETS: list[Bucket] = [
    ({"model": ["gpt-4"], "type": ["input"]}, "2500.0", 9, 2),
    ({"model": ["gpt-4"], "type": ["output"]}, "1000.0", 6, 2),
    ({"model": ["gpt-4-32k"], "type": ["input"]}, "0.0", 0, 0),
    (None, "0.0", 0, 0),
]


@pytest.fixture
def gpt4_body() -> dict[str, Any]:
    """gpt-4 input 2,500 tokens -> 3 packages x 0.03 = 0.09; output 1,000 ->
    1 x 0.06 = 0.06; total 0.15 USD."""
    return usage_body([charge_usage("llm_tokens", GPT4_BUCKETS)])


def lago_error(status: int, code: str) -> dict[str, Any]:
    return {"status": status, "error": "Error", "code": code}
