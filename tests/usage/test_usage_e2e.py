"""Usage end to end: ``tokbill-sync apply templates/gpt4.yaml``, TokenMeter, usage.

The hand-computed figures (package of 1,000 tokens, paid per started package):

    gpt-4     input   1,200 + 1,300 = 2,500 -> ceil(2.5)   = 3 x 0.03 = 0.09
    gpt-4     output    600 +   400 = 1,000 -> ceil(1.0)   = 1 x 0.06 = 0.06
    gpt-4-32k input               1         -> ceil(0.001) = 1 x 0.06 = 0.06
    gpt-4-32k output          4,001         -> ceil(4.001) = 5 x 0.12 = 0.60
    gpt-3.5-turbo (priced by no gpt4 filter: default bucket at "0") 10,005 -> 0.00
    total                                                               0.81 USD
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.gpt4 import KEY, apply_gpt4, subscribe_to_gpt4
from tests.usage.conftest import FakeClock, in_threads
from tokbill.cli import main
from tokbill.emulator import EmulatorServer
from tokbill.emulator.testing import running_emulator
from tokbill.ingest import TokenMeter
from tokbill.lago import LagoClient
from tokbill.usage import (
    AsyncUsageClient,
    CustomerNotFoundError,
    SubscriptionNotActiveError,
    UsageClient,
)

CALLS = [  # (model, input tokens, output tokens)
    ("gpt-4", 1200, 600),
    ("gpt-4", 1300, 400),
    ("gpt-4-32k", 1, 4001),
    ("gpt-3.5-turbo", 10000, 5),
]
EXPECTED = {
    ("gpt-4", "input"): ("2500", "0.09"),
    ("gpt-4", "output"): ("1000", "0.06"),
    ("gpt-4-32k", "input"): ("1", "0.06"),
    ("gpt-4-32k", "output"): ("4001", "0.60"),
    (None, None): ("10005", "0.00"),
}


def record_calls(server: EmulatorServer, subscription_id: str) -> None:
    with TokenMeter(api_url=server.api_url, api_key=KEY) as meter:
        for n, (model, input_tokens, output_tokens) in enumerate(CALLS):
            meter.record(
                subscription_id=subscription_id,
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                request_id=f"req-{n}",
            )
        report = meter.flush(timeout_s=10.0)
    assert (report.complete, report.acked) == (True, 2 * len(CALLS))


@pytest.fixture(scope="module")
def lago() -> Iterator[EmulatorServer]:
    """gpt4.yaml applied; cus_e2e on plan gpt4 (sub_e2e) with CALLS metered."""
    with running_emulator() as server, LagoClient(server.api_url, KEY) as api:
        apply_gpt4(server.api_url)
        subscribe_to_gpt4(api, "cus_e2e", "sub_e2e")
        record_calls(server, "sub_e2e")
        yield server


def usage_calls(server: EmulatorServer) -> int:
    return sum(1 for entry in server.requests if entry.path.endswith("/current_usage"))


@contextmanager
def slow_usage(server: EmulatorServer) -> Iterator[None]:
    """Hold each current-usage answer long enough for every caller to ask.

    Not a timing assertion: the delay only widens the window in which a
    broken single-flight would send a second request.
    """
    server.faults.update(latency_s=0.3, path_prefix="/api/v1/customers")
    try:
        yield
    finally:
        server.faults.update(latency_s=0.0, path_prefix="/api/v1")


def test_usage_shows_the_hand_computed_amounts_per_model_and_type(
    lago: EmulatorServer,
) -> None:
    with UsageClient(lago.api_url, KEY) as client:
        usage = client.current("cus_e2e", "sub_e2e")

    lines = usage.by("model", "type")
    assert {
        key: (line.to_dict()["units"], line.to_dict()["amount"])
        for key, line in lines.items()
    } == EXPECTED
    assert (usage.currency, usage.amount, usage.total_amount) == (
        "USD",
        Decimal("0.81"),
        Decimal("0.81"),
    )
    assert lines[("gpt-4", "input")].events_count == 2


def test_the_cli_table_shows_the_same_amounts(lago: EmulatorServer) -> None:
    result = CliRunner().invoke(
        main, ["usage", "--api-url", lago.api_url, "--api-key", KEY, "cus_e2e"]
    )

    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["llm_tokens", "gpt-4", "input", "2,500", "0.09"] in rows
    assert ["llm_tokens", "gpt-4", "output", "1,000", "0.06"] in rows
    assert ["llm_tokens", "gpt-4-32k", "input", "1", "0.06"] in rows
    assert ["llm_tokens", "gpt-4-32k", "output", "4,001", "0.60"] in rows
    assert ["llm_tokens", "(other)", "10,005", "0.00"] in rows
    assert rows[-1] == ["total", "17,507", "0.81"]


def test_the_cli_json_shows_the_same_amounts(lago: EmulatorServer) -> None:
    result = CliRunner().invoke(
        main,
        ["usage", "--api-url", lago.api_url, "--api-key", KEY, "cus_e2e", "--json"],
    )

    assert result.exit_code == 0, result.stderr
    (document,) = json.loads(result.stdout)["subscriptions"]
    assert (document["amount"], document["total_amount"]) == ("0.81", "0.81")
    found = {
        _key(line["filters"]): (line["units"], line["amount"])
        for line in document["lines"]
    }
    assert found == EXPECTED


def _key(filters: dict[str, list[str]] | None) -> tuple[str | None, str | None]:
    if filters is None:
        return (None, None)
    return (filters["model"][0], filters["type"][0])


def test_a_hundred_threads_cause_one_upstream_call(lago: EmulatorServer) -> None:
    client = UsageClient(lago.api_url, KEY, ttl_s=60.0)
    before = usage_calls(lago)
    start = threading.Barrier(100)
    amounts: list[Decimal] = []

    def ask() -> None:
        start.wait()
        amounts.append(client.current("cus_e2e", "sub_e2e").amount)

    with slow_usage(lago):
        in_threads(ask, 100, timeout_s=60)
    client.close()

    assert usage_calls(lago) - before == 1
    assert amounts == [Decimal("0.81")] * 100


def test_a_hundred_tasks_cause_one_upstream_call(lago: EmulatorServer) -> None:
    async def ask_all() -> list[Decimal]:
        async with AsyncUsageClient(lago.api_url, KEY, ttl_s=60.0) as client:
            usages = await asyncio.gather(
                *(client.current("cus_e2e", "sub_e2e") for _ in range(100))
            )
        return [usage.amount for usage in usages]

    before = usage_calls(lago)

    with slow_usage(lago):
        amounts = asyncio.run(ask_all())

    assert usage_calls(lago) - before == 1
    assert amounts == [Decimal("0.81")] * 100


def test_a_failing_lago_serves_the_last_good_value_stale(
    lago: EmulatorServer, clock: FakeClock
) -> None:
    client = UsageClient(lago.api_url, KEY, clock=clock, max_retries=0, ttl_s=5.0)
    client.current("cus_e2e", "sub_e2e")
    clock.advance(12.0)
    lago.faults.update(error_rate=1.0, path_prefix="/api/v1/customers")
    try:
        usage = client.current("cus_e2e", "sub_e2e")
    finally:
        lago.faults.update(error_rate=0.0, path_prefix="/api/v1")
        client.close()

    assert (usage.stale, usage.age_s, usage.amount) == (True, 12.0, Decimal("0.81"))


@pytest.mark.parametrize(
    ("limit", "remaining", "exceeded"),
    [("0.82", "0.01", False), ("0.81", "0", True), ("0.80", "0", True)],
    ids=["under", "at", "over"],
)
def test_budget_against_the_real_spend(
    lago: EmulatorServer, limit: str, remaining: str, exceeded: bool
) -> None:
    with UsageClient(lago.api_url, KEY) as client:
        status = client.check_budget("cus_e2e", "sub_e2e", limit=Decimal(limit))

    assert status.spent == Decimal("0.81")
    assert (status.remaining, status.exceeded) == (Decimal(remaining), exceeded)


def test_an_unknown_customer_is_a_404_error(lago: EmulatorServer) -> None:
    with (
        UsageClient(lago.api_url, KEY) as client,
        pytest.raises(CustomerNotFoundError, match="'cus_nobody'"),
    ):
        client.current("cus_nobody", "sub_e2e")


def test_a_subscription_that_is_not_active_is_a_405_error(
    lago: EmulatorServer,
) -> None:
    with LagoClient(lago.api_url, KEY) as api:
        future = {
            "external_customer_id": "cus_e2e",
            "plan_code": "gpt4",
            "external_id": "sub_later",
            "subscription_at": "2099-01-01T00:00:00Z",
        }
        api.post("/subscriptions", {"subscription": future})

    with (
        UsageClient(lago.api_url, KEY) as client,
        pytest.raises(SubscriptionNotActiveError, match="pending") as caught,
    ):
        client.current("cus_e2e", "sub_later")

    assert caught.value.status == "pending"


def test_without_a_url_the_cli_says_it_uses_the_embedded_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAGO_API_URL", raising=False)
    monkeypatch.delenv("LAGO_API_KEY", raising=False)
    with LagoClient("local") as api:
        apply_gpt4(api.api_url)
        subscribe_to_gpt4(api, "cus_local", "sub_local")

    result = CliRunner().invoke(main, ["usage", "cus_local", "--json"])

    assert result.exit_code == 0, result.stderr
    (notice,) = result.stderr.splitlines()
    assert notice.startswith("Using the embedded Lago emulator at http://127.0.0.1:")
    assert notice.endswith("set LAGO_API_URL or --api-url to target a real Lago.")
    (document,) = json.loads(result.stdout)["subscriptions"]
    assert (document["subscription_id"], document["total_amount"]) == (
        "sub_local",
        "0.00",
    )
