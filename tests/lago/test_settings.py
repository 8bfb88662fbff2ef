from __future__ import annotations

import pytest

from tokbill import ConfigurationError
from tokbill._settings import (
    EMBEDDED_API_KEY,
    api_key_for,
    resolve_api_url,
    url_from_env,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://localhost:3000", "http://localhost:3000/api/v1"),
        ("http://localhost:3000/", "http://localhost:3000/api/v1"),
        ("https://api.getlago.com/api/v1/", "https://api.getlago.com/api/v1"),
        ("https://api.getlago.com/api/v1", "https://api.getlago.com/api/v1"),
        ("https://example.com/lago", "https://example.com/lago/api/v1"),
        (" https://example.com/lago/api/v1/ ", "https://example.com/lago/api/v1"),
    ],
)
def test_urls_are_normalised_to_api_v1(given: str, expected: str) -> None:
    assert resolve_api_url(given) == expected


@pytest.mark.parametrize(
    "given", ["", "localhost:3000", "ftp://example.com", "http://"]
)
def test_a_url_that_is_not_http_is_a_configuration_error(given: str) -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        resolve_api_url(given)


@pytest.mark.parametrize(
    "given",
    ["http://user:s3cret@lago:3000", "https://s3cret@lago/api/v1", "user:s3cret@lago"],
)
def test_credentials_in_the_url_are_refused_without_showing_them(given: str) -> None:
    with pytest.raises(ConfigurationError, match="user name or password") as raised:
        resolve_api_url(given)

    assert "s3cret" not in str(raised.value)


def test_the_library_never_falls_back_silently_when_the_env_is_empty() -> None:
    with pytest.raises(ConfigurationError, match="LAGO_API_URL is not set"):
        url_from_env()


def test_local_without_a_key_gets_the_embedded_placeholder_and_nothing_else() -> None:
    assert api_key_for("local", None) == EMBEDDED_API_KEY
    assert api_key_for("local", "mine") == "mine"
    assert api_key_for("http://localhost:3000", None) is None
