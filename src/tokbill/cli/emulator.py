"""``tokbill-sync emulator``: run the Lago-compatible emulator as a server."""

from __future__ import annotations

import threading

import click

from tokbill.cli._common import EXIT_ERROR, EXIT_OK, exit_codes_help
from tokbill.emulator import EmulatorServer, Faults


@click.command(
    epilog=exit_codes_help(
        (EXIT_OK, "stopped by Ctrl-C"),
        (EXIT_ERROR, "error (a bad option, or the address cannot be bound)"),
    ),
)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface to bind."
)
@click.option(
    "--port", default=3000, show_default=True, type=int, help="Port (0: any free port)."
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file for the state; in memory when omitted.",
)
@click.option(
    "--api-key",
    default=None,
    help="Accept only this bearer key; any key is accepted when omitted.",
)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of requests answered 500/502/503.",
)
@click.option(
    "--rate-limit-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of requests answered 429.",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(0),
    default=0.0,
    help="Delay added to every request.",
)
@click.option(
    "--stall-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of requests that commit, then stall.",
)
@click.option(
    "--stall-ms",
    type=click.FloatRange(0),
    default=30_000.0,
    show_default=True,
    help="How long a stalled request waits after committing.",
)
@click.option(
    "--fault-path",
    default="/api/v1",
    show_default=True,
    help="Inject faults only under this path prefix.",
)
@click.option("--seed", type=int, default=None, help="Seed for the fault draws.")
def emulator(
    host: str,
    port: int,
    db_path: str | None,
    api_key: str | None,
    error_rate: float,
    rate_limit_rate: float,
    latency_ms: float,
    stall_rate: float,
    stall_ms: float,
    fault_path: str,
    seed: int | None,
) -> None:
    """Serve a Lago-compatible API until Ctrl-C.

    Point tokbill, lago-python-client or any HTTP client at the printed URL.
    Faults are off unless a fault option is given; they can also be changed
    while it runs with POST /_emulator/faults (which, like the API, needs the
    key when --api-key is given).
    """
    faults = Faults(
        error_rate=error_rate,
        rate_limit_rate=rate_limit_rate,
        latency_s=latency_ms / 1000,
        stall_rate=stall_rate,
        stall_after_commit_s=stall_ms / 1000 if stall_rate else 0.0,
        path_prefix=fault_path,
        seed=seed,
    )
    server = EmulatorServer(
        host=host, port=port, db_path=db_path, api_key=api_key, faults=faults
    )
    server.start()
    state = db_path or "memory"
    click.echo(
        f"Lago emulator listening on {server.url} (API {server.api_url}, "
        f"state in {state}); Ctrl-C stops it.",
        err=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
