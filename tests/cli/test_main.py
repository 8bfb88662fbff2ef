"""The ``tokbill-sync`` group itself: help, version, errors, colour, logging.

A few throwaway commands are registered next to the real ones, so the group's
handling of each kind of failure is tested without depending on what a
component happens to raise.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

import tokbill
import tokbill.cli
from tokbill import (
    AuthenticationError,
    BlockedError,
    LagoConnectionError,
    SyncError,
    TemplateError,
)
from tokbill.cli import main

_FAILURES: dict[str, Exception] = {
    "sync": SyncError("Lago still differs from the template."),
    "blocked": BlockedError(
        "Deleting plan gpt4 is blocked; rerun with --allow-destroy."
    ),
    "template": TemplateError(["a.yaml:3: code: is required.", "a.yaml:9: bad."]),
    "auth": AuthenticationError(
        method="GET",
        path="/api/v1/plans",
        status_code=401,
        reason="Unauthorized",
        body={"status": 401, "error": "Unauthorized"},
    ),
    "refused": LagoConnectionError(
        "GET /api/v1/plans could not reach Lago at http://127.0.0.1:9/api/v1.",
        method="GET",
        path="/api/v1/plans",
    ),
    "os": FileNotFoundError(2, "No such file or directory", "out/x.yaml"),
    "bug": KeyError("charges"),
}


@click.command()
@click.argument("kind")
def fail(kind: str) -> None:
    """Raise the failure named KIND."""
    raise _FAILURES[kind]


@click.command()
def colour() -> None:
    """Print coloured text on both streams."""
    click.echo(click.style("stdout", fg="green"))
    click.echo(click.style("stderr", fg="red"), err=True)


@click.command()
def chatty() -> None:
    """Log at every level, once with a bearer token in the message."""
    log = logging.getLogger("tokbill.chatty")
    log.debug("debug line")
    log.info("info line")
    log.warning("retrying after Bearer sk_live_0123456789abcdef was refused")


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    for name, command in {"fail": fail, "colour": colour, "chatty": chatty}.items():
        monkeypatch.setitem(
            tokbill.cli._SUBCOMMANDS, name, (f"{__name__}:{name}", command.__doc__)
        )

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(main, list(args), env=env, color=True)

    return invoke


def test_help_lists_every_command_without_importing_any() -> None:
    probe = (
        "import sys; from click.testing import CliRunner; "
        "from tokbill.cli import main; "
        "result = CliRunner().invoke(main, ['--help']); "
        "print(result.exit_code); print(result.stdout); "
        "print([m for m in sys.modules if m.startswith("
        "('tokbill.cli.', 'tokbill.sync', 'tokbill.emulator', 'tokbill.ingest', "
        "'tokbill.usage', 'httpx'))])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    exit_code, *help_text, imported = done.stdout.strip().splitlines()
    assert exit_code == "0"
    listed = help_text[help_text.index("Commands:") + 1 :]
    names = [line.split()[0] for line in listed if line.startswith("  ")][:7]
    assert names == ["validate", "plan", "apply", "export", "send", "usage", "emulator"]
    assert imported == "['tokbill.cli._common']"


@pytest.mark.parametrize(
    ("command", "codes", "last_says"),
    [
        ([], "0123", "blocked by a safety rule"),
        (["validate"], "01", "error"),
        (["plan"], "0123", "blocked by a safety rule"),
        (["apply"], "013", "blocked by a safety rule"),
        (["export"], "01", "error"),
        (["send"], "01", "an undelivered event"),
        (["usage"], "01", "error"),
        (["emulator"], "01", "error"),
    ],
    ids=["main", "validate", "plan", "apply", "export", "send", "usage", "emulator"],
)
def test_help_lists_the_exit_codes_each_command_can_return(
    command: list[str], codes: str, last_says: str
) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])

    listed = result.stdout.split("Exit codes:\n")[1].splitlines()
    assert "".join(line.split()[0] for line in listed) == codes
    assert last_says in listed[-1]


def test_version_names_the_program_and_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])

    assert result.exit_code == 0
    assert result.stdout == f"tokbill-sync, version {tokbill.__version__}\n"


@pytest.mark.parametrize(
    ("kind", "exit_code", "stderr"),
    [
        ("sync", 1, "Error: Lago still differs from the template.\n"),
        (
            "blocked",
            3,
            "Error: Deleting plan gpt4 is blocked; rerun with --allow-destroy.\n",
        ),
        ("template", 1, "Error: a.yaml:3: code: is required.\nError: a.yaml:9: bad.\n"),
        (
            "auth",
            1,
            "Error: GET /api/v1/plans returned 401 Unauthorized. Check the "
            "API key (--api-key or LAGO_API_KEY).\n",
        ),
        (
            "refused",
            1,
            "Error: GET /api/v1/plans could not reach Lago at "
            "http://127.0.0.1:9/api/v1. Check the URL (--api-url or LAGO_API_URL) "
            "and that Lago is up.\n",
        ),
        ("os", 1, "Error: out/x.yaml: No such file or directory.\n"),
        (
            "bug",
            1,
            "Error: unexpected KeyError: 'charges'. This is a bug in "
            "tokbill; rerun with --debug for the traceback and please report it.\n",
        ),
    ],
)
def test_a_failure_is_one_sentence_on_stderr_with_its_exit_code(
    run: Callable[..., Result], kind: str, exit_code: int, stderr: str
) -> None:
    result = run("fail", kind)

    assert result.exit_code == exit_code
    assert result.stdout == ""
    assert result.stderr == stderr
    assert isinstance(result.exception, SystemExit)


def test_debug_lets_the_exception_through(run: Callable[..., Result]) -> None:
    result = run("--debug", "fail", "blocked")

    assert isinstance(result.exception, BlockedError)
    assert result.exit_code == 1
    assert "Error:" not in result.stderr


def test_debug_prints_the_traceback_of_a_real_process(tmp_path: Path) -> None:
    def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
        code = "from tokbill.cli import main; main()"
        command = [sys.executable, "-c", code, *args, "validate", "missing.yaml"]
        return subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, timeout=60
        )

    quiet, loud = run_cli(), run_cli("--debug")

    assert quiet.returncode == loud.returncode == 1
    assert "Traceback" not in quiet.stderr
    assert quiet.stderr.startswith("Error: missing.yaml")
    assert "Traceback (most recent call last)" in loud.stderr
    assert "TemplateError" in loud.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    template = Path(__file__).parents[2] / "templates" / "gpt4.yaml"
    read_end, write_end = os.pipe()
    os.close(read_end)  # Every write to stdout now fails with EPIPE.
    code = "from tokbill.cli import main; main()"
    command = [sys.executable, "-c", code, "validate", str(template)]

    try:
        done = subprocess.run(
            command, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write_end)

    assert done.returncode == 1
    assert done.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--detailed-exitcode", "--no-such-option", "t.yaml"],
        ["plan", "--detailed-exitcode"],
        ["plna"],
        ["--no-such-option"],
    ],
    ids=["unknown-option", "missing-argument", "unknown-command", "group-option"],
)
def test_a_usage_error_exits_1_not_2_which_means_changes_pending(
    args: list[str],
) -> None:
    result = CliRunner().invoke(main, args)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Usage: ")
    assert "Error: " in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "coloured"),
    [
        (["colour"], {}, True),
        (["colour"], {"NO_COLOR": "1"}, False),
        (["--no-color", "colour"], {}, False),
    ],
    ids=["default", "NO_COLOR", "--no-color"],
)
def test_no_color_and_the_flag_strip_colour_from_both_streams(
    run: Callable[..., Result], args: list[str], env: dict[str, str], coloured: bool
) -> None:
    result = run(*args, env=env)

    assert result.exit_code == 0
    assert click.unstyle(result.stdout) == "stdout\n"
    assert click.unstyle(result.stderr) == "stderr\n"
    assert ("\x1b[" in result.stdout) is coloured
    assert ("\x1b[" in result.stderr) is coloured


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        ([], ["WARNING: retrying"]),
        (["-v"], ["INFO tokbill.chatty: info", "WARNING tokbill.chatty: retrying"]),
        (["-vv"], ["DEBUG tokbill.chatty: debug", "INFO", "WARNING"]),
        (["--debug"], ["DEBUG tokbill.chatty: debug", "INFO", "WARNING"]),
    ],
)
def test_logs_go_to_stderr_by_verbosity_with_the_key_redacted(
    run: Callable[..., Result], flags: list[str], shown: list[str]
) -> None:
    handlers_before = list(logging.getLogger("tokbill").handlers)

    result = run(*flags, "chatty")

    lines = result.stderr.splitlines()
    assert result.exit_code == 0 and result.stdout == ""
    assert len(lines) == len(shown)
    assert all(line.startswith(start) for line, start in zip(lines, shown, strict=True))
    assert "Bearer ***" in lines[-1]
    assert "sk_live" not in result.stderr
    assert logging.getLogger("tokbill").handlers == handlers_before
