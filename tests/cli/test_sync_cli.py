"""validate, plan, apply and export through click: streams, JSON, exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result

from tests.sync.e2e import (
    ENTERPRISE,
    MODEL_REMOVED,
    NARROW_TEAM,
    PRICE_RAISED,
    SECOND_CHARGE,
    subscribe,
    sync,
    write,
    writes,
)
from tests.template.texts import GPT4
from tokbill.cli import main
from tokbill.emulator import EmulatorServer
from tokbill.lago import LagoClient

PRICE_LINE = "gpt-4 / input: 0.03 -> 0.035 per 1,000 tokens (+16.7%)"
MISSING_PRICE = GPT4.replace(', output: "0.12"}', "}")
BAD_PACKAGE_SIZE = GPT4.replace("package_size: 1000", "package_size: 1000.0")
STANDARD = GPT4.replace(
    "charge_model: package\n        package_size: 1000\n        free_units: 0\n",
    "charge_model: standard\n",
)


@pytest.fixture
def client(lago_emulator: EmulatorServer) -> Iterator[LagoClient]:
    with LagoClient(lago_emulator.api_url, "test-key") as lago:
        yield lago


@pytest.fixture
def run(lago_emulator: EmulatorServer) -> Callable[..., Result]:
    def invoke(*args: str | Path, input: str | None = None, **env: str) -> Result:
        runner = CliRunner()
        command = [str(a) for a in args]
        if command[0] in ("plan", "apply", "export"):
            command += ["--api-url", lago_emulator.api_url, "--api-key", "test-key"]
        return runner.invoke(main, command, input=input, env=env or None, color=True)

    return invoke


def test_validate_prints_one_line_per_file_and_warnings_on_stderr(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    good = write(tmp_path, "gpt4.yaml", GPT4)
    partial = write(tmp_path, "partial.yaml", MISSING_PRICE.replace("gpt4", "p"))

    result = run("validate", good, partial)

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{good}: valid; metrics llm_tokens; plans gpt4; 4 prices.",
        f"{partial}: valid; metrics llm_tokens; plans p; 3 prices.",
    ]
    assert "Warning:" in result.stderr
    assert "gpt-4-32k" in result.stderr


def test_an_invalid_template_is_located_without_traceback_or_writes(
    lago_emulator: EmulatorServer, run: Callable[..., Result], tmp_path: Path
) -> None:
    good = write(tmp_path, "gpt4.yaml", GPT4)
    bad = write(tmp_path, "bad.yaml", BAD_PACKAGE_SIZE.replace("gpt4", "bad"))

    checked = run("validate", bad)
    applied = run("apply", good, bad, "--yes")

    assert checked.exit_code == applied.exit_code == 1
    assert checked.stdout == applied.stdout == ""
    assert checked.stderr.startswith(f"Error: {bad}:")
    assert "package_size" in checked.stderr
    assert "Traceback" not in checked.stderr + applied.stderr
    assert len(lago_emulator.requests) == 0


def test_a_directory_and_a_missing_file_are_template_problems_of_one_run(
    lago_emulator: EmulatorServer, run: Callable[..., Result], tmp_path: Path
) -> None:
    (tmp_path / "templates").mkdir()
    bad = write(tmp_path, "bad.yaml", BAD_PACKAGE_SIZE)
    paths = [tmp_path / "templates", tmp_path / "absent.yaml", bad]

    checked = run("validate", *paths)
    applied = run("apply", *paths, "--yes")

    assert checked.exit_code == applied.exit_code == 1
    assert checked.stdout == applied.stdout == ""
    lines = checked.stderr.splitlines()
    assert lines[0].startswith(f"Error: {tmp_path / 'templates'}: cannot read the ")
    assert lines[1] == (
        f"Error: {tmp_path / 'absent.yaml'}: cannot read the template: No such "
        "file or directory."
    )
    assert lines[2].startswith(f"Error: {bad}:")
    assert "plans[0].charges[0].package_size: 1000.0 is a decimal number" in lines[2]
    assert applied.stderr == checked.stderr
    assert len(lago_emulator.requests) == 0


def test_plan_json_and_detailed_exitcode(
    run: Callable[..., Result], client: LagoClient, tmp_path: Path
) -> None:
    template = write(tmp_path, "gpt4.yaml", GPT4)

    pending = run("plan", template, "--json", "--detailed-exitcode")
    sync(client, template)
    converged = run("plan", template, "--detailed-exitcode")
    plain = run("plan", write(tmp_path, "gpt4.yaml", PRICE_RAISED))

    document = json.loads(pending.stdout)
    assert pending.exit_code == 2
    assert document["format_version"] == 1
    assert document["summary"]["create"] == 3
    assert converged.exit_code == 0
    assert "Plan: 0 to create, 0 to update" in converged.stdout
    assert plain.exit_code == 0
    assert PRICE_LINE in plain.stdout


def test_a_changed_plan_shows_its_active_subscriptions(
    run: Callable[..., Result], client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    subscribe(client, "gpt4", "sub_1")
    subscribe(client, "gpt4", "sub_2")

    result = run("plan", write(tmp_path, "gpt4.yaml", PRICE_RAISED), "--json")

    (plan,) = [c for c in json.loads(result.stdout)["changes"] if c["kind"] == "plan"]
    assert plan["active_subscriptions"] == 2
    text = run("plan", tmp_path / "gpt4.yaml").stdout
    assert "Plan gpt4 (2 active subscriptions)" in text


def test_apply_without_a_terminal_needs_yes(
    lago_emulator: EmulatorServer, run: Callable[..., Result], tmp_path: Path
) -> None:
    result = run("apply", write(tmp_path, "gpt4.yaml", GPT4))

    assert result.exit_code == 1
    assert "rerun with --yes" in result.stderr
    assert writes(lago_emulator) == []


@pytest.mark.parametrize(
    ("answer", "exit_code", "write_count"),
    [("n\n", 1, 0), ("y\n", 0, 2)],
    ids=["declined", "confirmed"],
)
def test_apply_asks_on_a_terminal(
    lago_emulator: EmulatorServer,
    run: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    exit_code: int,
    write_count: int,
) -> None:
    monkeypatch.setattr("tokbill.cli.sync._stdin_is_tty", lambda: True)

    result = run("apply", write(tmp_path, "gpt4.yaml", GPT4), input=answer)

    assert result.exit_code == exit_code
    assert "Apply 3 changes to" in result.stderr
    assert len(writes(lago_emulator)) == write_count


def test_apply_json_lists_the_writes_and_a_reapply_makes_none(
    lago_emulator: EmulatorServer, run: Callable[..., Result], tmp_path: Path
) -> None:
    template = write(tmp_path, "gpt4.yaml", GPT4)

    first = json.loads(run("apply", template, "--yes", "--json").stdout)
    lago_emulator.requests.reset()
    again = run("apply", template, "--yes")

    assert [w["path"] for w in first["writes"]] == ["/billable_metrics", "/plans"]
    assert first["writes"][1]["description"] == "create plan gpt4 with 1 charge"
    assert again.exit_code == 0
    assert "No changes" in again.stdout
    assert writes(lago_emulator) == []


def test_a_failed_apply_json_still_says_what_was_written(
    lago_emulator: EmulatorServer, run: Callable[..., Result], tmp_path: Path
) -> None:
    lago_emulator.faults.update(
        error_rate=1.0,
        error_statuses=(500,),
        path_prefix="/api/v1/plans",
        methods=["POST"],
    )

    result = run("apply", write(tmp_path, "gpt4.yaml", GPT4), "--yes", "--json")
    document = json.loads(result.stdout)

    assert result.exit_code == 1
    assert [w["path"] for w in document["writes"]] == ["/billable_metrics"]
    assert document["failed"]["path"] == "/plans"
    assert document["not_done"] == []
    assert "returned 500" in document["error"]
    assert "Run apply again" in result.stderr


def _charge_dropped(client: LagoClient, tmp_path: Path) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", SECOND_CHARGE))
    return [write(tmp_path, "gpt4.yaml", GPT4)]


def _value_priced_elsewhere(client: LagoClient, tmp_path: Path) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    sync(client, write(tmp_path, "enterprise.yaml", ENTERPRISE))
    return [write(tmp_path, "gpt4.yaml", MODEL_REMOVED)]


def _value_only_an_outside_plan_prices(
    client: LagoClient, tmp_path: Path
) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    return [write(tmp_path, "team.yaml", NARROW_TEAM)]


def _interval_of_a_subscribed_plan(
    client: LagoClient, tmp_path: Path
) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    subscribe(client, "gpt4")
    return [write(tmp_path, "gpt4.yaml", GPT4.replace("monthly", "yearly"))]


def _model_of_a_subscribed_charge(
    client: LagoClient, tmp_path: Path
) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    subscribe(client, "gpt4")
    return [write(tmp_path, "gpt4.yaml", STANDARD)]


def _field_of_a_used_metric(client: LagoClient, tmp_path: Path) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    return [
        write(
            tmp_path,
            "gpt4.yaml",
            GPT4.replace("field_name: tokens", "field_name: total_tokens"),
        )
    ]


def _plan_pruned(client: LagoClient, tmp_path: Path) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    sync(client, write(tmp_path, "enterprise.yaml", ENTERPRISE))
    return [tmp_path / "gpt4.yaml", "--prune"]


def _metric_pruned(client: LagoClient, tmp_path: Path) -> list[str | Path]:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    client.post(
        "/billable_metrics",
        {
            "billable_metric": {
                "code": "images",
                "name": "Images",
                "aggregation_type": "count_agg",
            }
        },
    )
    return [tmp_path / "gpt4.yaml", "--prune"]


BLOCKED_CASES = {
    "charge-deleted": (_charge_dropped, "Charge llm_tokens_batch"),
    "value-priced-elsewhere": (_value_priced_elsewhere, "plan enterprise"),
    "value-priced-only-outside": (
        _value_only_an_outside_plan_prices,
        "in plan gpt4, which these templates do not manage",
    ),
    "plan-interval-frozen": (_interval_of_a_subscribed_plan, "gpt4_v2"),
    "charge-model-frozen": (_model_of_a_subscribed_charge, "charge_model"),
    "metric-field-frozen": (_field_of_a_used_metric, "used by gpt4"),
    "plan-pruned": (_plan_pruned, "Plan enterprise is not in the templates"),
    "metric-pruned": (_metric_pruned, "Metric images is not in the templates"),
}


@pytest.mark.parametrize("case", list(BLOCKED_CASES))
def test_every_blocked_case_exits_3_and_writes_nothing(
    lago_emulator: EmulatorServer,
    run: Callable[..., Result],
    client: LagoClient,
    tmp_path: Path,
    case: str,
) -> None:
    arrange, reason = BLOCKED_CASES[case]
    args = arrange(client, tmp_path)
    lago_emulator.requests.reset()

    planned = run("plan", *args)
    applied = run("apply", *args, "--yes")
    as_json = run("apply", *args, "--yes", "--json")

    assert planned.exit_code == applied.exit_code == as_json.exit_code == 3
    document = json.loads(as_json.stdout)
    assert document["writes"] == []
    assert document["plan"]["summary"]["blocked"] >= 1
    assert reason in applied.stdout
    assert "remedy:" in applied.stdout
    assert "blocked by a safety rule, so nothing was written" in applied.stderr
    assert "blocked by a safety rule, so apply would write nothing" in planned.stderr
    assert writes(lago_emulator) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("charge-deleted", [("DELETE", "/api/v1/plans/gpt4/charges/llm_tokens_batch")]),
        (
            "value-priced-elsewhere",
            [
                ("PUT", "/api/v1/plans/gpt4/charges/llm_tokens"),
                ("PUT", "/api/v1/billable_metrics/llm_tokens"),
            ],
        ),
        (
            "value-priced-only-outside",
            [
                ("POST", "/api/v1/plans"),
                ("PUT", "/api/v1/billable_metrics/llm_tokens"),
            ],
        ),
        ("plan-pruned", [("DELETE", "/api/v1/plans/enterprise")]),
        ("metric-pruned", [("DELETE", "/api/v1/billable_metrics/images")]),
    ],
)
def test_allow_destroy_carries_out_what_was_blocked(
    lago_emulator: EmulatorServer,
    run: Callable[..., Result],
    client: LagoClient,
    tmp_path: Path,
    case: str,
    expected: list[tuple[str, str]],
) -> None:
    args = BLOCKED_CASES[case][0](client, tmp_path)
    lago_emulator.requests.reset()

    result = run("apply", *args, "--yes", "--allow-destroy")

    assert result.exit_code == 0, result.stderr
    assert writes(lago_emulator) == expected


@pytest.mark.parametrize(
    "case", ["plan-interval-frozen", "charge-model-frozen", "metric-field-frozen"]
)
def test_a_field_lago_keeps_stays_blocked_with_allow_destroy(
    lago_emulator: EmulatorServer,
    run: Callable[..., Result],
    client: LagoClient,
    tmp_path: Path,
    case: str,
) -> None:
    args = BLOCKED_CASES[case][0](client, tmp_path)
    lago_emulator.requests.reset()

    result = run("apply", *args, "--yes", "--allow-destroy")

    assert result.exit_code == 3
    assert "_v2" in result.stdout
    assert writes(lago_emulator) == []


def test_export_to_stdout_and_to_a_file(
    run: Callable[..., Result], client: LagoClient, tmp_path: Path
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))
    target = tmp_path / "out.yaml"

    printed = run("export", "--plan", "gpt4")
    saved = run("export", "-o", target)
    missing = run("export", "--plan", "nope")

    assert yaml.safe_load(printed.stdout)["plans"][0]["code"] == "gpt4"
    assert saved.stdout == ""
    assert f"Wrote {target}" in saved.stderr
    assert yaml.safe_load(target.read_text())["billable_metrics"][0]["code"] == (
        "llm_tokens"
    )
    assert missing.exit_code == 1
    assert missing.stderr == "Error: Lago has no plan with code 'nope'.\n"


@pytest.mark.parametrize(("env", "coloured"), [({}, True), ({"NO_COLOR": "1"}, False)])
def test_colour_follows_no_color_and_prefixes_carry_the_meaning(
    run: Callable[..., Result],
    client: LagoClient,
    tmp_path: Path,
    env: dict[str, str],
    coloured: bool,
) -> None:
    sync(client, write(tmp_path, "gpt4.yaml", GPT4))

    result = run("plan", write(tmp_path, "gpt4.yaml", PRICE_RAISED), **env)

    assert ("\x1b[" in result.stdout) is coloured
    assert f"~ {PRICE_LINE}" in click.unstyle(result.stdout)


def test_the_quickstart_works_on_the_embedded_emulator_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = write(tmp_path, "gpt4.yaml", GPT4)
    monkeypatch.chdir(tmp_path)

    first = CliRunner().invoke(main, ["apply", str(template), "--yes"])
    again = CliRunner().invoke(main, ["plan", str(template), "--detailed-exitcode"])

    assert first.exit_code == 0, first.stderr
    assert "Using the embedded Lago emulator" in first.stderr
    assert (tmp_path / ".tokbill" / "lago.sqlite3").exists()
    assert again.exit_code == 0, again.stderr


def test_export_to_an_unwritable_path_is_one_error_line(
    run: Callable[..., Result], tmp_path: Path
) -> None:
    target = tmp_path / "no-such-dir" / "out.yaml"

    result = run("export", "-o", target)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: Could not open file {str(target)!r}: No such file or directory\n"
    )


def test_apply_json_needs_yes_as_it_shows_no_plan_to_confirm(
    lago_emulator: EmulatorServer,
    run: Callable[..., Result],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tokbill.cli.sync._stdin_is_tty", lambda: True)

    result = run("apply", write(tmp_path, "gpt4.yaml", GPT4), "--json", input="y\n")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "--json needs --yes" in result.stderr
    assert len(lago_emulator.requests) == 0
