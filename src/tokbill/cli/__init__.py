"""The ``tokbill-sync`` command line.

Subcommands live in the module of their component and are imported only when
used, so ``tokbill-sync --help`` and ``validate`` start without loading the
emulator or the ingestion stack.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import click
from typing_extensions import override

from tokbill import __version__
from tokbill._errors import (
    AuthenticationError,
    BlockedError,
    LagoConnectionError,
    LagoTimeoutError,
    TemplateError,
    TokbillError,
    UsageError,
)
from tokbill._secrets import RedactingFilter
from tokbill._settings import API_KEY_ENV, API_URL_ENV
from tokbill.cli._common import EXIT_BLOCKED, EXIT_CODES_HELP, EXIT_ERROR

__all__ = ["main"]

_DEBUG = "tokbill.debug"
"""The context key that holds --debug."""

_SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("tokbill.cli.sync:validate", "Check templates offline."),
    "plan": ("tokbill.cli.sync:plan", "Show what apply would change in Lago."),
    "apply": ("tokbill.cli.sync:apply", "Make Lago match the templates."),
    "export": ("tokbill.cli.sync:export", "Write a template from a live Lago."),
    "send": ("tokbill.cli.send:send", "Send recorded token usage to Lago."),
    "usage": ("tokbill.cli.usage:usage", "Show a customer's current usage."),
    "emulator": ("tokbill.cli.emulator:emulator", "Run the Lago emulator."),
}


class _TokbillGroup(click.Group):
    """Loads subcommands on demand and turns tokbill errors into exit codes."""

    @override
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_SUBCOMMANDS)

    @override
    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _SUBCOMMANDS:
            return None
        module_name, attribute = _SUBCOMMANDS[cmd_name][0].split(":")
        module = importlib.import_module(module_name)
        command: click.Command = getattr(module, attribute)
        return command

    @override
    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        # The short help is kept here so --help imports no subcommand module.
        rows = [(name, short_help) for name, (_, short_help) in _SUBCOMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    @override
    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            _exit_with_1(exc)
            raise

    @override
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _exit_with_1(exc)
            raise
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BrokenPipeError:
            # The reader of stdout went away (`usage --watch | head`): nobody
            # is left to read an error, so end quietly, but not with 0, since
            # the output was cut short.
            _discard_stdout()
            ctx.exit(EXIT_ERROR)
        except Exception as exc:
            if ctx.meta.get(_DEBUG):
                raise
            for line in _error_lines(exc):
                click.echo(f"Error: {line}", err=True)
            ctx.exit(EXIT_BLOCKED if isinstance(exc, BlockedError) else EXIT_ERROR)


def _exit_with_1(exc: click.UsageError) -> None:
    """Make a usage error exit 1, since 2 means "changes pending" to ``plan``."""
    # click types exit_code as a class constant, but its main() exits with
    # the instance's value, so one error can carry its own.
    exc.exit_code = EXIT_ERROR  # type: ignore[misc]


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit raises nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
    finally:
        os.close(devnull)


def _error_lines(exc: Exception) -> Sequence[str]:
    """What a person needs to read about ``exc``, without a traceback."""
    if isinstance(exc, TemplateError) and exc.problems:
        return exc.problems
    # A UsageError carries the Lago error that caused it; its hint still fits.
    cause = exc.__cause__ if isinstance(exc, UsageError) else exc
    if isinstance(cause, AuthenticationError):
        return [f"{exc} Check the API key (--api-key or {API_KEY_ENV})."]
    if isinstance(cause, LagoConnectionError) and not isinstance(
        cause, LagoTimeoutError
    ):
        hint = f"Check the URL (--api-url or {API_URL_ENV}) and that Lago is up."
        return [f"{exc} {hint}"]
    if isinstance(exc, TokbillError):
        return [str(exc)]
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return [f"{where}{exc.strerror}."]
    return [
        f"unexpected {type(exc).__name__}: {exc}. This is a bug in tokbill; "
        "rerun with --debug for the traceback and please report it."
    ]


@click.group(cls=_TokbillGroup, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="tokbill-sync")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option(
    "-v", "--verbose", count=True, help="Log progress on stderr (-vv for debug)."
)
@click.option(
    "--no-color", is_flag=True, help="Never colour output (NO_COLOR does the same)."
)
@click.pass_context
def main(ctx: click.Context, debug: bool, verbose: int, no_color: bool) -> None:
    """Pricing as code, real-time token metering and live usage for Lago."""
    ctx.meta[_DEBUG] = debug
    if no_color or os.environ.get("NO_COLOR"):
        ctx.color = False
    ctx.call_on_close(_log_to_stderr(2 if debug else verbose))


class _EchoHandler(logging.Handler):
    """Writes log lines on the command's stderr, as click sees it at the time.

    Resolving the stream per line (not once, like ``StreamHandler``) keeps
    the lines on the right stream under ``CliRunner`` and in sender threads.
    """

    @override
    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:
            self.handleError(record)


def _log_to_stderr(verbosity: int) -> Callable[[], None]:
    """Show tokbill's logs on stderr; return what undoes it.

    Warnings (retries, dropped events) always show; ``-v`` adds one line per
    unit of work, ``-vv`` debug lines. Without this handler, Python's
    last-resort handler would print warnings unformatted and unredacted.
    """
    handler = _EchoHandler()
    handler.addFilter(RedactingFilter())
    # Upper case tells a log line from the command's own "Error: " verdict.
    line = "%(levelname)s: %(message)s"
    if verbosity > 0:
        line = "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(line))
    logger = logging.getLogger("tokbill")
    previous_level = logger.level
    logger.addHandler(handler)
    levels = {0: logging.WARNING, 1: logging.INFO}
    logger.setLevel(levels.get(verbosity, logging.DEBUG))

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)

    return undo
