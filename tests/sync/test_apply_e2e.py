"""apply against the emulator over real HTTP: writes made, their order, results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.sync.e2e import (
    CHARGE_PATH,
    METRIC_PATH,
    MODEL_ADDED,
    MODEL_REMOVED,
    NARROW_TEAM,
    PRICE_RAISED,
    SECOND_CHARGE,
    planned,
    sync,
    write,
    writes,
)
from tests.template.texts import GPT4
from tokbill import BlockedError, DriftError
from tokbill.emulator import EmulatorServer
from tokbill.lago import LagoClient
from tokbill.sync import ApplyError, apply_plan

REPO = Path(__file__).resolve().parents[2]


def prices(client: LagoClient, plan: str = "gpt4") -> dict[tuple[str, ...], str]:
    charge = client.get(f"/plans/{plan}/charges/llm_tokens")["charge"]
    return {
        (f["values"]["model"][0], f["values"]["type"][0]): f["properties"]["amount"]
        for f in charge["filters"]
    }


def amounts_by_filter(client: LagoClient) -> dict[str, str]:
    """Each filter's amount in plan gpt4, keyed like ``model=gpt-4 type=input``."""
    charge = client.get("/plans/gpt4/charges/llm_tokens")["charge"]
    amounts = {}
    for entry in charge["filters"]:
        values = sorted(entry["values"].items())
        label = " ".join(f"{key}={','.join(items)}" for key, items in values)
        amounts[label] = entry["properties"]["amount"]
    return amounts


def filter_ids(client: LagoClient) -> dict[tuple[str, ...], str]:
    charge = client.get("/plans/gpt4/charges/llm_tokens")["charge"]
    return {
        (f["values"]["model"][0], f["values"]["type"][0]): f["lago_id"]
        for f in charge["filters"]
    }


def test_first_apply_creates_and_a_reapply_writes_nothing(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    template = write(tmp_path, "gpt4.yaml", GPT4)

    first = sync(client, template)
    lago_emulator.requests.reset()
    second = sync(client, template)

    assert [str(w.path) for w in first.writes] == ["/billable_metrics", "/plans"]
    assert prices(client)[("gpt-4-32k", "output")] == "0.12"
    assert second.writes == ()
    assert writes(lago_emulator) == []
    assert {e.method for e in lago_emulator.requests.entries()} == {"GET"}


def test_a_price_change_writes_only_that_charge_and_keeps_ids(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    charge_id = client.get("/plans/gpt4")["plan"]["charges"][0]["lago_id"]
    ids_before = filter_ids(client)
    lago_emulator.requests.reset()

    sync(client, write(tmp_path, "gpt4.yaml", PRICE_RAISED))

    assert writes(lago_emulator) == [("PUT", CHARGE_PATH)]
    assert prices(client)[("gpt-4", "input")] == "0.035"
    assert client.get("/plans/gpt4")["plan"]["charges"][0]["lago_id"] == charge_id
    assert len(set(ids_before.values())) == 4
    assert filter_ids(client) == ids_before


def test_a_price_change_leaves_the_other_charges_of_the_plan_alone(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", SECOND_CHARGE))
    before = client.get("/plans/gpt4/charges/llm_tokens")["charge"]
    cheaper = SECOND_CHARGE.replace('output: "0.00004"', 'output: "0.00003"')
    lago_emulator.requests.reset()

    sync(client, write(tmp_path, "gpt4.yaml", cheaper))

    assert writes(lago_emulator) == [
        ("PUT", "/api/v1/plans/gpt4/charges/llm_tokens_batch")
    ]
    assert client.get("/plans/gpt4/charges/llm_tokens")["charge"] == before


def test_adding_a_model_adds_the_metric_value_before_pricing_it(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    lago_emulator.requests.reset()

    sync(client, write(tmp_path, "gpt4.yaml", MODEL_ADDED))

    assert writes(lago_emulator) == [("PUT", METRIC_PATH), ("PUT", CHARGE_PATH)]
    assert prices(client)[("gpt-4-turbo", "input")] == "0.01"


def test_removing_a_model_unprices_it_before_the_metric_loses_it(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    lago_emulator.requests.reset()

    sync(client, write(tmp_path, "gpt4.yaml", MODEL_REMOVED))

    assert writes(lago_emulator) == [("PUT", CHARGE_PATH), ("PUT", METRIC_PATH)]
    metric = client.get("/billable_metrics/llm_tokens")["billable_metric"]
    assert {f["key"]: f["values"] for f in metric["filters"]}["model"] == ["gpt-4"]
    assert set(prices(client)) == {("gpt-4", "input"), ("gpt-4", "output")}


def test_a_definition_change_lands_before_a_new_plan_freezes_the_metric(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    metric_only = GPT4[: GPT4.index("plans:")]
    wider = metric_only.replace("gpt-4-32k]", "gpt-4-32k, gpt-4-turbo]")
    sync(client, write(tmp_path, "metric.yaml", wider))
    renamed = GPT4.replace("field_name: tokens", "field_name: total_tokens")
    lago_emulator.requests.reset()

    sync(client, write(tmp_path, "gpt4.yaml", renamed))

    assert writes(lago_emulator) == [
        ("PUT", METRIC_PATH),
        ("POST", "/api/v1/plans"),
        ("PUT", METRIC_PATH),
    ]
    metric = client.get("/billable_metrics/llm_tokens")["billable_metric"]
    assert metric["field_name"] == "total_tokens"


def test_a_value_a_plan_outside_prices_goes_only_with_allow_destroy_and_last(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    team = write(tmp_path, "team.yaml", NARROW_TEAM)
    (blocked,) = planned(client, team).blocked
    lago_emulator.requests.reset()

    sync(client, team, allow_destroy=True)

    assert (blocked.kind, blocked.code) == ("billable_metric", "llm_tokens")
    assert "{model=gpt-4-32k, type=input} broadened to {type=input}" in (
        blocked.reason or ""
    )
    assert writes(lago_emulator) == [("POST", "/api/v1/plans"), ("PUT", METRIC_PATH)]
    assert amounts_by_filter(client) == {
        "model=gpt-4 type=input": "0.03",
        "model=gpt-4 type=output": "0.06",
        "type=input": "0.06",
        "type=output": "0.12",
    }


def test_a_plan_with_a_blocked_change_writes_nothing_at_all(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", SECOND_CHARGE))
    # The price change alone could be written; the dropped charge is blocked.
    plan = planned(client, write(tmp_path, "gpt4.yaml", PRICE_RAISED))
    lago_emulator.requests.reset()

    with pytest.raises(BlockedError, match="nothing was written") as refused:
        apply_plan(client, plan)

    assert [c.code for c in plan.blocked] == ["llm_tokens_batch"]
    assert [c.code for c in plan.pending] == ["llm_tokens"]
    assert "Charge llm_tokens_batch" in str(refused.value)
    assert writes(lago_emulator) == []
    assert prices(client)[("gpt-4", "input")] == "0.03"


def test_a_failed_write_says_what_was_done_and_a_rerun_converges(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    template = write(tmp_path, "gpt4.yaml", GPT4)
    plan = planned(client, template)
    lago_emulator.faults.update(
        error_rate=1.0, error_statuses=(500,), path_prefix="/api/v1/plans"
    )

    with pytest.raises(ApplyError) as failure:
        apply_plan(client, plan)
    lago_emulator.faults.reset()
    lago_emulator.requests.reset()
    rerun = sync(client, template)

    assert [w.path for w in failure.value.done] == ["/billable_metrics"]
    assert failure.value.failed.path == "/plans"
    assert "write 2 of 2" in str(failure.value)
    assert "Run apply again" in str(failure.value)
    assert [w.path for w in rerun.writes] == ["/plans"]
    assert not planned(client, template).has_changes


def test_a_failure_between_metric_and_charge_converges_on_rerun(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    template = write(tmp_path, "gpt4.yaml", MODEL_ADDED)
    plan = planned(client, template)
    lago_emulator.faults.update(
        error_rate=1.0, error_statuses=(503,), path_prefix="/api/v1/plans/"
    )

    with pytest.raises(ApplyError):
        apply_plan(client, plan)
    lago_emulator.faults.reset()
    lago_emulator.requests.reset()
    sync(client, template)

    assert writes(lago_emulator) == [("PUT", CHARGE_PATH)]
    assert not planned(client, template).has_changes


def test_a_refused_write_asks_for_a_fix_before_the_rerun(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    plan = planned(client, write(tmp_path, "gpt4.yaml", GPT4))
    lago_emulator.faults.update(
        error_rate=1.0, error_statuses=(422,), path_prefix="/api/v1/plans"
    )

    with pytest.raises(ApplyError) as failure:
        apply_plan(client, plan)

    message = str(failure.value)
    assert "returned 422" in message
    assert "Lago refused this write: correct what it names, then run apply" in message
    assert "Run apply again to finish" not in message


@pytest.mark.parametrize(
    "order",
    [("gpt4.yaml", "gpt35-turbo.yaml"), ("gpt35-turbo.yaml", "gpt4.yaml")],
    ids=["gpt4-first", "gpt35-first"],
)
def test_the_shipped_templates_converge_in_either_order(
    lago_emulator: EmulatorServer, client: LagoClient, order: tuple[str, str]
) -> None:
    first, second = (REPO / "templates" / name for name in order)

    sync(client, first)
    sync(client, second)
    lago_emulator.requests.reset()
    again = [sync(client, first), sync(client, second)]

    assert [r.writes for r in again] == [(), ()]
    assert writes(lago_emulator) == []
    assert not planned(client, first, second).has_changes
    assert prices(client, "gpt4")[("gpt-4", "input")] == "0.03"
    assert prices(client, "gpt35-turbo")[("gpt-3.5-turbo-16k", "output")] == "0.005"


def test_a_price_edited_behind_tokbills_back_shows_as_drift_and_is_reverted(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    template = write(tmp_path, "gpt4.yaml", GPT4)
    sync(client, template)
    charge = client.get("/plans/gpt4/charges/llm_tokens")["charge"]
    for entry in charge["filters"]:
        if entry["values"] == {"model": ["gpt-4-32k"], "type": ["output"]}:
            entry["properties"]["amount"] = "0.10"
    client.put(  # what Lago's UI sends when someone edits one price
        "/plans/gpt4/charges/llm_tokens",
        {"charge": {k: charge[k] for k in ("charge_model", "properties", "filters")}},
    )
    lago_emulator.requests.reset()

    drift = planned(client, template)
    sync(client, template)

    (change,) = drift.pending
    assert [f.text for f in change.fields] == [
        "gpt-4-32k / output: 0.1 -> 0.12 per 1,000 tokens (+20.0%)"
    ]
    assert writes(lago_emulator) == [("PUT", CHARGE_PATH)]
    assert prices(client)[("gpt-4-32k", "output")] == "0.12"


class _RecordingClient(LagoClient):
    """A client that keeps the body of every write it sends."""

    bodies: list[dict[str, Any]]

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        return super().post(path, body)

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        return super().put(path, body)


SHUFFLED = (
    GPT4.replace("model: [gpt-4, gpt-4-32k]", "model: [gpt-4-32k, gpt-4]")
    .replace("type: [input, output]", "type: [output, input]")
    .replace("[model, type]", "[type, model]")
    .replace(
        '          gpt-4:     {input: "0.03", output: "0.06"}\n'
        '          gpt-4-32k: {input: "0.06", output: "0.12"}\n',
        "          output: {gpt-4-32k: 0.12, gpt-4: 0.06}\n"
        "          input: {gpt-4-32k: 0.06, gpt-4: 0.030}\n",
    )
)


def test_writes_carry_canonical_filter_order_and_money_as_decimal_text(
    lago_emulator: EmulatorServer, tmp_path: Path
) -> None:
    recording = _RecordingClient(lago_emulator.api_url, "test-key")
    recording.bodies = []

    with recording:
        sync(recording, write(tmp_path, "shuffled.yaml", SHUFFLED))
        again = sync(recording, write(tmp_path, "gpt4.yaml", GPT4))

    metric, plan = (
        body.get("billable_metric") or body["plan"] for body in recording.bodies
    )
    assert metric["filters"] == [
        {"key": "model", "values": ["gpt-4", "gpt-4-32k"]},
        {"key": "type", "values": ["input", "output"]},
    ]
    (charge,) = plan["charges"]
    assert [(f["values"], f["properties"]) for f in charge["filters"]] == [
        (
            {"model": [model], "type": [kind]},
            {"amount": amount, "package_size": 1000, "free_units": 0},
        )
        for (model, kind), amount in [
            (("gpt-4", "input"), "0.03"),
            (("gpt-4", "output"), "0.06"),
            (("gpt-4-32k", "input"), "0.06"),
            (("gpt-4-32k", "output"), "0.12"),
        ]
    ]
    assert all(list(f["values"]) == ["model", "type"] for f in charge["filters"])
    assert again.writes == ()


class _IgnoringChargeWrites(LagoClient):
    """A client whose charge updates Lago answers 200 without applying."""

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if "/charges/" in path:
            return self.get(path)
        return super().put(path, body)


def test_a_write_lago_ignores_is_reported_as_drift(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    ignoring = _IgnoringChargeWrites(lago_emulator.api_url, "test-key")

    with ignoring, pytest.raises(DriftError) as drift:
        sync(ignoring, write(tmp_path, "gpt4.yaml", PRICE_RAISED))

    assert "gpt-4 / input: 0.03 -> 0.035" in str(drift.value)
    assert [w.method for w in drift.value.writes] == ["PUT"]


def test_a_write_committed_but_unanswered_converges_without_duplicates(
    lago_emulator: EmulatorServer, tmp_path: Path
) -> None:
    template = write(tmp_path, "gpt4.yaml", GPT4)
    impatient = LagoClient(lago_emulator.api_url, "test-key", timeout_s=0.3)
    with impatient:
        plan = planned(impatient, template)
        lago_emulator.faults.update(
            stall_after_commit_s=1.0, stall_count=1, path_prefix="/api/v1/plans"
        )

        with pytest.raises(ApplyError) as failure:
            apply_plan(impatient, plan)
        lago_emulator.requests.reset()
        rerun = sync(impatient, template)

    assert failure.value.failed.path == "/plans"
    assert rerun.writes == ()
    assert plan_codes(lago_emulator) == ["gpt4"]


def plan_codes(server: EmulatorServer) -> list[str]:
    with LagoClient(server.api_url, "test-key") as client:
        return [plan["code"] for plan in client.paginate("/plans", "plans")]


def test_a_metric_update_sends_filters_only_when_they_change(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    recording = _RecordingClient(lago_emulator.api_url, "test-key")
    recording.bodies = []
    renamed = GPT4.replace("name: LLM tokens", "name: Tokens")

    with recording:
        sync(recording, write(tmp_path, "gpt4.yaml", renamed))
        sync(recording, write(tmp_path, "gpt4.yaml", MODEL_ADDED))

    rename, grow, _charge = (body.get("billable_metric") for body in recording.bodies)
    # Lago flags draft invoices for a refresh whenever filters are sent.
    assert rename is not None and "filters" not in rename
    assert rename["name"] == "Tokens"
    assert grow is not None and grow["filters"][0] == {
        "key": "model",
        "values": ["gpt-4", "gpt-4-32k", "gpt-4-turbo"],
    }
    metric = client.get("/billable_metrics/llm_tokens")["billable_metric"]
    assert metric["name"] == "LLM tokens"
    assert not planned(client, write(tmp_path, "gpt4.yaml", MODEL_ADDED)).has_changes
