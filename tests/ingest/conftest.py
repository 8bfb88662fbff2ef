from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tokbill.ingest import MeterOptions, TokenMeter

MakeMeter = Callable[..., TokenMeter]
"""The type of the make_meter fixture."""

FIXTURES = Path(__file__).parent / "fixtures"
API_URL = "http://lago.test"
BATCH_URL = "http://lago.test/api/v1/events/batch"

FAST = MeterOptions(
    linger_s=0.01,
    retry_initial_delay_s=0.001,
    retry_max_delay_s=0.02,
    auth_probe_interval_s=0.05,
    request_timeout_s=2.0,
    atexit_timeout_s=0.5,
)
"""Short delays so failure paths run without waiting."""

HELD = dataclasses.replace(FAST, linger_s=30.0)
"""FAST, but a partial batch leaves only on flush or close: a test that counts
batches decides how events are batched, whatever the machine's load."""


@pytest.fixture
def load_fixture() -> Callable[[str], Any]:
    """Parse a recorded response from tests/ingest/fixtures."""

    def load(name: str) -> Any:
        return json.loads((FIXTURES / name).read_text())

    return load


@pytest.fixture
def make_meter() -> Iterator[Callable[..., TokenMeter]]:
    """Build meters with fast options; every one is closed after the test."""
    meters: list[TokenMeter] = []

    def make(**kwargs: Any) -> TokenMeter:
        kwargs.setdefault("api_url", API_URL)
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("options", FAST)
        meter = TokenMeter(**kwargs)
        meters.append(meter)
        return meter

    yield make
    for meter in meters:
        meter.close(timeout_s=1.0)


def record_calls(meter: TokenMeter, count: int, *, prefix: str = "req") -> None:
    """Record ``count`` calls of 100 input and 10 output tokens on sub_1."""
    for number in range(count):
        meter.record(
            subscription_id="sub_1",
            model="gpt-4",
            input_tokens=100,
            output_tokens=10,
            request_id=f"{prefix}-{number}",
        )


def assert_balanced(meter: TokenMeter) -> None:
    """Every recorded event is acked, dropped, quarantined or pending."""
    stats = meter.stats()
    assert stats.recorded == (
        stats.acked + stats.dropped_total + stats.quarantined + stats.pending
    )


def wait_until(condition: Callable[[], object], timeout_s: float = 10.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout_s`` passes; say which."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
