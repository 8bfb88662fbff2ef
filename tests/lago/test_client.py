from __future__ import annotations

import logging
import time

import httpx
import pytest
import respx

from tokbill import (
    AuthenticationError,
    ConfigurationError,
    LagoConnectionError,
    LagoTimeoutError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UnprocessableError,
)
from tokbill.lago import (
    AsyncLagoClient,
    LagoClient,
    api_path,
    error_from_response,
    retry_after_s,
)

URL = "https://lago.test/api/v1"
KEY = "sk_live_0123456789abcdef"


def make_client(**kwargs: object) -> LagoClient:
    sleeps: list[float] = []
    client = LagoClient(URL, KEY, sleep=sleeps.append, **kwargs)  # type: ignore[arg-type]
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client


@respx.mock
def test_sends_the_key_as_a_bearer_header_and_returns_the_body() -> None:
    route = respx.get(f"{URL}/plans/gpt4").respond(json={"plan": {"code": "gpt4"}})

    body = make_client().get("/plans/gpt4")

    assert body == {"plan": {"code": "gpt4"}}
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {KEY}"


def test_the_key_never_appears_in_the_repr() -> None:
    text = repr(make_client())

    assert KEY not in text
    assert "cdef" in text


@respx.mock
def test_whitespace_around_the_key_is_dropped() -> None:
    route = respx.get(f"{URL}/plans").respond(json={"plans": []})

    LagoClient(URL, f" {KEY}\n").get("/plans")

    assert route.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    "bad_key",
    [f"{KEY[:8]}\n{KEY[8:]}", f"{KEY[:8]} {KEY[8:]}", f"{KEY}\u00e9", f"{KEY}\x00"],
    ids=["newline", "space", "non-ascii", "nul"],
)
def test_a_key_no_header_can_carry_is_refused_without_showing_it(
    bad_key: str,
) -> None:
    # httpx would fail every request with a message quoting the header.
    with pytest.raises(ConfigurationError, match="API key") as caught:
        LagoClient(URL, bad_key)

    assert KEY[:8] not in str(caught.value)
    assert KEY[8:] not in str(caught.value)


def test_api_path_url_encodes_each_segment() -> None:
    assert api_path("plans", "a/b?c", "charges") == "/plans/a%2Fb%3Fc/charges"


@respx.mock
def test_a_422_names_the_call_the_status_and_lagos_code() -> None:
    respx.post(f"{URL}/plans").respond(
        422,
        json={
            "status": 422,
            "error": "Unprocessable Entity",
            "code": "validation_errors",
            "error_details": {"properties": ["invalid_package_size"]},
        },
    )

    with pytest.raises(UnprocessableError) as caught:
        make_client().post("/plans", {"plan": {}})

    assert str(caught.value) == (
        "POST /api/v1/plans returned 422 Unprocessable Entity "
        "(code validation_errors): properties: invalid_package_size."
    )
    assert caught.value.error_details == {"properties": ["invalid_package_size"]}


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (
            400,
            {"status": 400, "error": "BadRequest: param is missing: plan"},
            "POST /api/v1/plans returned 400 Bad Request: BadRequest: param is "
            "missing: plan.",
        ),
        (
            404,
            {"status": 404, "error": "Not Found", "code": "plan_not_found"},
            "POST /api/v1/plans returned 404 Not Found (code plan_not_found).",
        ),
        (502, None, "POST /api/v1/plans returned 502 Bad Gateway."),
    ],
    ids=["400-explained", "reason-not-repeated", "no-json-body"],
)
def test_lagos_error_text_is_kept_when_it_says_more_than_the_status(
    status: int, body: dict[str, object] | None, message: str
) -> None:
    response = httpx.Response(status, json=body) if body else httpx.Response(status)

    error = error_from_response(response, "POST", "/api/v1/plans")

    assert str(error) == message


@respx.mock
def test_batch_errors_are_described_per_event_index() -> None:
    respx.post(f"{URL}/events/batch").respond(
        422,
        json={
            "code": "validation_errors",
            "error_details": {"1": {"timestamp": ["invalid_format"]}},
        },
    )

    with pytest.raises(UnprocessableError, match="event 1: timestamp: invalid_format"):
        make_client().post("/events/batch", {"events": []})


@respx.mock
def test_404_maps_to_not_found_with_the_code() -> None:
    respx.get(f"{URL}/plans/nope").respond(
        404, json={"status": 404, "error": "Not Found", "code": "plan_not_found"}
    )

    with pytest.raises(NotFoundError) as caught:
        make_client().get("/plans/nope")

    assert caught.value.code == "plan_not_found"
    assert caught.value.status_code == 404


@respx.mock
def test_reads_are_retried_on_5xx_then_succeed() -> None:
    route = respx.get(f"{URL}/plans").mock(
        side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200)]
    )
    client = make_client()

    assert client.get("/plans") == {}
    assert route.call_count == 3
    assert len(client.sleeps) == 2  # type: ignore[attr-defined]


@respx.mock
def test_reads_give_up_after_max_retries_with_the_last_error() -> None:
    route = respx.get(f"{URL}/plans").respond(500)

    with pytest.raises(ServerError, match="GET /api/v1/plans returned 500"):
        make_client(max_retries=2).get("/plans")

    assert route.call_count == 3


@respx.mock
def test_writes_are_not_retried_after_a_5xx_since_lago_may_have_applied_them() -> None:
    route = respx.post(f"{URL}/plans").respond(500)

    with pytest.raises(ServerError):
        make_client().post("/plans", {"plan": {}})

    assert route.call_count == 1


@respx.mock
def test_writes_are_retried_on_429_waiting_what_lago_asked() -> None:
    route = respx.post(f"{URL}/plans").mock(
        side_effect=[
            httpx.Response(429, headers={"X-RateLimit-Reset": "3"}),
            httpx.Response(200, json={"plan": {}}),
        ]
    )
    client = make_client()

    assert client.post("/plans", {"plan": {}}) == {"plan": {}}
    assert route.call_count == 2
    assert client.sleeps == [3.0]  # type: ignore[attr-defined]


@respx.mock
def test_writes_are_retried_when_the_connection_failed_before_sending() -> None:
    route = respx.post(f"{URL}/plans").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200)]
    )

    make_client().post("/plans", {"plan": {}})

    assert route.call_count == 2


@respx.mock
def test_a_timed_out_write_is_not_retried_and_says_it_may_have_applied() -> None:
    route = respx.post(f"{URL}/plans").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(LagoTimeoutError, match="may have applied it"):
        make_client().post("/plans", {"plan": {}})

    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize(
    "timeout", [httpx.ConnectTimeout, httpx.PoolTimeout], ids=["connect", "pool"]
)
def test_a_write_that_timed_out_before_leaving_is_retried(
    timeout: type[httpx.TimeoutException],
) -> None:
    route = respx.post(f"{URL}/plans").mock(
        side_effect=[timeout("no connection"), httpx.Response(200, json={})]
    )

    make_client().post("/plans", {"plan": {}})

    assert route.call_count == 2


@respx.mock
def test_a_timed_out_read_is_retried_and_claims_nothing_was_applied() -> None:
    route = respx.get(f"{URL}/plans").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(LagoTimeoutError) as caught:
        make_client(max_retries=1).get("/plans")

    assert route.call_count == 2
    assert str(caught.value) == ("GET /api/v1/plans timed out after 10s (ReadTimeout).")


@respx.mock
def test_a_401_is_not_retried_and_the_message_does_not_leak_the_key() -> None:
    route = respx.get(f"{URL}/plans").respond(
        401, json={"status": 401, "error": "Unauthorized"}
    )

    with pytest.raises(AuthenticationError) as caught:
        make_client().get("/plans")

    assert route.call_count == 1
    assert KEY not in str(caught.value)


@respx.mock
def test_connection_errors_name_the_call(caplog: pytest.LogCaptureFixture) -> None:
    respx.get(f"{URL}/plans").mock(side_effect=httpx.ConnectError("refused"))
    caplog.set_level(logging.DEBUG)

    with pytest.raises(LagoConnectionError, match="GET /api/v1/plans could not"):
        make_client(max_retries=1).get("/plans")

    assert KEY not in caplog.text


@respx.mock
@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            httpx.ConnectError("[Errno 111] Connection refused"),
            "could not reach Lago at https://lago.test/api/v1: [Errno 111] "
            "Connection refused.",
        ),
        (
            httpx.RemoteProtocolError("Server disconnected without a response."),
            "got no answer from Lago at https://lago.test/api/v1: Server "
            "disconnected without a response.",
        ),
        (
            httpx.ReadError(""),
            "got no answer from Lago at https://lago.test/api/v1: ReadError.",
        ),
    ],
    ids=["refused", "disconnected", "no-text"],
)
def test_a_connection_error_is_one_sentence(
    error: httpx.TransportError, message: str
) -> None:
    respx.get(f"{URL}/plans").mock(side_effect=error)

    with pytest.raises(LagoConnectionError) as caught:
        make_client(max_retries=0).get("/plans")

    assert str(caught.value) == f"GET /api/v1/plans {message}"


@respx.mock
def test_paginate_follows_next_page() -> None:
    respx.get(f"{URL}/plans", params={"page": "1"}).respond(
        json={"plans": [{"code": "a"}], "meta": {"next_page": 2}}
    )
    respx.get(f"{URL}/plans", params={"page": "2"}).respond(
        json={"plans": [{"code": "b"}], "meta": {"next_page": None}}
    )

    codes = [plan["code"] for plan in make_client().paginate("/plans", "plans")]

    assert codes == ["a", "b"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"X-RateLimit-Reset": "5"}, 5.0),
        ({"Retry-After": "2", "X-RateLimit-Reset": "5"}, 5.0),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "garbage"}, None),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"X-RateLimit-Reset": "1444462080"}, 0.0),
        ({}, None),
    ],
    ids=[
        "seconds",
        "reset",
        "larger",
        "nan",
        "inf",
        "garbage",
        "negative",
        "past",
        "past-unix-time",
        "none",
    ],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_s(httpx.Headers(headers)) == expected


def test_a_reset_given_as_a_unix_time_waits_until_that_moment() -> None:
    reset = httpx.Headers({"X-RateLimit-Reset": str(int(time.time()) + 3600)})

    assert 3000.0 < (retry_after_s(reset) or 0.0) <= 3600.0


@respx.mock
def test_the_async_client_retries_like_the_sync_one() -> None:
    import asyncio

    route = respx.get(f"{URL}/plans").mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json={"plans": []})]
    )

    async def run() -> dict[str, object]:
        async with AsyncLagoClient(URL, KEY, sleep=_async_sleep) as client:
            return await client.get("/plans")

    assert asyncio.run(run()) == {"plans": []}
    assert route.call_count == 2


async def _async_sleep(_seconds: float) -> None:
    return None


@respx.mock
def test_a_429_error_carries_the_wait_lago_asked_for() -> None:
    respx.post(f"{URL}/plans").respond(429, headers={"Retry-After": "7"})

    with pytest.raises(RateLimitError) as caught:
        make_client(max_retries=0).post("/plans", {"plan": {}})

    assert caught.value.retry_after_s == 7.0
