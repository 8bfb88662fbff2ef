"""The ASGI app: authentication, fault injection, routing and the request log.

Routing splits the raw (still percent-encoded) path on ``/`` and decodes each
segment, because Lago codes may contain any character, ``/`` included
(``resources :billable_metrics, param: :code, code: /.*/``); routing on the
decoded path could not tell ``a%2Fb`` from two segments. Handlers run on the
event loop thread inside one store transaction: an error rolls it back.

A client that gives up is expected, not an error: fault injection exists to
make clients time out. A request whose client left before its body arrived
is recorded with nginx's status 499 and logged at DEBUG, and the fault
delays (latency, stall) end as soon as the server starts stopping, so uvicorn
never has to cancel a request still sleeping in one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from tokbill.emulator import (
    _customers,
    _errors,
    _events,
    _metrics,
    _plan_charges,
    _plans,
    _subscriptions,
    _usage,
)
from tokbill.emulator._common import Call, dumps
from tokbill.emulator._faults import Faults
from tokbill.emulator._store import Database

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
Handler = Callable[[Call], dict[str, Any]]
_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
# nginx's status for a request its client abandoned; only the request log
# ever sees it, since nobody is left to read the answer.
_CLIENT_CLOSED_REQUEST = 499

_CHARGE = ("plans", "*", "charges", "*")
_FILTER = (*_CHARGE, "filters", "*")
ROUTES: tuple[tuple[str, tuple[str, ...], Handler], ...] = (
    ("POST", ("billable_metrics",), _metrics.create),
    ("GET", ("billable_metrics",), _metrics.index),
    ("GET", ("billable_metrics", "*"), _metrics.show),
    ("PUT", ("billable_metrics", "*"), _metrics.update),
    ("PATCH", ("billable_metrics", "*"), _metrics.update),
    ("DELETE", ("billable_metrics", "*"), _metrics.destroy),
    ("POST", ("plans",), _plans.create),
    ("GET", ("plans",), _plans.index),
    ("GET", ("plans", "*"), _plans.show),
    ("PUT", ("plans", "*"), _plans.update),
    ("PATCH", ("plans", "*"), _plans.update),
    ("DELETE", ("plans", "*"), _plans.destroy),
    ("GET", ("plans", "*", "charges"), _plan_charges.index),
    ("POST", ("plans", "*", "charges"), _plan_charges.create),
    ("GET", _CHARGE, _plan_charges.show),
    ("PUT", _CHARGE, _plan_charges.update),
    ("PATCH", _CHARGE, _plan_charges.update),
    ("DELETE", _CHARGE, _plan_charges.destroy),
    ("GET", (*_CHARGE, "filters"), _plan_charges.filter_index),
    ("POST", (*_CHARGE, "filters"), _plan_charges.filter_create),
    ("GET", _FILTER, _plan_charges.filter_show),
    ("PUT", _FILTER, _plan_charges.filter_update),
    ("PATCH", _FILTER, _plan_charges.filter_update),
    ("DELETE", _FILTER, _plan_charges.filter_destroy),
    ("POST", ("customers",), _customers.upsert),
    ("GET", ("customers",), _customers.index),
    ("GET", ("customers", "*"), _customers.show),
    ("DELETE", ("customers", "*"), _customers.destroy),
    ("GET", ("customers", "*", "current_usage"), _usage.current),
    ("POST", ("subscriptions",), _subscriptions.create),
    ("GET", ("subscriptions",), _subscriptions.index),
    ("GET", ("subscriptions", "*"), _subscriptions.show),
    ("DELETE", ("subscriptions", "*"), _subscriptions.terminate),
    ("POST", ("events",), _events.create),
    ("POST", ("events", "batch"), _events.create_batch),
    ("GET", ("events",), _events.index),
    ("GET", ("events", "*"), _events.show),
)


def match_route(
    method: str, segments: list[str]
) -> tuple[Handler, tuple[str, ...]] | None:
    """The handler for ``method`` and the decoded path segments, with captures."""
    for route_method, pattern, handler in ROUTES:
        if route_method != method or len(pattern) != len(segments):
            continue
        captures = []
        for expected, actual in zip(pattern, segments, strict=True):
            if expected == "*":
                captures.append(actual)
            elif expected != actual:
                break
        else:
            return handler, tuple(captures)
    return None


@dataclass(frozen=True)
class LoggedRequest:
    """One API request as the emulator answered it."""

    method: str
    path: str
    status: int


class RequestLog:
    """A thread-safe record of every API request: method, path and status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def append(self, entry: LoggedRequest) -> None:
        """Record one answered request."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        """A snapshot of every request recorded since the last ``reset``."""
        with self._lock:
            return list(self._entries)

    def writes(self) -> list[LoggedRequest]:
        """The recorded requests that could change state (every non-GET)."""
        return [entry for entry in self.entries() if entry.method != "GET"]

    def reset(self) -> None:
        """Forget every recorded request."""
        with self._lock:
            self._entries.clear()

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def json_response(
    status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    """A compact JSON response."""
    content = dumps(body)
    return Response(content, status, dict(headers), media_type="application/json")


class _StopSignal:
    """Tells fault delays on the server's event loop that the server stops.

    Made on the loop when the server starts (one per run); ``set`` may be
    called from any thread.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()

    def set(self) -> None:
        """End every fault delay of this run, now and from now on."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)

    async def sleep(self, delay_s: float) -> None:
        """Wait ``delay_s`` seconds, or less once the server starts stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        except asyncio.TimeoutError:
            return
        logger.debug("Ended a %.2f s fault delay early: the server stops.", delay_s)


class EmulatorApp:
    """The request pipeline, shared by the routes of the Starlette app."""

    def __init__(
        self, db: Database, faults: Faults, log: RequestLog, api_key: str | None
    ) -> None:
        self.db = db
        self.faults = faults
        self.log = log
        self._api_key = api_key
        self._stop_signal: _StopSignal | None = None

    def starlette(self) -> Starlette:
        """The ASGI application serving the API and the control endpoints."""
        return Starlette(
            routes=[
                Route(
                    "/_emulator/faults", self.fault_settings, methods=["GET", "POST"]
                ),
                Route("/_emulator/reset", self.reset, methods=["POST"]),
                Route("/{path:path}", self.api, methods=_METHODS),
            ],
            lifespan=self._lifespan,
        )

    def end_fault_delays(self) -> None:
        """Let every request sleeping in a fault delay go on (thread-safe).

        Called when the server starts stopping, so a stalled request finishes
        within uvicorn's graceful shutdown instead of being cancelled.
        """
        if self._stop_signal is not None:
            self._stop_signal.set()

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._stop_signal = _StopSignal()
        yield

    async def api(self, request: Request) -> Response:
        """Serve one request under ``/api/v1`` with faults applied."""
        path = request.url.path
        decision = self.faults.decide(request.method, path)
        if decision.latency_s:
            await self._delay(decision.latency_s)
        if decision.status is not None:
            body = _errors.status_body(decision.status)
            response = json_response(decision.status, body, decision.headers)
        else:
            response = await self._serve(request)
        self.log.append(LoggedRequest(request.method, path, response.status_code))
        if decision.stall_s:
            await self._delay(decision.stall_s)
        return response

    async def _delay(self, delay_s: float) -> None:
        if self._stop_signal is None:
            # Served by a server that runs no lifespan: nothing will stop early.
            await asyncio.sleep(delay_s)
        else:
            await self._stop_signal.sleep(delay_s)

    async def _serve(self, request: Request) -> Response:
        try:
            handler, call = await self._route(request)
            with self.db.transaction():
                result = handler(call)
        except _errors.ApiError as error:
            return json_response(error.status, error.body)
        except ClientDisconnect:
            # The client timed out or died before its body arrived: there is
            # nothing to handle, and nobody to answer.
            logger.debug(
                "The client of %s %s left before sending its body.",
                request.method,
                request.url.path,
            )
            return Response(status_code=_CLIENT_CLOSED_REQUEST)
        except Exception:
            # Any other failure is an emulator bug; answer like Rails would.
            logger.exception(
                "The emulator failed on %s %s.", request.method, request.url.path
            )
            return json_response(500, _errors.status_body(500))
        return json_response(200, result)

    async def _route(self, request: Request) -> tuple[Handler, Call]:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        path = raw_path.decode("latin-1").split("?", 1)[0]
        if not path.startswith(API_PREFIX + "/"):
            raise _errors.not_found("resource")
        self._authenticate(request)
        segments = [unquote(part) for part in path[len(API_PREFIX) + 1 :].split("/")]
        if segments and segments[-1] == "" and len(segments) > 1:
            segments.pop()
        found = match_route(request.method, segments)
        if found is None:
            raise _errors.not_found("resource")
        handler, params = found
        body = await _json_body(request) if request.method in _WITH_BODY else None
        return handler, Call(self.db, params, request.query_params, body)

    def _authenticate(self, request: Request) -> None:
        # Lago reads the second word of the header, whatever the first is, with
        # Ruby's split(" "), which splits on runs of whitespace as str.split().
        words = request.headers.get("authorization", "").split()
        token = words[1] if len(words) > 1 else ""
        if not token or (self._api_key is not None and token != self._api_key):
            raise _errors.unauthorized()

    def _control_refused(self, request: Request) -> Response | None:
        # The control endpoints change what every client sees, so an emulator
        # started with a key guards them with it too; without one, like the
        # API, they accept any caller.
        if self._api_key is None:
            return None
        try:
            self._authenticate(request)
        except _errors.ApiError as error:
            return json_response(error.status, error.body)
        return None

    async def fault_settings(self, request: Request) -> Response:
        """``GET``/``POST /_emulator/faults``: read or change the faults live."""
        refused = self._control_refused(request)
        if refused is not None:
            return refused
        if request.method == "POST":
            try:
                changes = await _json_body(request)
                self.faults.update(**(changes or {}))
            except _errors.ApiError as error:
                return json_response(error.status, error.body)
            except (TypeError, ValueError) as error:
                return json_response(422, {"status": 422, "error": str(error)})
        return json_response(200, {"faults": self.faults.settings.to_dict()})

    async def reset(self, request: Request) -> Response:
        """``POST /_emulator/reset``: empty the store, clear faults and the log."""
        refused = self._control_refused(request)
        if refused is not None:
            return refused
        self.db.clear()
        self.faults.reset()
        self.log.reset()
        return json_response(200, {"reset": True})


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        message = "BadRequest: the request body is not valid JSON"
        raise _errors.ApiError(400, {"status": 400, "error": message}) from None
