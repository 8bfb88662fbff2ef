"""HTTP clients for Lago's ``/api/v1``, sync and async.

Both hold one keep-alive connection pool for their lifetime, send the key only
in the ``Authorization`` header, turn every failure into a :mod:`tokbill`
error (see ``tokbill._errors``) and retry by the policy in ``_retry``.

tokbill speaks HTTP itself instead of wrapping lago-python-client, whose
module-level ``httpx`` calls give no connection reuse, whose paths are not
URL-encoded, and whose charge models drop the filter ``lago_id`` that a
reconciler needs (see the README, "Why not lago-python-client").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, Retrying

from tokbill import __version__
from tokbill._errors import (
    LagoConnectionError,
    LagoStatusError,
    LagoTimeoutError,
    RateLimitError,
    status_error,
)
from tokbill._secrets import ApiKey
from tokbill._settings import (
    api_key_for,
    key_from_env,
    resolve_api_url,
    url_from_env,
)
from tokbill.lago._retry import retry_options

__all__ = [
    "AsyncLagoClient",
    "LagoClient",
    "api_path",
    "error_from_response",
    "retry_after_s",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_MAX_RETRIES: Final = 3
DEFAULT_PER_PAGE: Final = 100
USER_AGENT: Final = f"tokbill/{__version__}"

JSON = dict[str, Any]


def api_path(*segments: str) -> str:
    """Join path segments, URL-encoding each: codes may contain ``/`` or ``?``."""
    return "".join("/" + quote(str(segment), safe="") for segment in segments)


class _ClientBase:
    """What the sync and async clients share: settings, headers, error mapping."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None,
        *,
        timeout_s: float,
        max_retries: int,
        sleep: Callable[[float], Any] | None,
    ) -> None:
        self.api_url = resolve_api_url(api_url)
        self._api_key = ApiKey(api_key_for(api_url, api_key) or "")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self._sleep = sleep

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(api_url={self.api_url!r}, api_key={self._api_key!r})"

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        return headers

    def _retry_options(self, method: str) -> dict[str, Any]:
        return retry_options(
            is_write=method != "GET", max_retries=self.max_retries, sleep=self._sleep
        )

    def _full_path(self, path: str) -> str:
        return httpx.URL(self.api_url).path.rstrip("/") + path

    def _connection_error(
        self, exc: httpx.TransportError, method: str, path: str
    ) -> LagoConnectionError:
        full_path = self._full_path(path)
        if isinstance(exc, httpx.TimeoutException):
            # Waiting for a connection, of its own or from the pool, the
            # request had not left yet.
            sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
            # Only a write that left can have been applied; a read changes nothing.
            applied = "; Lago may have applied it" if sent and method != "GET" else ""
            return LagoTimeoutError(
                f"{method} {full_path} timed out after {self.timeout_s:g}s "
                f"({type(exc).__name__}){applied}.",
                method=method,
                path=full_path,
                request_sent=sent,
            )
        sent = not isinstance(exc, httpx.ConnectError)
        failed = "got no answer from" if sent else "could not reach"
        # httpx's text may end in a full stop, or be empty.
        detail = str(exc).rstrip(".") or type(exc).__name__
        return LagoConnectionError(
            f"{method} {full_path} {failed} Lago at {self.api_url}: {detail}.",
            method=method,
            path=full_path,
            request_sent=sent,
        )

    def _result(self, response: httpx.Response, method: str, path: str) -> JSON:
        logger.debug(
            "%s %s -> %d in %.1f ms",
            method,
            path,
            response.status_code,
            response.elapsed.total_seconds() * 1000,
        )
        if response.is_success:
            body = _json_or_none(response)
            return body if isinstance(body, dict) else {}
        raise error_from_response(response, method, self._full_path(path))


class LagoClient(_ClientBase):
    """A synchronous client for Lago's API, safe to share between threads.

    Every method returns the parsed JSON body and raises a
    :class:`~tokbill.LagoError` subclass on failure, after the retries that
    ``tokbill.lago._retry`` allows.
    """

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        super().__init__(
            api_url, api_key, timeout_s=timeout_s, max_retries=max_retries, sleep=sleep
        )
        self._http = httpx.Client(
            headers=self._headers(),
            timeout=timeout_s,
            transport=transport,
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> LagoClient:
        """Build from ``LAGO_API_URL`` and ``LAGO_API_KEY``."""
        return cls(url_from_env(), key_from_env(), **kwargs)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> JSON:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: JSON) -> JSON:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: JSON) -> JSON:
        return self.request("PUT", path, body=body)

    def delete(self, path: str, params: Mapping[str, Any] | None = None) -> JSON:
        return self.request("DELETE", path, params=params)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JSON | None = None,
    ) -> JSON:
        """Send one request with retries; ``path`` is relative to ``/api/v1``."""
        for attempt in Retrying(**self._retry_options(method)):
            with attempt:
                return self._send_once(method, path, params, body)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    def paginate(
        self, path: str, root_key: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[JSON]:
        """Yield every item of a list endpoint, following ``meta.next_page``."""
        page: int | None = 1
        while page:
            query = {**(params or {}), "page": page, "per_page": DEFAULT_PER_PAGE}
            body = self.get(path, query)
            yield from body.get(root_key, [])
            page = (body.get("meta") or {}).get("next_page")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LagoClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: JSON | None,
    ) -> JSON:
        try:
            response = self._http.request(
                method, self.api_url + path, params=params, json=body
            )
        except httpx.TransportError as exc:
            raise self._connection_error(exc, method, path) from exc
        return self._result(response, method, path)


class AsyncLagoClient(_ClientBase):
    """The asyncio twin of :class:`LagoClient`, with the same guarantees."""

    def __init__(
        self,
        api_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        super().__init__(
            api_url, api_key, timeout_s=timeout_s, max_retries=max_retries, sleep=sleep
        )
        self._http = httpx.AsyncClient(
            headers=self._headers(),
            timeout=timeout_s,
            transport=transport,
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncLagoClient:
        """Build from ``LAGO_API_URL`` and ``LAGO_API_KEY``."""
        return cls(url_from_env(), key_from_env(), **kwargs)

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> JSON:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def put(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def delete(self, path: str, params: Mapping[str, Any] | None = None) -> JSON:
        return await self.request("DELETE", path, params=params)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: JSON | None = None,
    ) -> JSON:
        """Send one request with retries; ``path`` is relative to ``/api/v1``."""
        async for attempt in AsyncRetrying(**self._retry_options(method)):
            with attempt:
                return await self._send_once(method, path, params, body)
        raise AssertionError("unreachable: tenacity re-raises the last error")

    async def paginate(
        self, path: str, root_key: str, params: Mapping[str, Any] | None = None
    ) -> AsyncIterator[JSON]:
        """Yield every item of a list endpoint, following ``meta.next_page``."""
        page: int | None = 1
        while page:
            query = {**(params or {}), "page": page, "per_page": DEFAULT_PER_PAGE}
            body = await self.get(path, query)
            for item in body.get(root_key, []):
                yield item
            page = (body.get("meta") or {}).get("next_page")

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLagoClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: JSON | None,
    ) -> JSON:
        try:
            response = await self._http.request(
                method, self.api_url + path, params=params, json=body
            )
        except httpx.TransportError as exc:
            raise self._connection_error(exc, method, path) from exc
        return self._result(response, method, path)


def error_from_response(
    response: httpx.Response, method: str, path: str
) -> LagoStatusError:
    """The tokbill error for a non-2xx ``response`` to ``method path``.

    Reads Lago's JSON error body (code, ``error_details``) when there is
    one, and for a 429 the wait Lago asked for (``retry_after_s``). ``path``
    is the full path to name in the message, e.g. ``/api/v1/events/batch``.
    """
    body = _json_or_none(response)
    error = status_error(
        method=method,
        path=path,
        status_code=response.status_code,
        reason=response.reason_phrase,
        body=body if isinstance(body, dict) else None,
    )
    if isinstance(error, RateLimitError):
        error.retry_after_s = retry_after_s(response.headers)
    return error


# A reset above this is a Unix time (after 2001), not a count of seconds:
# Lago Cloud documents seconds, but proxies in front of a self-hosted Lago
# often send the moment the window ends.
_UNIX_TIME_FLOOR_S = 1e9


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or
    ``X-RateLimit-Reset`` (seconds until the window resets, as Lago Cloud
    documents it, or a Unix time); the larger when both are present, None
    when neither parses.
    """
    candidates = [
        _parse_retry_after(headers.get("retry-after")),
        _parse_reset(headers.get("x-ratelimit-reset")),
    ]
    found = [value for value in candidates if value is not None]
    return max(found) if found else None


def _parse_reset(value: str | None) -> float | None:
    seconds = _parse_seconds(value)
    if seconds is not None and seconds > _UNIX_TIME_FLOOR_S:
        return max(seconds - time.time(), 0.0)
    return seconds


def _parse_retry_after(value: str | None) -> float | None:
    seconds = _parse_seconds(value)
    if seconds is not None or not value:
        return seconds
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def _parse_seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
