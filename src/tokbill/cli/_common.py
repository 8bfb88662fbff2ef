"""Options, output helpers and exit codes shared by every subcommand."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, TypeVar

import click

from tokbill._settings import API_KEY_ENV, API_URL_ENV, EMBEDDED_DB_PATH, LOCAL
from tokbill.lago import LagoClient

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_CHANGES",
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_OK",
    "connection_options",
    "echo_json",
    "json_option",
    "open_client",
    "resolve_target",
    "style",
]

EMBEDDED_API_KEY: Final = "tokbill-embedded"
"""The key sent to the embedded emulator when none is configured."""

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_CHANGES: Final = 2
EXIT_BLOCKED: Final = 3

EXIT_CODES_HELP: Final = (
    "Exit codes: 0 success (for plan --detailed-exitcode: no changes pending); "
    "1 error; 2 changes pending (plan --detailed-exitcode only; click also "
    "uses 2 for a usage error); 3 blocked by a safety rule."
)

F = TypeVar("F", bound=Callable[..., Any])


def connection_options(command: F) -> F:
    """Add ``--api-url`` and ``--api-key``, read from the environment too."""
    command = click.option(
        "--api-url",
        envvar=API_URL_ENV,
        help=(
            f"Lago URL, with or without /api/v1 [env {API_URL_ENV}]. "
            f"Unset: the embedded emulator ({LOCAL!r} asks for it explicitly)."
        ),
    )(command)
    command = click.option(
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=False,
        help=f"Lago API key [env {API_KEY_ENV}]. Never printed.",
    )(command)
    return command


def json_option(command: F) -> F:
    """Add ``--json``: one JSON document on stdout instead of text."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document."
    )(command)


def resolve_target(api_url: str | None) -> str:
    """The URL to talk to; without one, announce the embedded emulator."""
    if api_url:
        return api_url
    from tokbill._settings import resolve_api_url

    url = resolve_api_url(LOCAL, db_path=EMBEDDED_DB_PATH)
    click.echo(
        f"Using the embedded Lago emulator at {url} (state in {EMBEDDED_DB_PATH}); "
        f"set {API_URL_ENV} or --api-url to target a real Lago.",
        err=True,
    )
    return url


def open_client(api_url: str | None, api_key: str | None, **kwargs: Any) -> LagoClient:
    """A client for ``api_url``, or for the embedded emulator when it is unset."""
    if api_url in (None, "", LOCAL) and not api_key:
        # The emulator, like Lago, answers 401 to a request without a key, and
        # accepts any key when started without one, as the embedded one is.
        api_key = EMBEDDED_API_KEY
    return LagoClient(resolve_target(api_url), api_key, **kwargs)


def echo_json(document: Any) -> None:
    """Print ``document`` as one JSON document on stdout (Decimals as strings)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def style(text: str, **styles: Any) -> str:
    """Colour ``text``; click strips it when colour is off or not a terminal."""
    return click.style(text, **styles)
