"""``tokbill-sync send``: ingest recorded token usage, one JSON object a line."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Final

import click

from tokbill.cli._common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_OK,
    connection_options,
    echo_json,
    json_option,
    resolve_target,
    style,
)
from tokbill.ingest import DEFAULT_METRIC_CODE, FlushReport, MeterOptions, TokenMeter

__all__ = ["send"]

_REQUIRED: Final = ("subscription_id", "model", "input_tokens", "output_tokens")
_OPTIONAL: Final = (
    "request_id",
    "timestamp",
    "properties",
    "cache_read_tokens",
    "cache_write_tokens",
)
_SHOWN_BAD_LINES: Final = 20
_DRAIN_EVERY: Final = 20_000
"""Lines between waits for Lago, so a large file never overflows the buffer."""
_PROGRESS_EVERY_S: Final = 0.2


@dataclass
class _Tally:
    lines: int = 0
    recorded_lines: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("source", metavar="FILE|-", type=click.File("r", encoding="utf-8"))
@click.option(
    "--template",
    type=click.Path(exists=True, dir_okay=False),
    help="Take the metric, its field and filter keys from this template.",
)
@click.option(
    "--metric",
    "metric_code",
    metavar="CODE",
    help=f"Billable metric code [default: {DEFAULT_METRIC_CODE}].",
)
@click.option(
    "--spool-dir",
    type=click.Path(file_okay=False),
    help="Keep unsent events on disk; a later run on it sends them.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for Lago once the input is read.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress on stderr [default: when stderr is a terminal].",
)
@json_option
@connection_options
def send(
    source: IO[str],
    template: str | None,
    metric_code: str | None,
    spool_dir: str | None,
    timeout_s: float,
    progress: bool | None,
    as_json: bool,
    api_url: str | None,
    api_key: str | None,
) -> None:
    """Send the token usage in FILE (or stdin for -) to Lago.

    Each line is a JSON object with subscription_id, model, input_tokens,
    output_tokens and optionally request_id (so a rerun bills nothing twice),
    timestamp (Unix seconds or ISO 8601 with a zone), properties,
    cache_read_tokens and cache_write_tokens. Bad lines are reported by
    number on stderr and skipped; the rest is sent. Exits 1 when any line
    or event was not delivered.
    """
    if template and metric_code:
        raise click.UsageError("Give --template or --metric, not both.")
    meter = _open_meter(template, metric_code, spool_dir, api_url, api_key)
    show = progress if progress is not None else sys.stderr.isatty()
    with meter:
        tally = _read_all(source, meter, timeout_s, show)
        report = meter.close(timeout_s=timeout_s)
    _report_bad_lines(tally)
    if as_json:
        echo_json(_document(tally, report))
    else:
        click.echo(_summary(tally, report))
    delivered = report.complete and not (report.dropped or report.quarantined)
    sys.exit(EXIT_OK if delivered and not tally.bad_lines else EXIT_ERROR)


def _open_meter(
    template: str | None,
    metric_code: str | None,
    spool_dir: str | None,
    api_url: str | None,
    api_key: str | None,
) -> TokenMeter:
    url = resolve_target(api_url)
    options = MeterOptions(linger_s=0.05)
    if template:
        return TokenMeter.from_template(
            template,
            api_url=url,
            api_key=api_key,
            spool_dir=spool_dir,
            options=options,
        )
    return TokenMeter(
        api_url=url,
        api_key=api_key,
        metric_code=metric_code or DEFAULT_METRIC_CODE,
        spool_dir=spool_dir,
        options=options,
    )


def _read_all(
    source: IO[str], meter: TokenMeter, timeout_s: float, show: bool
) -> _Tally:
    tally = _Tally()
    next_progress = 0.0
    for number, line in enumerate(source, start=1):
        tally.lines = number
        if line.strip():
            _record_line(meter, number, line, tally)
        if number % _DRAIN_EVERY == 0:
            meter.flush(timeout_s=timeout_s)
        if show and time.monotonic() >= next_progress:
            _show_progress(tally, meter)
            next_progress = time.monotonic() + _PROGRESS_EVERY_S
    if show:
        _show_progress(tally, meter)
        click.echo(err=True)
    return tally


def _record_line(meter: TokenMeter, number: int, line: str, tally: _Tally) -> None:
    try:
        meter.record(**_parse(line))
    except (ValueError, TypeError) as exc:
        tally.bad_lines.append((number, str(exc)))
        return
    tally.recorded_lines += 1


def _parse(line: str) -> dict[str, Any]:
    try:
        fields = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno}).") from None
    if not isinstance(fields, dict):
        raise ValueError("expected a JSON object.")
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}.")
    unknown = sorted(set(fields) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(
            f"unknown field {', '.join(unknown)}; expected "
            f"{', '.join(_REQUIRED + _OPTIONAL)}."
        )
    if isinstance(fields.get("timestamp"), str):
        fields["timestamp"] = _iso_time(fields["timestamp"])
    return fields


def _iso_time(text: str) -> float | datetime:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        # Python 3.10's fromisoformat does not read a trailing "Z".
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is neither Unix seconds nor ISO 8601."
        ) from None


def _show_progress(tally: _Tally, meter: TokenMeter) -> None:
    stats = meter.stats()
    click.echo(
        f"\r{tally.lines:,} lines read, {stats.recorded:,} events recorded, "
        f"{stats.acked:,} acked, {len(tally.bad_lines):,} bad lines",
        err=True,
        nl=False,
    )


def _report_bad_lines(tally: _Tally) -> None:
    for number, reason in tally.bad_lines[:_SHOWN_BAD_LINES]:
        click.echo(f"{style('line', fg='red')} {number}: {reason}", err=True)
    hidden = len(tally.bad_lines) - _SHOWN_BAD_LINES
    if hidden > 0:
        click.echo(f"... and {hidden:,} more bad lines (see --json).", err=True)


def _summary(tally: _Tally, report: FlushReport) -> str:
    lines = (
        f"Read {tally.lines:,} lines: {tally.recorded_lines:,} recorded, "
        f"{len(tally.bad_lines):,} skipped as bad.\n"
        f"Events: {report.recorded:,} recorded, {report.acked:,} delivered, "
        f"{report.quarantined:,} rejected by Lago, {report.dropped:,} dropped, "
        f"{report.pending:,} not yet delivered."
    )
    if report.pending:
        lines += (
            "\nRun again to send the rest: lines with a request_id are never "
            "billed twice."
        )
    return lines


def _document(tally: _Tally, report: FlushReport) -> dict[str, Any]:
    return {
        "lines": tally.lines,
        "recorded_lines": tally.recorded_lines,
        "bad_lines": [
            {"line": number, "error": reason} for number, reason in tally.bad_lines
        ],
        "events": {
            "recorded": report.recorded,
            "acked": report.acked,
            "quarantined": report.quarantined,
            "dropped": report.dropped,
            "pending": report.pending,
        },
        "complete": report.complete,
    }
