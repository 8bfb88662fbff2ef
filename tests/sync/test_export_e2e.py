"""export against the emulator: the text round-trips and applying it writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sync.e2e import SECOND_CHARGE, sync, write, writes
from tests.template.texts import GPT4
from tokbill.emulator import EmulatorServer
from tokbill.lago import LagoClient
from tokbill.sync import ExportError, export_state
from tokbill.template import load_templates

REPO = Path(__file__).resolve().parents[2]


def test_an_export_applied_back_writes_nothing(
    lago_emulator: EmulatorServer, client: LagoClient, tmp_path: Path
) -> None:
    sync(client, REPO / "templates" / "gpt4.yaml")
    sync(client, write(tmp_path, "two.yaml", SECOND_CHARGE.replace("gpt4", "two")))
    exported = write(tmp_path, "export.yaml", export_state(client))
    lago_emulator.requests.reset()

    result = sync(client, exported)

    assert result.writes == ()
    assert writes(lago_emulator) == []


def test_the_export_of_an_applied_template_equals_the_template(
    client: LagoClient, tmp_path: Path
) -> None:
    source = REPO / "templates" / "gpt4.yaml"
    sync(client, source)

    text = export_state(client, plan_codes=["gpt4"])
    exported = load_templates([write(tmp_path, "export.yaml", text)])
    original = load_templates([source])

    assert exported.metrics == original.metrics
    assert exported.plans == original.plans
    assert "gpt-4: {input: " in text


def test_export_selects_metrics_and_plans_by_code(
    client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))

    metric_only = load_templates(
        [write(tmp_path, "m.yaml", export_state(client, metric_codes=["llm_tokens"]))]
    )

    assert [m.code for m in metric_only.metrics] == ["llm_tokens"]
    assert metric_only.plans == ()
    with pytest.raises(ExportError, match="no plan with code 'nope'"):
        export_state(client, plan_codes=["nope"])


@pytest.mark.parametrize(
    "models", [["gpt-4", "gpt-4-32k"], ["__ALL_FILTER_VALUES__"]], ids=["two", "any"]
)
def test_a_charge_the_format_cannot_express_is_refused_by_name(
    client: LagoClient, tmp_path: Path, models: list[str]
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    metric = client.get("/billable_metrics/llm_tokens")["billable_metric"]
    client.post(
        "/plans/gpt4/charges",
        {
            "charge": {
                "code": "bundle",
                "billable_metric_id": metric["lago_id"],
                "charge_model": "standard",
                "properties": {"amount": "0"},
                "filters": [
                    {
                        "properties": {"amount": "0.02"},
                        "values": {"model": models},
                    }
                ],
            }
        },
    )

    with pytest.raises(ExportError, match="Charge bundle of plan gpt4 has a filter"):
        export_state(client)


def test_a_rounded_metric_is_refused_by_export_and_reset_by_apply(
    client: LagoClient, tmp_path: Path
) -> None:
    metric_only = GPT4[: GPT4.index("plans:")]
    template = write(tmp_path, "metric.yaml", metric_only)
    sync(client, template)
    rounding = {"rounding_function": "ceil", "rounding_precision": 0}
    client.put("/billable_metrics/llm_tokens", {"billable_metric": rounding})

    with pytest.raises(ExportError, match="Metric llm_tokens is rounded"):
        export_state(client)
    sync(client, template)

    metric = client.get("/billable_metrics/llm_tokens")["billable_metric"]
    assert (metric["rounding_function"], metric["rounding_precision"]) == (None, None)
