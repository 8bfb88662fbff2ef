"""``validate``, ``plan``, ``apply`` and ``export``: pricing templates vs Lago.

Templates are always loaded and checked before any connection is made, so a
template error never leaves Lago half-changed. Results go to stdout (text or
one JSON document), progress, warnings and errors to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from tokbill._errors import BlockedError, ConfigurationError, DriftError
from tokbill._wording import counted
from tokbill.cli._common import (
    EXIT_BLOCKED,
    EXIT_CHANGES,
    EXIT_OK,
    ON_ERROR,
    connection_options,
    echo_json,
    exit_codes_help,
    json_option,
    open_client,
    style,
)
from tokbill.sync import (
    ApplyError,
    ApplyResult,
    Plan,
    apply_plan,
    export_state,
    make_plan,
    read_state,
    render_plan,
)
from tokbill.template import TemplateSet, load_templates

if TYPE_CHECKING:
    from tokbill.lago import LagoClient

__all__ = ["apply", "export", "plan", "validate"]

F = TypeVar("F", bound=Callable[..., Any])

# Plain paths: the loader reports a missing file or a directory like any other
# template problem, together with the problems of the other files.
_TEMPLATES = click.argument("templates", nargs=-1, required=True, type=click.Path())


_BLOCKED = (EXIT_BLOCKED, "a change is blocked by a safety rule; nothing was written")


def _destroy_options(command: F) -> F:
    command = click.option(
        "--prune",
        is_flag=True,
        help="Also delete plans and metrics that no given template declares "
        "(each blocked unless --allow-destroy). Off: they are left alone.",
    )(command)
    return click.option(
        "--allow-destroy",
        is_flag=True,
        help="Allow deleting charges (and, with --prune, plans and metrics) and "
        "removing filter values other plans still price.",
    )(command)


@click.command(
    epilog=exit_codes_help(
        (EXIT_OK, "every template is valid (warnings allowed)"), ON_ERROR
    )
)
@_TEMPLATES
def validate(templates: tuple[str, ...]) -> None:
    """Check TEMPLATES offline: schema and meaning, without reaching Lago.

    Prints one line per file on stdout and each warning on stderr.
    """
    template_set = _load(templates)
    for path in template_set.paths:
        click.echo(_file_summary(template_set, path))


@click.command(
    epilog=exit_codes_help(
        (EXIT_OK, "success; with --detailed-exitcode, no changes pending"),
        ON_ERROR,
        (EXIT_CHANGES, "changes pending (with --detailed-exitcode only)"),
        _BLOCKED,
    )
)
@_TEMPLATES
@json_option
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when changes are pending and 0 when there are none.",
)
@_destroy_options
@connection_options
def plan(
    templates: tuple[str, ...],
    as_json: bool,
    detailed_exitcode: bool,
    allow_destroy: bool,
    prune: bool,
    api_url: str | None,
    api_key: str | None,
) -> None:
    """Show what apply would change in Lago to match TEMPLATES; writes nothing.

    Each change is classified (create, update, delete, blocked, unchanged);
    each changed plan shows its active subscriptions.
    """
    template_set = _load(templates)
    with open_client(api_url, api_key) as client:
        result = _plan(client, template_set, allow_destroy, prune)
    _show_plan(result, as_json)
    _refuse_blocked(result, "apply would write nothing")
    if detailed_exitcode and result.pending:
        click.get_current_context().exit(EXIT_CHANGES)


@click.command(
    epilog=exit_codes_help(
        (EXIT_OK, "Lago matches the templates"),
        ON_ERROR,
        _BLOCKED,
    )
)
@_TEMPLATES
@click.option("--yes", "-y", is_flag=True, help="Apply without asking.")
@json_option
@_destroy_options
@connection_options
def apply(
    templates: tuple[str, ...],
    yes: bool,
    as_json: bool,
    allow_destroy: bool,
    prune: bool,
    api_url: str | None,
    api_key: str | None,
) -> None:
    """Make Lago match TEMPLATES, then read it back and fail if it differs.

    Shows the plan and asks for confirmation on a terminal unless --yes;
    without a terminal, and with --json, --yes is required. Nothing is
    written while any change is blocked. After a failed write, run apply
    again: it converges.
    """
    if as_json and not yes:
        raise click.UsageError(
            "--json needs --yes: apply asks for no confirmation of a plan it "
            "does not show (review it first with plan --json)."
        )
    template_set = _load(templates)
    with open_client(api_url, api_key) as client:
        result = _plan(client, template_set, allow_destroy, prune)
        if not as_json:
            click.echo(render_plan(result, style))
        if result.blocked and as_json:
            echo_json(ApplyResult(result, ()).to_dict())
        _refuse_blocked(result, "nothing was written")
        if not result.pending:
            _finish(ApplyResult(result, ()), as_json)
            return
        if not yes:
            _confirm(result, client.api_url)
        _finish(_apply(client, result, as_json), as_json)


@click.command(epilog=exit_codes_help((EXIT_OK, "the template was written"), ON_ERROR))
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="CODE",
    help="Export this metric (repeatable).",
)
@click.option(
    "--plan",
    "plans",
    multiple=True,
    metavar="CODE",
    help="Export this plan and the metrics it uses (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of stdout.",
)
@connection_options
def export(
    metrics: tuple[str, ...],
    plans: tuple[str, ...],
    output: str | None,
    api_url: str | None,
    api_key: str | None,
) -> None:
    """Write a template from a live Lago; applying it changes nothing.

    Without --metric or --plan, every metric and plan is exported.
    """
    with open_client(api_url, api_key) as client:
        text = export_state(client, metrics, plans)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.FileError(output, hint=exc.strerror or str(exc)) from exc
    click.echo(f"Wrote {output}.", err=True)


def _load(paths: Sequence[str]) -> TemplateSet:
    template_set = load_templates(paths)
    for warning in template_set.warnings:
        click.echo(style(f"Warning: {warning}", fg="yellow"), err=True)
    return template_set


def _plan(
    client: LagoClient, template_set: TemplateSet, allow_destroy: bool, prune: bool
) -> Plan:
    """Read what the templates touch in Lago and compare; writes nothing."""
    live = read_state(client, template_set, prune=prune)
    return make_plan(template_set, live, allow_destroy=allow_destroy, prune=prune)


def _file_summary(template_set: TemplateSet, path: str) -> str:
    plans = [p for p in template_set.plans if p.source and p.source.path == path]
    metrics = {
        m.code for m in template_set.metrics if m.source and m.source.path == path
    }
    metrics |= {c.billable_metric for p in plans for c in p.charges}
    prices = sum(len(c.filters) for p in plans for c in p.charges)
    plan_codes = ", ".join(p.code for p in plans) or "none"
    return (
        f"{path}: valid; metrics {', '.join(sorted(metrics)) or 'none'}; "
        f"plans {plan_codes}; {counted(prices, 'price')}."
    )


def _show_plan(result: Plan, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_dict())
    else:
        click.echo(render_plan(result, style))


def _refuse_blocked(result: Plan, outcome: str) -> None:
    if result.blocked:
        verb = "is" if len(result.blocked) == 1 else "are"
        raise BlockedError(
            f"{counted(len(result.blocked), 'change')} {verb} blocked by a safety "
            f"rule, so {outcome}; the plan gives each reason and remedy."
        )


def _confirm(result: Plan, api_url: str) -> None:
    if not _stdin_is_tty():
        raise ConfigurationError(
            "Refusing to apply without confirmation: stdin is not a terminal. "
            "Review the plan, then rerun with --yes."
        )
    count = counted(len(result.pending), "change")
    click.confirm(f"Apply {count} to {api_url}?", abort=True, err=True)


def _stdin_is_tty() -> bool:
    # Its own function so that tests can answer yes: CliRunner's stdin is
    # never a terminal, and the prompt itself is what they check.
    return sys.stdin.isatty()


def _apply(client: LagoClient, plan: Plan, as_json: bool) -> ApplyResult:
    """Apply ``plan``; a failure still prints its JSON document first."""
    try:
        return apply_plan(client, plan)
    except (ApplyError, DriftError) as exc:
        if as_json:
            echo_json(ApplyResult.from_error(plan, exc).to_dict())
        raise


def _finish(result: ApplyResult, as_json: bool) -> None:
    if as_json:
        echo_json(result.to_dict())
    elif not result.writes:
        click.echo("No changes: Lago already matches the templates.")
    else:
        for write in result.writes:
            click.echo(f"  {write}")
        click.echo(
            f"Applied {counted(len(result.writes), 'write')}; Lago matches the "
            "templates."
        )
