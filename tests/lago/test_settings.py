from __future__ import annotations

import pytest
import respx

from tokbill import ConfigurationError
from tokbill.lago import LagoClient


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
    client = LagoClient(given, "k")

    assert client.api_url == expected


@pytest.mark.parametrize(
    "given", ["", "localhost:3000", "ftp://example.com", "http://"]
)
def test_a_url_that_is_not_http_is_a_configuration_error(given: str) -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        LagoClient(given, "k")


@pytest.mark.parametrize(
    "given",
    ["http://user:s3cret@lago:3000", "https://s3cret@lago/api/v1", "user:s3cret@lago"],
)
def test_credentials_in_the_url_are_refused_without_showing_them(given: str) -> None:
    with pytest.raises(ConfigurationError, match="user name or password") as raised:
        LagoClient(given, "k")

    assert "s3cret" not in str(raised.value)


def test_the_library_never_falls_back_silently_when_the_env_is_empty() -> None:
    with pytest.raises(ConfigurationError, match="LAGO_API_URL is not set"):
        LagoClient.from_env()


@respx.mock
def test_a_real_lago_without_a_key_gets_no_placeholder() -> None:
    route = respx.get("http://localhost:3000/api/v1/plans").respond(json={"plans": []})

    with LagoClient("http://localhost:3000", None) as client:
        client.get("/plans")

    assert "Authorization" not in route.calls.last.request.headers
