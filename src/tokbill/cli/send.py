"""``tokbill-sync send``: ingest recorded token usage, one JSON object a line."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Final

import click

from tokbill._settings import API_KEY_ENV, API_URL_ENV
from tokbill._wording import counted
from tokbill.cli._common import (
    EXIT_ERROR,
    EXIT_OK,
    connection_options,
    echo_json,
    exit_codes_help,
    json_option,
    resolve_connection,
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
_POLL_S: Final = 0.25
"""How often a wait for Lago checks whether sending was suspended."""


@dataclass
class _Tally:
    lines: int = 0
    recorded_lines: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    stopped: str | None = None
    """Why sending was suspended (Lago refused the key, URL or proxy), if it was."""


@click.command(
    epilog=exit_codes_help(
        (EXIT_OK, "every line was read and every event delivered"),
        (EXIT_ERROR, "a bad line, an undelivered event, or an error"),
    )
)
@click.argument("source", metavar="FILE|-", type=click.File("rb"))
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
    metavar="SECONDS",
    help="How long to wait for Lago once the input is read. A refused key "
    "or URL (a redirect, 401, 403, 404, 405, 407) stops the wait at once.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress on stderr [default: when stderr is a terminal].",
)
@json_option
@connection_options
def send(
    source: IO[bytes],
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
    cache_read_tokens and cache_write_tokens, in UTF-8. Bad lines are
    reported as FILE:LINE on stderr and skipped; the rest is sent.
    """
    if template and metric_code:
        raise click.UsageError("Give --template or --metric, not both.")
    meter = _open_meter(template, metric_code, spool_dir, api_url, api_key)
    show = progress if progress is not None else sys.stderr.isatty()
    tally = _Tally()
    # The progress line moves while lines are read and while Lago acks.
    on_poll = (lambda: _show_progress(tally, meter)) if show else None
    with meter:
        _read_all(source, meter, timeout_s, tally, on_poll)
        deadline = time.monotonic() + timeout_s
        if tally.stopped is None:
            tally.stopped = _wait_for_lago(meter, deadline, on_poll)
        if on_poll is not None:
            on_poll()
            click.echo(err=True)
        # Once Lago refused the key or URL, waiting cannot help; a short close
        # still lets the senders stop and count what they drop.
        close_s = _POLL_S if tally.stopped else max(0.0, deadline - time.monotonic())
        report = meter.close(timeout_s=close_s)
    _report_bad_lines(tally, _source_name(source))
    if as_json:
        echo_json(_document(tally, report))
    else:
        click.echo(_summary(tally, report))
    if tally.stopped:
        click.echo(f"Error: {_stopped_message(tally, spool_dir)}", err=True)
    delivered = report.complete and not (report.dropped or report.quarantined)
    ok = delivered and not tally.bad_lines
    click.get_current_context().exit(EXIT_OK if ok else EXIT_ERROR)


def _source_name(source: IO[bytes]) -> str:
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stdin>"


def _open_meter(
    template: str | None,
    metric_code: str | None,
    spool_dir: str | None,
    api_url: str | None,
    api_key: str | None,
) -> TokenMeter:
    url, api_key = resolve_connection(api_url, api_key)
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
    source: IO[bytes],
    meter: TokenMeter,
    timeout_s: float,
    tally: _Tally,
    on_poll: Callable[[], None] | None,
) -> None:
    """Record every good line; stop early only if Lago refuses the key or URL.

    ``on_poll``, when given, shows progress every so often.
    """
    next_progress = 0.0
    for number, line in enumerate(source, start=1):
        tally.lines = number
        if line.strip():
            _record_line(meter, number, line, tally)
        if number % _DRAIN_EVERY == 0:
            deadline = time.monotonic() + timeout_s
            tally.stopped = _wait_for_lago(meter, deadline, on_poll)
            if tally.stopped:
                break
        if on_poll is not None and time.monotonic() >= next_progress:
            on_poll()
            next_progress = time.monotonic() + _PROGRESS_EVERY_S


def _wait_for_lago(
    meter: TokenMeter, deadline: float, on_poll: Callable[[], None] | None = None
) -> str | None:
    """Flush until ``deadline`` (monotonic); the reason if sending stopped.

    A refused key, URL or proxy (401, 403, 404, a redirect, ...) does not
    heal while we wait, so the wait ends as soon as the meter reports one
    instead of running out the whole timeout. ``on_poll`` runs after each
    short flush.
    """
    while True:
        remaining_s = deadline - time.monotonic()
        report = meter.flush(timeout_s=max(0.0, min(_POLL_S, remaining_s)))
        if on_poll is not None:
            on_poll()
        blocked = meter.stats().blocked
        if report.complete or blocked or remaining_s <= 0:
            return blocked


def _stopped_message(tally: _Tally, spool_dir: str | None) -> str:
    kept = (
        f"The undelivered events stay in {spool_dir}; the next send with "
        "--spool-dir on it delivers them."
        if spool_dir
        else "Run again once fixed: lines with a request_id are never billed twice."
    )
    reason = str(tally.stopped)
    # The meter words it "401: <the error>"; the error names the status.
    status, _, error = reason.partition(": ")
    if status.isdigit() and error:
        reason = error
    return (
        f"Lago refused the events, so sending stopped after line {tally.lines:,}: "
        f"{reason} Check the API key (--api-key or {API_KEY_ENV}) and the URL "
        f"(--api-url or {API_URL_ENV}). {kept}"
    )


def _record_line(meter: TokenMeter, number: int, line: bytes, tally: _Tally) -> None:
    try:
        meter.record(**_parse(line))
    except (ValueError, TypeError) as exc:
        tally.bad_lines.append((number, str(exc)))
        return
    tally.recorded_lines += 1


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        # A byte-order mark is tolerated, as editors on Windows write one.
        line = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})."
        ) from None
    try:
        fields = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno}).") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply to read.") from None
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
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"timestamp {text!r} is neither Unix seconds nor ISO 8601."
        ) from None
    if moment.tzinfo is None:
        raise ValueError(
            f"timestamp {text!r} has no time zone; add Z for UTC or an offset "
            "such as +02:00."
        )
    return moment


def _show_progress(tally: _Tally, meter: TokenMeter) -> None:
    stats = meter.stats()
    click.echo(
        f"\r{counted(tally.lines, 'line')} read, "
        f"{counted(stats.recorded, 'event')} recorded, {stats.acked:,} acked, "
        f"{counted(len(tally.bad_lines), 'bad line')}",
        err=True,
        nl=False,
    )


def _report_bad_lines(tally: _Tally, source_name: str) -> None:
    for number, reason in tally.bad_lines[:_SHOWN_BAD_LINES]:
        where = style(f"{source_name}:{number}:", fg="red")
        click.echo(f"{where} {reason}", err=True)
    hidden = len(tally.bad_lines) - _SHOWN_BAD_LINES
    if hidden > 0:
        click.echo(f"... and {hidden:,} more bad lines (see --json).", err=True)


def _summary(tally: _Tally, report: FlushReport) -> str:
    lines = (
        f"Read {counted(tally.lines, 'line')}: "
        f"{tally.recorded_lines:,} recorded, "
        f"{len(tally.bad_lines):,} skipped as bad.\n"
        f"Events: {report.recorded:,} recorded, {report.acked:,} delivered, "
        f"{report.quarantined:,} rejected by Lago, {report.dropped:,} dropped, "
        f"{report.pending:,} not yet delivered."
    )
    # When Lago refused the key, the error that follows says how to rerun.
    if (report.pending or report.dropped) and not tally.stopped:
        lines += (
            "\nRun again to send what was not delivered: lines with a "
            "request_id are never billed twice."
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
        "stopped": tally.stopped,
    }
