"""The ``tokbill-sync`` command line.

Subcommands live in the module of their component and are imported only when
used, so ``tokbill-sync --help`` and ``validate`` start without loading the
emulator or the ingestion stack.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click
from typing_extensions import override

from tokbill import __version__
from tokbill._errors import BlockedError, TokbillError
from tokbill._secrets import RedactingFilter
from tokbill.cli._common import EXIT_BLOCKED, EXIT_CODES_HELP, EXIT_ERROR

__all__ = ["main"]

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
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TokbillError as exc:
            if ctx.meta.get("tokbill.debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(EXIT_BLOCKED if isinstance(exc, BlockedError) else EXIT_ERROR)


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
    ctx.meta["tokbill.debug"] = debug
    if no_color or os.environ.get("NO_COLOR"):
        ctx.color = False
    _configure_logging(2 if debug else verbose)


def _configure_logging(verbosity: int) -> None:
    if verbosity <= 0:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("tokbill")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
