"""Template texts and helpers for end-to-end sync tests against the emulator.

``GPT4`` is the brief's template (two models), shared with the template
tests; the variants change one thing each, the way a person edits the file.
"""

from __future__ import annotations

from pathlib import Path

from tests.template.texts import GPT4
from tokbill.emulator import EmulatorServer
from tokbill.lago import LagoClient
from tokbill.sync import ApplyResult, Plan, apply_plan, make_plan, read_state
from tokbill.template import load_templates

PRICE_RAISED = GPT4.replace('{input: "0.03"', '{input: "0.035"')
MODEL_ADDED = (
    GPT4.replace("[gpt-4, gpt-4-32k]", "[gpt-4, gpt-4-32k, gpt-4-turbo]")
    + '          gpt-4-turbo: {input: "0.01", output: "0.03"}\n'
)
MODEL_REMOVED = GPT4.replace("[gpt-4, gpt-4-32k]", "[gpt-4]").replace(
    '          gpt-4-32k: {input: "0.06", output: "0.12"}\n', ""
)
SECOND_CHARGE = (
    GPT4
    + """\
      - billable_metric: llm_tokens
        code: llm_tokens_batch
        charge_model: standard
        price_by: [model, type]
        prices:
          gpt-4:     {input: "0.00001", output: "0.00002"}
          gpt-4-32k: {input: "0.00003", output: "0.00004"}
"""
)
# Another team's plan on the same metric, in a file the GPT-4 one never loads.
ENTERPRISE = GPT4.replace("code: gpt4", "code: enterprise").replace(
    "name: GPT-4", "name: Enterprise"
)
# A plan that never priced gpt-4-32k and declares the metric without it, so
# applying it alone would take that value from plan gpt4, which prices it.
NARROW_TEAM = MODEL_REMOVED.replace("code: gpt4", "code: team").replace(
    "name: GPT-4", "name: Team"
)

METRIC_PATH = "/api/v1/billable_metrics/llm_tokens"
CHARGE_PATH = "/api/v1/plans/gpt4/charges/llm_tokens"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def planned(
    client: LagoClient,
    *paths: Path | str,
    allow_destroy: bool = False,
    prune: bool = False,
) -> Plan:
    templates = load_templates(list(paths))
    live = read_state(client, templates, prune=prune)
    return make_plan(templates, live, allow_destroy=allow_destroy, prune=prune)


def sync(client: LagoClient, *paths: Path | str, **options: bool) -> ApplyResult:
    return apply_plan(client, planned(client, *paths, **options))


def writes(server: EmulatorServer) -> list[tuple[str, str]]:
    return [(entry.method, entry.path) for entry in server.requests.writes()]


def subscribe(client: LagoClient, plan_code: str, external_id: str = "sub_1") -> None:
    client.post(
        "/subscriptions",
        {
            "subscription": {
                "external_customer_id": f"cus_{external_id}",
                "external_id": external_id,
                "plan_code": plan_code,
            }
        },
    )
