"""Where Lago is, and with which key.

The library and the CLI read the same names: ``api_url`` / ``LAGO_API_URL`` and
``api_key`` / ``LAGO_API_KEY``. A URL may be given with or without the
``/api/v1`` suffix, since Lago's self-hosting docs use ``http://localhost:3000``
and other clients ``https://api.getlago.com/api/v1/``. The value ``local``
selects the embedded emulator; the library never falls back to it silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from tokbill._errors import ConfigurationError

__all__ = [
    "API_KEY_ENV",
    "API_URL_ENV",
    "EMBEDDED_API_KEY",
    "EMBEDDED_DB_PATH",
    "LOCAL",
    "api_key_for",
    "resolve_api_url",
    "url_from_env",
]

API_URL_ENV = "LAGO_API_URL"
API_KEY_ENV = "LAGO_API_KEY"
LOCAL = "local"
EMBEDDED_DB_PATH = Path(".tokbill") / "lago.sqlite3"
"""The embedded emulator's state, relative to the current directory."""
EMBEDDED_API_KEY = "tokbill-embedded"
"""Sent to the embedded emulator when no key is set: like Lago, it answers
401 to a request without one, but it accepts any key."""

_API_SUFFIX = "/api/v1"


def resolve_api_url(api_url: str, *, db_path: Path | None = None) -> str:
    """Normalise ``api_url`` to end in ``/api/v1``, or start the local emulator.

    ``local`` starts (once per process) the embedded emulator with its state in
    ``db_path`` (default ``.tokbill/lago.sqlite3``) and returns its URL.

    Raises:
        ConfigurationError: the URL is empty or not http(s).
    """
    api_url = api_url.strip()
    if api_url == LOCAL:
        from tokbill.emulator import embedded_url

        return embedded_url(db_path or EMBEDDED_DB_PATH)
    parts = urlsplit(api_url)
    if "@" in parts.netloc or "@" in api_url.split("/", 1)[0]:
        # URLs are shown in errors and logs, so credentials in one would leak;
        # Lago reads nothing from them anyway.
        raise ConfigurationError(
            "The Lago API URL carries a user name or password before '@'; Lago "
            f"authenticates with the API key alone (--api-key or {API_KEY_ENV}), "
            "so remove them from the URL."
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"The Lago API URL {api_url!r} is not an http(s) URL; expected e.g. "
            "'http://localhost:3000' or 'https://api.getlago.com/api/v1', "
            f"or {LOCAL!r} for the embedded emulator."
        )
    path = parts.path.rstrip("/")
    if not path.endswith(_API_SUFFIX):
        path += _API_SUFFIX
    return f"{parts.scheme}://{parts.netloc}{path}"


def api_key_for(api_url: str, api_key: str | None) -> str | None:
    """The key to send: ``api_key``, or a placeholder for ``local`` without one."""
    if api_key or api_url.strip() != LOCAL:
        return api_key
    return EMBEDDED_API_KEY


def url_from_env() -> str:
    """The URL in ``LAGO_API_URL``; raises ConfigurationError when unset."""
    value = os.environ.get(API_URL_ENV, "").strip()
    if not value:
        raise ConfigurationError(
            f"{API_URL_ENV} is not set; set it to your Lago URL, or to "
            f"{LOCAL!r} for the embedded emulator."
        )
    return value


def key_from_env() -> str | None:
    """The key in ``LAGO_API_KEY``, or None when unset."""
    return os.environ.get(API_KEY_ENV) or None
