"""``tokbill-sync usage``: a customer's spend this period, by model and type."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import click

from tokbill._errors import UsageError
from tokbill.cli._common import (
    EXIT_OK,
    ON_ERROR,
    connection_options,
    echo_json,
    exit_codes_help,
    json_option,
    open_client,
    style,
)
from tokbill.usage import Usage, UsageClient, UsageLine

__all__ = ["usage"]

logger = logging.getLogger(__name__)

_CLEAR_SCREEN = "\033[2J\033[1;1H"
"""Clear the terminal and move the cursor home (what click.clear sends)."""
_DEFAULT_BUCKET = "(other)"
"""Shown for a charge's default bucket: events that match no price filter."""


@click.command(
    epilog=exit_codes_help(
        (EXIT_OK, "the usage was shown (or --watch ended)"), ON_ERROR
    )
)
@click.argument("customer")
@click.option(
    "--subscription",
    "subscription_id",
    metavar="SUB",
    help="One subscription's external id. Default: every active one.",
)
@json_option
@click.option(
    "--watch",
    "watch_s",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Refresh every SECONDS until Ctrl-C (in place on a terminal); not with "
    "--json.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --watch: stop after this many refreshes.",
)
@connection_options
def usage(
    customer: str,
    subscription_id: str | None,
    as_json: bool,
    watch_s: float | None,
    count: int | None,
    api_url: str | None,
    api_key: str | None,
) -> None:
    """Show CUSTOMER's current usage and spend, by metric, model and type.

    Amounts are Lago's, for the open billing period, in the plan's currency;
    Lago may lag recorded events by a few seconds. With --json, prints one
    document whose money and token counts are decimal strings.
    """
    if as_json and watch_s is not None:
        raise click.UsageError("--json prints one document; drop --watch.")
    if count is not None and watch_s is None:
        raise click.UsageError("--count only applies with --watch.")
    # TTL 0: every refresh asks Lago; a failed refresh still falls back to
    # the last good value, marked stale, within the client's staleness limit.
    with (
        open_client(api_url, api_key) as lago,
        UsageClient(lago_client=lago, ttl_s=0.0) as client,
    ):
        plans = _plan_codes(client, customer, subscription_id)

        def fetch() -> list[Usage]:
            return [_current(client, customer, sub) for sub in plans]

        if as_json:
            echo_json(_document(customer, fetch(), plans))
        elif watch_s is None:
            click.echo(_render(fetch(), plans))
        else:
            _watch(lambda: _render(fetch(), plans), watch_s, count)


def _plan_codes(
    client: UsageClient, customer: str, subscription_id: str | None
) -> dict[str, str | None]:
    """Subscription id to plan code (None when not listed), in display order."""
    if subscription_id:
        return {subscription_id: None}
    subscriptions = client.subscriptions(customer)
    if not subscriptions:
        raise UsageError(
            f"Customer {customer!r} has no active subscription, so Lago reports "
            "no current usage; create one (POST /subscriptions) or pass "
            "--subscription for one that starts later."
        )
    return {s.subscription_id: s.plan_code for s in subscriptions}


def _current(client: UsageClient, customer: str, subscription_id: str) -> Usage:
    found = client.current(customer, subscription_id)
    logger.info(
        "Read the current usage of subscription %s: %d line(s), %s %s%s.",
        subscription_id,
        len(found.lines),
        found.amount,
        found.currency,
        " (stale)" if found.stale else "",
    )
    return found


def _document(
    customer: str, usages: Sequence[Usage], plans: dict[str, str | None]
) -> dict[str, Any]:
    return {
        "customer_id": customer,
        "subscriptions": [
            {**u.to_dict(), "plan_code": plans.get(u.subscription_id)} for u in usages
        ],
    }


def _watch(render: Callable[[], str], interval_s: float, count: int | None) -> None:
    # Redrawing in place takes an escape sequence, which --no-color and
    # NO_COLOR rule out as well; then each refresh follows the last.
    in_place = sys.stdout.isatty() and click.get_current_context().color is not False
    refreshes = 0
    try:
        while count is None or refreshes < count:
            text = render()
            if in_place:
                click.echo(_CLEAR_SCREEN, nl=False)
            elif refreshes:
                click.echo()
            stamp = datetime.now().strftime("%H:%M:%S")
            click.echo(
                style(f"Every {interval_s:g}s, at {stamp}; Ctrl-C stops.", dim=True)
            )
            click.echo(text)
            refreshes += 1
            if count is None or refreshes < count:
                time.sleep(interval_s)
    except KeyboardInterrupt:
        # Ctrl-C is how a watch ends; it is not an error.
        click.echo(err=True)


def _render(usages: Sequence[Usage], plans: dict[str, str | None]) -> str:
    return "\n\n".join(_render_one(u, plans.get(u.subscription_id)) for u in usages)


def _render_one(u: Usage, plan_code: str | None) -> str:
    plan = f" (plan {plan_code})" if plan_code else ""
    header = [
        style(
            f"Customer {u.customer_id}, subscription {u.subscription_id}{plan}",
            bold=True,
        ),
        f"Period {u.period_start:%Y-%m-%d %H:%M %Z} to "
        f"{u.period_end:%Y-%m-%d %H:%M %Z}, {u.currency}",
    ]
    if u.stale:
        header.append(
            style(
                f"Stale: the last refresh failed; this is Lago's figure from "
                f"{u.age_s:.0f} s ago.",
                fg="yellow",
            )
        )
    return "\n".join([*header, "", _table(u)])


def _table(u: Usage) -> str:
    keys = sorted({key for line in u.lines for key in (line.filters or {})})
    # A line without filters is a default bucket only if its charge has
    # filters; a charge without any is priced as a whole.
    filtered = {line.charge_code for line in u.lines if line.filters}
    blanks = [""] * len(keys)
    totals = [["total", *blanks, _tokens(u.units), str(u.amount)]]
    if u.taxes_amount:
        totals.append(["taxes", *blanks, "", str(u.taxes_amount)])
        totals.append(["total with taxes", *blanks, "", str(u.total_amount)])
    return _columns(
        ["metric", *keys, "tokens", "amount"],
        [_row(line, keys, line.charge_code in filtered) for line in u.lines],
        totals,
    )


def _row(line: UsageLine, keys: Sequence[str], has_filters: bool) -> list[str]:
    if line.filters is None and has_filters:
        labels = [_DEFAULT_BUCKET] + [""] * (len(keys) - 1)
    else:
        labels = [line.value(key) or "" for key in keys]
    return [line.metric_code, *labels, _tokens(line.units), str(line.amount)]


def _tokens(units: Decimal) -> str:
    return format(units.normalize(), ",f")


def _columns(head: list[str], rows: list[list[str]], totals: list[list[str]]) -> str:
    """Align the table; the last two columns (numbers) align right."""
    table = [head, *rows, *totals]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    first_number = len(head) - 2

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i >= first_number else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(head))
    return "\n".join(
        [
            style(line(head), bold=True),
            rule,
            *(line(row) for row in rows),
            rule,
            *(line(row) for row in totals),
        ]
    )
