"""Options, output helpers and exit codes shared by every subcommand.

Importing this module stays cheap (no httpx, no emulator), so that
``tokbill-sync --help`` starts fast; the Lago client is imported on use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import click

from tokbill._settings import (
    API_KEY_ENV,
    API_URL_ENV,
    EMBEDDED_DB_PATH,
    LOCAL,
    api_key_for,
)

if TYPE_CHECKING:
    from tokbill.lago import LagoClient

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_CHANGES",
    "EXIT_CODES_HELP",
    "EXIT_ERROR",
    "EXIT_OK",
    "ON_ERROR",
    "connection_options",
    "echo_json",
    "exit_codes_help",
    "json_option",
    "open_client",
    "resolve_connection",
    "style",
]


EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_CHANGES: Final = 2
EXIT_BLOCKED: Final = 3

ON_ERROR: Final = (EXIT_ERROR, "error (bad input or option, or Lago failed)")
"""The meaning of exit code 1, the same for every command."""


def exit_codes_help(*codes: tuple[int, str]) -> str:
    """An epilog listing ``codes`` one a line (click keeps the layout)."""
    lines = "\n".join(f"  {code}  {meaning}" for code, meaning in codes)
    return f"\b\nExit codes:\n{lines}"


EXIT_CODES_HELP: Final = exit_codes_help(
    (EXIT_OK, "success; for plan --detailed-exitcode, no changes pending"),
    ON_ERROR,
    (EXIT_CHANGES, "changes pending (plan --detailed-exitcode only)"),
    (EXIT_BLOCKED, "blocked by a safety rule (plan, apply); nothing was written"),
)
"""Every exit code of ``tokbill-sync``, for the group's ``--help``."""

F = TypeVar("F", bound=Callable[..., Any])


def connection_options(command: F) -> F:
    """Add ``--api-url`` and ``--api-key``, read from the environment too."""
    # click lists the option applied last first, so the key goes on first.
    command = click.option(
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=False,
        help=f"Lago API key [env {API_KEY_ENV}]. Never printed.",
    )(command)
    command = click.option(
        "--api-url",
        envvar=API_URL_ENV,
        help=(
            f"Lago URL, with or without /api/v1 [env {API_URL_ENV}]. "
            f"Unset: the embedded emulator ({LOCAL!r} asks for it explicitly)."
        ),
    )(command)
    return command


def json_option(command: F) -> F:
    """Add ``--json``: one JSON document on stdout instead of text."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document."
    )(command)


def resolve_connection(
    api_url: str | None, api_key: str | None
) -> tuple[str, str | None]:
    """The URL and key to use; without a URL, start the embedded emulator.

    The embedded emulator (also chosen by ``local``) is announced in one line
    on stderr. It accepts any key but, like Lago, answers 401 to a request
    without one, so a placeholder key is sent when none is configured.
    """
    api_key = api_key_for(api_url or LOCAL, api_key)
    if api_url and api_url.strip() != LOCAL:
        return api_url, api_key
    from tokbill._settings import resolve_api_url

    url = resolve_api_url(LOCAL, db_path=EMBEDDED_DB_PATH)
    click.echo(
        f"Using the embedded Lago emulator at {url} (state in {EMBEDDED_DB_PATH}); "
        f"set {API_URL_ENV} or --api-url to target a real Lago.",
        err=True,
    )
    return url, api_key


def open_client(api_url: str | None, api_key: str | None, **kwargs: Any) -> LagoClient:
    """A client for ``api_url``, or for the embedded emulator when it is unset."""
    from tokbill.lago import LagoClient

    return LagoClient(*resolve_connection(api_url, api_key), **kwargs)


def echo_json(document: Any) -> None:
    """Print ``document`` as one JSON document on stdout (Decimals as strings)."""
    click.echo(json.dumps(document, indent=2, sort_keys=False, default=str))


def style(text: str, **styles: Any) -> str:
    """Colour ``text``; click strips it when colour is off or not a terminal."""
    return click.style(text, **styles)
