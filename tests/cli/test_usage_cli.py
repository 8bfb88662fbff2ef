from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from tests.emulator.lago import (
    api_client,
    charge,
    create_metric,
    create_plan,
    event,
    package,
    price,
    send,
    subscribe,
    tokens,
)
from tokbill.cli import main
from tokbill.emulator import EmulatorServer
from tokbill.emulator.testing import running_emulator

KEY = "test-key"
MODELS = {"key": "model", "values": ["gpt-4", "gpt-4-32k"]}
TYPES = {"key": "type", "values": ["input", "output"]}


@pytest.fixture(scope="module")
def lago() -> Iterator[EmulatorServer]:
    """cus_1 has two active subscriptions on a GPT-4 price list, cus_2 none.

    sub_a: gpt-4 input 2,500 -> ceil(2.5) = 3 packages x 0.03 = 0.09;
           gpt-4 output 1,000 -> 1 x 0.06 = 0.06; total 0.15.
    sub_b: gpt-4-32k output 4,001 -> ceil(4.001) = 5 x 0.12 = 0.60.
    """
    headers = {"Authorization": f"Bearer {KEY}"}
    with (
        running_emulator() as server,
        httpx.Client(base_url=server.api_url, headers=headers) as api,
    ):
        metric = create_metric(api, filters=[MODELS, TYPES])
        prices = [
            price({"model": [model], "type": [kind]}, package(amount, 1000))
            for model, kind, amount in [
                ("gpt-4", "input", "0.03"),
                ("gpt-4", "output", "0.06"),
                ("gpt-4-32k", "input", "0.06"),
                ("gpt-4-32k", "output", "0.12"),
            ]
        ]
        create_plan(api, [charge(metric, package("0", 1000), prices)], code="gpt4")
        for subscription in ("sub_a", "sub_b"):
            subscribe(api, "gpt4", subscription, customer="cus_1")
        subscribe(api, "gpt4", "sub_x", customer="cus_2")
        api.delete("/subscriptions/sub_x").raise_for_status()
        send(
            api,
            [
                tokens("gpt-4", "input", 1200, subscription="sub_a"),
                tokens("gpt-4", "input", 1300, subscription="sub_a"),
                tokens("gpt-4", "output", 1000, subscription="sub_a"),
                tokens("gpt-4-32k", "output", 4001, subscription="sub_b"),
            ],
        )
        yield server


def run(lago: EmulatorServer, *args: str) -> Result:
    options = ["--api-url", lago.api_url, "--api-key", KEY]
    return CliRunner().invoke(main, ["usage", *options, *args])


def test_one_subscription_as_a_table(lago: EmulatorServer) -> None:
    result = run(lago, "cus_1", "--subscription", "sub_a")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Customer cus_1, subscription sub_a"
    assert lines[1].startswith("Period ") and lines[1].endswith(" UTC, USD")
    rows = [line.split() for line in lines[3:]]
    assert rows[0] == ["metric", "model", "type", "tokens", "amount"]
    assert ["llm_tokens", "gpt-4", "input", "2,500", "0.09"] in rows
    assert ["llm_tokens", "gpt-4", "output", "1,000", "0.06"] in rows
    assert ["llm_tokens", "gpt-4-32k", "output", "0", "0.00"] in rows
    assert ["llm_tokens", "(other)", "0", "0.00"] in rows
    assert rows[-1] == ["total", "3,500", "0.15"]
    assert result.stderr == ""


def test_without_a_subscription_every_active_one_is_shown(lago: EmulatorServer) -> None:
    result = run(lago, "cus_1")

    assert result.exit_code == 0, result.stderr
    assert "subscription sub_a (plan gpt4)" in result.stdout
    assert "subscription sub_b (plan gpt4)" in result.stdout
    totals = [
        line.split() for line in result.stdout.splitlines() if line.startswith("total")
    ]
    assert sorted(totals) == [["total", "3,500", "0.15"], ["total", "4,001", "0.60"]]


def test_a_charge_without_filters_is_not_shown_as_a_default_bucket() -> None:
    with running_emulator() as server, api_client(server) as api:
        tokens_metric = create_metric(api, filters=[MODELS, TYPES])
        calls_metric = create_metric(api, code="api_calls", filters=[])
        gpt4_input = price({"model": ["gpt-4"], "type": ["input"]}, package("1", 1))
        charges = [
            charge(tokens_metric, package("0", 1000), [gpt4_input]),
            charge(calls_metric, package("0.50", 1)),
        ]
        create_plan(api, charges, code="mixed")
        subscribe(api, "mixed", "sub_m", customer="cus_m")
        send(
            api,
            [
                tokens("gpt-4", "input", 2, subscription="sub_m"),
                tokens("gpt-4-32k", "output", 7, subscription="sub_m"),
                event({"tokens": 3}, subscription="sub_m", code="api_calls"),
            ],
        )

        result = run(server, "cus_m", "--subscription", "sub_m")

    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["llm_tokens", "gpt-4", "input", "2", "2.00"] in rows
    assert ["llm_tokens", "(other)", "7", "0.00"] in rows
    assert ["api_calls", "3", "1.50"] in rows


def test_json_is_one_document_with_decimal_strings(lago: EmulatorServer) -> None:
    result = run(lago, "cus_1", "--json")

    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["customer_id"] == "cus_1"
    by_id = {doc["subscription_id"]: doc for doc in document["subscriptions"]}
    sub_a, sub_b = by_id["sub_a"], by_id["sub_b"]
    assert (sub_a["subscription_id"], sub_a["plan_code"]) == ("sub_a", "gpt4")
    assert (sub_a["amount"], sub_a["total_amount"], sub_a["units"]) == (
        "0.15",
        "0.15",
        "3500",
    )
    assert sub_b["amount"] == "0.60"
    gpt4_input = next(
        line
        for line in sub_a["lines"]
        if line["filters"] == {"model": ["gpt-4"], "type": ["input"]}
    )
    assert gpt4_input == {
        "metric_code": "llm_tokens",
        "charge_code": "llm_tokens",
        "filters": {"model": ["gpt-4"], "type": ["input"]},
        "units": "2500",
        "amount": "0.09",
        "events_count": 2,
    }


def test_watch_prints_successive_tables_when_not_a_terminal(
    lago: EmulatorServer,
) -> None:
    result = run(
        lago, "cus_1", "--subscription", "sub_b", "--watch", "0.001", "--count", "3"
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("Every 0.001s") == 3
    totals = [
        line.split() for line in result.stdout.splitlines() if line.startswith("total")
    ]
    assert totals == [["total", "4,001", "0.60"]] * 3


class _CtrlCOnSleep:
    """Stands in for ``time`` in the usage module: sleeping is a Ctrl-C."""

    @staticmethod
    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt


def test_ctrl_c_ends_a_watch_cleanly(
    lago: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tokbill.cli.usage.time", _CtrlCOnSleep)

    result = run(lago, "cus_1", "--subscription", "sub_b", "--watch", "5")

    assert result.exit_code == 0
    assert result.stdout.count("total ") == 1
    assert result.stderr == "\n"


def test_an_unknown_customer_exits_1_with_a_sentence(lago: EmulatorServer) -> None:
    result = run(lago, "cus_nobody")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "Error: Lago has no customer with external id 'cus_nobody'"
    )


def test_a_customer_without_active_subscriptions_says_so(lago: EmulatorServer) -> None:
    result = run(lago, "cus_2")

    assert result.exit_code == 1
    assert "Customer 'cus_2' has no active subscription" in result.stderr


def test_a_terminated_subscription_explains_the_405(lago: EmulatorServer) -> None:
    result = run(lago, "cus_2", "--subscription", "sub_x")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Subscription 'sub_x' of customer 'cus_2' was terminated at 20"
    )
    assert "Lago only reports usage of active subscriptions." in result.stderr
    assert result.stdout == ""


def test_an_unknown_subscription_explains_the_405(lago: EmulatorServer) -> None:
    result = run(lago, "cus_1", "--subscription", "sub_nowhere")

    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: Customer 'cus_1' has no active subscription 'sub_nowhere' "
        "(Lago: 405 no_active_subscription): tokbill found none with that id;"
    )


def test_another_customers_subscription_names_its_owner(lago: EmulatorServer) -> None:
    result = run(lago, "cus_2", "--subscription", "sub_a", "--json")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "belongs to customer 'cus_1', not 'cus_2'" in result.stderr


@pytest.mark.parametrize(
    "args", [[], ["--subscription", "sub_a"]], ids=["listing", "one-subscription"]
)
def test_a_rejected_key_names_the_setting_to_check(
    lago: EmulatorServer, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    # No key at all: the emulator, like Lago, answers 401.
    monkeypatch.delenv("LAGO_API_KEY", raising=False)

    result = CliRunner().invoke(
        main, ["usage", "--api-url", lago.api_url, "cus_1", *args]
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "returned 401 Unauthorized." in result.stderr
    assert result.stderr.endswith("Check the API key (--api-key or LAGO_API_KEY).\n")


def test_an_unreachable_lago_names_the_setting_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Nothing listens on port 9; skip the backoff between the retries.
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda seconds: None)
    args = ["usage", "--api-url", "http://127.0.0.1:9", "--api-key", KEY]

    result = CliRunner().invoke(main, [*args, "cus_1", "--subscription", "sub_a"])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].endswith(
        "Check the URL (--api-url or LAGO_API_URL) and that Lago is up."
    )


@pytest.mark.parametrize(
    ("key", "exit_code"),
    [("sk_copied_with_a_newline_0042\n", 0), ("sk_pasted_with a_space_0042", 1)],
    ids=["newline-dropped", "space-refused"],
)
def test_debug_output_of_a_real_process_never_shows_the_key(
    lago: EmulatorServer, key: str, exit_code: int
) -> None:
    code = "from tokbill.cli import main; main()"
    args = ["--debug", "-vv", "usage", "cus_1", "--subscription", "sub_b"]
    env = {**os.environ, "LAGO_API_URL": lago.api_url, "LAGO_API_KEY": key}

    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert done.returncode == exit_code, done.stderr
    output = done.stdout + done.stderr
    shown = "DEBUG tokbill.lago" if exit_code == 0 else "ConfigurationError"
    assert shown in output
    assert "sk_copied" not in output and "sk_pasted" not in output
    assert "0042" not in output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--json", "--watch", "2"], "drop --watch"),
        (["--count", "2"], "only applies with --watch"),
        (["--watch", "0"], "--watch"),
    ],
    ids=["json-and-watch", "count-alone", "zero-interval"],
)
def test_option_mistakes_are_usage_errors(
    lago: EmulatorServer, args: list[str], message: str
) -> None:
    result = run(lago, "cus_1", *args)

    # 1, not click's usual 2, which means "changes pending" to plan.
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stdout == ""


class _Terminal:
    """Stands in for ``sys`` in the usage module: stdout claims to be a tty."""

    class stdout:  # noqa: N801 - mirrors the attribute it replaces
        @staticmethod
        def isatty() -> bool:
            return True


@pytest.mark.parametrize(
    ("flags", "no_color_env", "in_place"),
    [([], "", True), (["--no-color"], "", False), ([], "1", False)],
    ids=["colour", "no-color-flag", "NO_COLOR"],
)
def test_watch_redraws_in_place_on_a_terminal_unless_colour_is_off(
    lago: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    no_color_env: str,
    in_place: bool,
) -> None:
    monkeypatch.setattr("tokbill.cli.usage.sys", _Terminal)
    monkeypatch.setenv("NO_COLOR", no_color_env)
    options = ["--api-url", lago.api_url, "--api-key", KEY]
    args = [*flags, "usage", *options, "cus_1", "--subscription", "sub_b"]

    result = CliRunner().invoke(
        main, [*args, "--watch", "0.001", "--count", "2"], color=True
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\x1b[2J") == (2 if in_place else 0)
    assert ("\x1b[" in result.stdout) is in_place
    assert result.stdout.count("total ") == 2
    # Not in place, a blank line parts one refresh from the next.
    assert ("\n\nEvery 0.001s" in click.unstyle(result.stdout)) is not in_place


def test_verbose_logs_one_line_per_subscription_read(lago: EmulatorServer) -> None:
    options = ["--api-url", lago.api_url, "--api-key", KEY]

    result = CliRunner().invoke(main, ["-v", "usage", *options, "cus_1", "--json"])

    assert result.exit_code == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == [
        "INFO tokbill.cli.usage: Read the current usage of subscription "
        f"{sub}: 5 line(s), {amount} USD."
        for sub, amount in [("sub_a", "0.15"), ("sub_b", "0.60")]
    ]
    assert len(json.loads(result.stdout)["subscriptions"]) == 2
