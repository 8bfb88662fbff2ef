"""The live estimate with a real TokenMeter whose sending is held back.

gpt4.yaml is applied to the emulator; Lago has these events (packages of
1,000 tokens, paid per started package):

    gpt-4 input  2,500 -> 3 x 0.03 = 0.09
    gpt-4 output 1,000 -> 1 x 0.06 = 0.06                      confirmed 0.15

Then /events fails, and the meter holds these (hand-computed extra cost):

    gpt-4     input    400 -> 2,900 still 3 packages           + 0.00
    gpt-4     output   600 -> 1,600 now 2 packages             + 0.06
    gpt-4-32k input      1 ->     1 starts 1 package of 0.06   + 0.06
    (and 5,000 tokens for another subscription, left out)     pending 0.12
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.gpt4 import GPT4_TEMPLATE, KEY, apply_gpt4, subscribe_to_gpt4
from tokbill.emulator import EmulatorServer
from tokbill.emulator.testing import running_emulator
from tokbill.ingest import MeterOptions, TokenMeter
from tokbill.lago import LagoClient
from tokbill.template import load_templates
from tokbill.usage import UsageClient

SHORT_RETRIES = MeterOptions(
    linger_s=0.01, retry_initial_delay_s=0.05, retry_max_delay_s=0.2
)


@pytest.fixture(scope="module")
def lago() -> Iterator[EmulatorServer]:
    """gpt4.yaml applied; sub_est and sub_x on plan gpt4; the confirmed events
    of sub_est delivered."""
    with running_emulator() as server, LagoClient(server.api_url, KEY) as api:
        apply_gpt4(server.api_url)
        subscribe_to_gpt4(api, "cus_est", "sub_est")
        subscribe_to_gpt4(api, "cus_x", "sub_x")
        with TokenMeter(
            api_url=server.api_url, api_key=KEY, options=SHORT_RETRIES
        ) as meter:
            record(meter, "sub_est", "gpt-4", 1200, 600, "c1")
            record(meter, "sub_est", "gpt-4", 1300, 400, "c2")
            assert meter.flush(timeout_s=10).complete
        yield server


def record(
    meter: TokenMeter,
    subscription: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    request_id: str,
) -> None:
    meter.record(
        subscription_id=subscription,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        request_id=request_id,
    )


def test_the_estimate_adds_the_meters_unsent_tokens_at_package_prices(
    lago: EmulatorServer, tmp_path: Path
) -> None:
    templates = load_templates([GPT4_TEMPLATE])
    meter = TokenMeter(
        api_url=lago.api_url, api_key=KEY, spool_dir=tmp_path, options=SHORT_RETRIES
    )
    lago.faults.update(error_rate=1.0, path_prefix="/api/v1/events")
    try:
        record(meter, "sub_est", "gpt-4", 400, 600, "p1")
        record(meter, "sub_est", "gpt-4-32k", 1, 0, "p2")
        record(meter, "sub_x", "gpt-4", 5000, 0, "p3")
        with UsageClient(lago.api_url, KEY) as usage:
            estimate = usage.estimate(
                "cus_est", "sub_est", meter=meter, templates=templates
            )
        stats = meter.stats()
    finally:
        lago.faults.update(error_rate=0.0, path_prefix="/api/v1")
        meter.close(timeout_s=5)

    assert stats.acked == 0 and stats.pending == 4
    assert estimate.confirmed.amount == Decimal("0.15")
    assert (estimate.pending_events, estimate.unpriced_events) == (3, 0)
    assert estimate.pending_amount == Decimal("0.12")
    assert estimate.amount == Decimal("0.27")
    lines = estimate.by("model", "type")
    assert {
        key: (line.units, line.pending_units, line.pending_amount)
        for key, line in lines.items()
        if line.pending_events
    } == {
        ("gpt-4", "input"): (Decimal(2900), Decimal(400), Decimal("0.00")),
        ("gpt-4", "output"): (Decimal(1600), Decimal(600), Decimal("0.06")),
        ("gpt-4-32k", "input"): (Decimal(1), Decimal(1), Decimal("0.06")),
    }
