"""A scripted ``/events/batch`` on respx, for the retry and triage rules."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import respx

from tests.ingest.conftest import BATCH_URL

Event = dict[str, Any]
Script = Callable[[list[Event]], httpx.Response]


def ok(events: list[Event]) -> httpx.Response:
    """Lago's answer to a valid batch."""
    return httpx.Response(200, json={"events": events})


def unavailable(events: list[Event]) -> httpx.Response:
    """A Lago that is down: every batch gets a 503."""
    return httpx.Response(503)


def invalid(index_errors: dict[str, Any]) -> httpx.Response:
    """Lago's 422 for a batch, with ``error_details`` keyed by event index."""
    return httpx.Response(
        422,
        json={
            "status": 422,
            "error": "Unprocessable Entity",
            "code": "validation_errors",
            "error_details": index_errors,
        },
    )


class FakeBatchEndpoint:
    """Answers each batch with ``script`` and remembers what it was sent.

    ``stored`` mimics Lago's store: events of 2xx answers, by transaction id.
    """

    def __init__(self, script: Script = ok) -> None:
        self.script = script
        self.batches: list[list[Event]] = []
        self.bodies: list[bytes] = []
        self.headers: list[httpx.Headers] = []
        self.stored: dict[str, Event] = {}
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        with self._lock:
            self.batches.append(events)
            self.bodies.append(request.content)
            self.headers.append(request.headers)
        response = self.script(events)
        if response.status_code == 200:
            with self._lock:
                for event in events:
                    self.stored.setdefault(event["transaction_id"], event)
        return response

    @property
    def sent(self) -> list[Event]:
        """Every event of every request, resends included."""
        with self._lock:
            return [event for batch in self.batches for event in batch]


@contextmanager
def fake_lago(script: Script = ok) -> Iterator[FakeBatchEndpoint]:
    """Route ``POST /api/v1/events/batch`` of lago.test to a fake endpoint."""
    endpoint = FakeBatchEndpoint(script)
    with respx.mock(assert_all_called=False) as router:
        router.post(BATCH_URL).mock(side_effect=endpoint)
        yield endpoint
