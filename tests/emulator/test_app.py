"""The HTTP surface: auth, envelopes, routing, the request log, how it is run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from tests.emulator.lago import api_client, create_metric, ok
from tokbill import ConfigurationError
from tokbill.cli import main
from tokbill.emulator import EmulatorServer, embedded_url
from tokbill.emulator.testing import running_emulator


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Token"], ids=["none", "empty", "bare"]
)
def test_request_without_a_key_is_401(
    lago_emulator: EmulatorServer, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}

    response = httpx.get(f"{lago_emulator.api_url}/billable_metrics", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"status": 401, "error": "Unauthorized"}


def test_configured_key_is_the_only_one_accepted() -> None:
    with running_emulator(api_key="right") as server:
        url = f"{server.api_url}/plans"
        wrong = httpx.get(url, headers={"Authorization": "Bearer wrong"})
        right = httpx.get(url, headers={"Authorization": "Bearer right"})

    assert (wrong.status_code, right.status_code) == (401, 200)
    assert "right" not in repr(server)


def test_the_key_is_the_second_word_of_the_header_whatever_the_spacing() -> None:
    with running_emulator(api_key="right") as server:
        url = f"{server.api_url}/plans"
        spaced = httpx.get(url, headers={"Authorization": "Bearer   right"})
        tabbed = httpx.get(url, headers={"Authorization": "Token\tright"})

    assert (spaced.status_code, tabbed.status_code) == (200, 200)


def test_missing_root_key_is_400(api: httpx.Client) -> None:
    response = api.post("/billable_metrics", json={"metric": {}})

    assert response.status_code == 400
    assert response.json() == {
        "status": 400,
        "error": "BadRequest: param is missing or the value is empty or invalid: "
        "billable_metric",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nothing"), ("PUT", "/events"), ("GET", "/plans/pro/extra/x")],
)
def test_unknown_route_is_resource_not_found(
    api: httpx.Client, method: str, path: str
) -> None:
    response = api.request(method, path)

    assert (response.status_code, response.json()["code"]) == (
        404,
        "resource_not_found",
    )


def test_codes_with_slashes_work_when_url_encoded(api: httpx.Client) -> None:
    create_metric(api, "team/tokens?#%", filters=[])

    found = ok(api.get("/billable_metrics/team%2Ftokens%3F%23%25"))

    assert found["billable_metric"]["code"] == "team/tokens?#%"


def test_request_log_tells_reads_from_writes(
    api: httpx.Client, lago_emulator: EmulatorServer
) -> None:
    create_metric(api)
    api.get("/billable_metrics/llm_tokens")
    api.get("/billable_metrics/missing")

    logged = [(e.method, e.path, e.status) for e in lago_emulator.requests]
    writes = lago_emulator.requests.writes()
    lago_emulator.requests.reset()

    assert logged == [
        ("POST", "/api/v1/billable_metrics", 200),
        ("GET", "/api/v1/billable_metrics/llm_tokens", 200),
        ("GET", "/api/v1/billable_metrics/missing", 404),
    ]
    assert [entry.method for entry in writes] == ["POST"]
    assert len(lago_emulator.requests) == 0


def test_failed_request_changes_nothing(
    api: httpx.Client, lago_emulator: EmulatorServer
) -> None:
    metric = create_metric(api)
    plan = {
        "name": "P",
        "code": "p",
        "interval": "monthly",
        "amount_cents": 0,
        "amount_currency": "USD",
        "pay_in_advance": False,
        "charges": [
            {
                "billable_metric_id": metric["lago_id"],
                "charge_model": "package",
                "properties": {"amount": "1", "package_size": 1, "free_units": 0},
            },
            {
                "billable_metric_id": metric["lago_id"],
                "charge_model": "package",
                "properties": {"amount": 1},
            },
        ],
    }

    response = api.post("/plans", json={"plan": plan})

    assert response.status_code == 422
    assert lago_emulator.store.plans() == []


def test_state_in_a_file_survives_a_restart(tmp_path: Path) -> None:
    db_path = tmp_path / "state" / "lago.sqlite3"
    with running_emulator(db_path=db_path) as first, api_client(first) as api:
        create_metric(api)

    with running_emulator(db_path=db_path) as second:
        assert [m["code"] for m in second.store.metrics()] == ["llm_tokens"]


def test_a_state_file_that_is_no_database_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    db_path = tmp_path / "lago.sqlite3"
    db_path.write_bytes(b"not a database, " * 64)

    with pytest.raises(ConfigurationError, match="cannot keep its state in") as raised:
        EmulatorServer(db_path=db_path)
    result = CliRunner().invoke(main, ["emulator", "--port", "0", "--db", str(db_path)])

    assert "delete this one to start afresh" in str(raised.value)
    assert result.exit_code == 1
    assert "cannot keep its state in" in result.output
    assert "bug" not in result.output


def test_a_state_file_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    db_path = tmp_path / "lago.sqlite3"
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version = 99")

    with pytest.raises(ConfigurationError, match="schema version 99") as raised:
        EmulatorServer(db_path=db_path)

    assert str(db_path) in str(raised.value)
    assert "Delete the file" in str(raised.value)


def test_embedded_url_is_one_server_per_file(tmp_path: Path) -> None:
    db_path = tmp_path / "nested" / "lago.sqlite3"

    first = embedded_url(db_path)
    second = embedded_url(str(db_path))

    assert first == second
    assert first.startswith("http://127.0.0.1:") and first.endswith("/api/v1")
    response = httpx.get(f"{first}/plans", headers={"Authorization": "Bearer k"})
    assert response.status_code == 200
    assert db_path.exists()


@contextmanager
def _cli_emulator(*options: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``tokbill-sync emulator`` in a subprocess: its stderr line, and itself.

    Ctrl-C (SIGINT) stops it when the block ends. The child handles SIGINT as
    a terminal's Python does even when pytest runs in the background, where
    the shell makes it (and so the child) ignore SIGINT; a child that still
    does not stop is killed, so the test fails instead of hanging.
    """
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from tokbill.cli.emulator import emulator; emulator()"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", *options],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        try:
            assert process.stderr is not None
            yield process.stderr.readline(), process
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _api_url(line: str) -> str:
    return line.split("(API ")[1].split(",")[0]


def test_cli_command_serves_until_interrupted() -> None:
    with _cli_emulator("--api-key", "secret") as (line, process):
        response = httpx.get(
            f"{_api_url(line)}/plans", headers={"Authorization": "Bearer secret"}
        )

    assert line.startswith("Lago emulator listening on http://127.0.0.1:")
    assert "secret" not in line
    assert response.status_code == 200
    assert process.returncode == 0


def test_cli_fault_options_apply_from_the_start_and_change_live() -> None:
    options = ("--rate-limit-rate", "1", "--fault-path", "/api/v1/plans")
    headers = {"Authorization": "Bearer k"}
    with _cli_emulator(*options) as (line, _):
        api_url = _api_url(line)
        limited = httpx.get(f"{api_url}/plans", headers=headers)
        elsewhere = httpx.get(f"{api_url}/billable_metrics", headers=headers)
        control = api_url.removesuffix("/api/v1") + "/_emulator/faults"
        changed = httpx.post(control, json={"rate_limit_rate": 0, "error_rate": 1})
        failing = httpx.get(f"{api_url}/plans", headers=headers)

    assert limited.status_code == 429
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert elsewhere.status_code == 200
    assert changed.json()["faults"]["error_rate"] == 1
    assert failing.status_code in (500, 502, 503)
