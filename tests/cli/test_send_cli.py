from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from tokbill.cli import main
from tokbill.emulator import EmulatorServer
from tokbill.emulator.testing import running_emulator

TEMPLATE = Path(__file__).parents[2] / "templates" / "gpt4.yaml"


@pytest.fixture
def lago() -> Iterator[EmulatorServer]:
    with running_emulator() as server:
        yield server


def line(number: int, **changes: object) -> str:
    fields: dict[str, object] = {
        "subscription_id": "sub_cli",
        "model": "gpt-4",
        "input_tokens": 100 + number,
        "output_tokens": 10,
        "request_id": f"cli-{number}",
        "timestamp": 1785542400.25,
    }
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not None})


def run(lago: EmulatorServer, *args: str, stdin: str | None = None) -> Result:
    base = ["send", "--api-url", lago.url, "--api-key", "test-key"]
    return CliRunner().invoke(main, [*base, *args], input=stdin)


def test_bad_lines_are_named_and_the_rest_is_sent(
    lago: EmulatorServer, tmp_path: Path
) -> None:
    usage = tmp_path / "usage.jsonl"
    rows = [line(n) for n in range(10)]
    rows[2] = "{not json"
    rows[5] = line(5, input_tokens=-3)
    rows[7] = line(7, input_token=4)
    rows[9] = line(9, properties="tier=pro")
    rows.insert(8, "")
    usage.write_text("\n".join(rows) + "\n")

    result = run(lago, str(usage))

    assert result.exit_code == 1
    assert f"{usage}:3: not JSON" in result.stderr
    assert f"{usage}:6: input_tokens must not be negative" in result.stderr
    assert f"{usage}:8: unknown field input_token" in result.stderr
    assert f"{usage}:11: properties must be a mapping" in result.stderr
    assert "Read 11 lines: 6 recorded, 4 skipped as bad." in result.stdout
    assert "12 delivered" in result.stdout
    assert len(lago.store.events("sub_cli")) == 12


def test_stdin_with_json_output_and_a_clean_exit(lago: EmulatorServer) -> None:
    stdin = "\n".join(
        [line(1), line(2, timestamp="2026-08-01T00:00:00Z"), line(3, timestamp=None)]
    )

    result = run(lago, "-", "--json", stdin=stdin)

    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["events"] == {
        "recorded": 6,
        "acked": 6,
        "quarantined": 0,
        "dropped": 0,
        "pending": 0,
    }
    assert document["bad_lines"] == [] and document["complete"] is True
    stamps = {e["transaction_id"]: e["timestamp"] for e in lago.store.events()}
    assert stamps["cli-2:input"] == "2026-08-01T00:00:00.000Z"


def test_a_rerun_bills_nothing_twice(lago: EmulatorServer, tmp_path: Path) -> None:
    usage = tmp_path / "usage.jsonl"
    usage.write_text("\n".join(line(n) for n in range(30)))

    first = run(lago, str(usage))
    second = run(lago, str(usage))

    assert (first.exit_code, second.exit_code) == (0, 0)
    assert "60 delivered" in second.stdout
    assert len(lago.store.events("sub_cli")) == 60


def test_the_template_gives_the_metric(lago: EmulatorServer) -> None:
    result = run(lago, "-", "--template", str(TEMPLATE), stdin=line(1, model="gpt-5"))

    assert result.exit_code == 0, result.stderr
    events = lago.store.events("sub_cli")
    assert {e["code"] for e in events} == {"llm_tokens"} and len(events) == 2


def test_metric_and_template_exclude_each_other(lago: EmulatorServer) -> None:
    result = run(lago, "-", "--template", str(TEMPLATE), "--metric", "x", stdin="")

    assert result.exit_code == 1
    assert "not both" in result.stderr


def test_undelivered_events_make_it_fail(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result = CliRunner().invoke(
            main,
            ["send", "-", "--api-url", url, "--timeout", "0.3", "--json"],
            input=line(1),
        )

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["complete"] is False
    assert document["events"]["acked"] == 0


def test_progress_goes_to_stderr(lago: EmulatorServer) -> None:
    result = run(lago, "-", "--progress", stdin="\n".join(line(n) for n in range(5)))

    assert result.exit_code == 0
    assert "5 lines read" in result.stderr
    assert "lines read" not in result.stdout


def test_progress_ends_on_what_lago_acknowledged(lago: EmulatorServer) -> None:
    result = run(lago, "-", "--progress", stdin=line(1))

    last = result.stderr.splitlines()[-1].split("\r")[-1]
    assert result.exit_code == 0
    assert last == "1 line read, 2 events recorded, 2 acked, 0 bad lines"


def test_a_line_that_is_not_utf8_is_skipped_and_the_rest_sent(
    lago: EmulatorServer, tmp_path: Path
) -> None:
    usage = tmp_path / "usage.jsonl"
    latin1 = line(2).replace("sub_cli", "sub_caf\u00e9").encode("latin-1")
    usage.write_bytes(b"\n".join([line(1).encode(), latin1, line(3).encode()]))

    result = run(lago, str(usage))

    column = latin1.index(b"\xe9") + 1
    assert result.exit_code == 1
    assert result.stderr == (
        f"{usage}:2: not UTF-8 text (byte 0xe9 at column {column}).\n"
    )
    assert "Read 3 lines: 2 recorded, 1 skipped as bad." in result.stdout
    assert len(lago.store.events("sub_cli")) == 4


def test_a_timestamp_without_a_zone_is_a_bad_line_on_stdin(
    lago: EmulatorServer,
) -> None:
    stdin = "\n".join([line(1), line(2, timestamp="2026-08-01T00:00:00")])

    result = run(lago, "-", stdin=stdin)

    assert result.exit_code == 1
    assert result.stdout.startswith("Read 2 lines: 1 recorded, 1 skipped as bad.\n")
    assert result.stderr == (
        "<stdin>:2: timestamp '2026-08-01T00:00:00' has no time zone; add Z for "
        "UTC or an offset such as +02:00.\n"
    )
    assert len(lago.store.events("sub_cli")) == 2


def test_a_refused_key_stops_the_wait_and_says_which_setting_to_fix() -> None:
    with running_emulator(api_key="the-right-key") as lago:
        result = run(lago, "-", "--json", "--timeout", "20", stdin=line(1))
        text = run(lago, "-", "--timeout", "20", stdin=line(1))

        assert lago.store.events("sub_cli") == []

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["stopped"].startswith("401: ")
    assert document["events"]["acked"] == 0
    assert document["events"]["dropped"] == 2
    assert "Run again" not in text.stdout and "Run again" in text.stderr
    error = result.stderr.splitlines()[-1]
    assert error.startswith(
        "Error: Lago refused the events, so sending stopped after line 1: "
        "POST /api/v1/events/batch returned 401 Unauthorized."
    )
    assert "--api-key or LAGO_API_KEY" in error
    assert "test-key" not in result.stderr


def test_the_embedded_emulator_takes_events_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(main, ["send", "-"], input=line(1))

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Read 1 line: 1 recorded, 0 skipped as bad.\n")
    assert result.stderr.startswith("Using the embedded Lago emulator at ")
    assert "Events: 2 recorded, 2 delivered," in result.stdout
