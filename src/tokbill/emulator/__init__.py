"""A Lago-compatible HTTP server for tests and for trying tokbill offline.

It serves the part of Lago's ``/api/v1`` that tokbill touches, with Lago's
rules as the server implements them (billable metrics, plans with charges
and filters, customers, subscriptions, events, current usage), keeps state in
SQLite, and can inject faults (errors, 429s, latency, commit-then-stall).

    from tokbill.emulator import EmulatorServer

    with EmulatorServer() as lago:
        print(lago.api_url)
"""

from __future__ import annotations

from tokbill.emulator._app import LoggedRequest, RequestLog
from tokbill.emulator._faults import Faults, FaultSettings
from tokbill.emulator._reader import Store
from tokbill.emulator._server import EmulatorServer, embedded_url

__all__ = [
    "EmulatorServer",
    "FaultSettings",
    "Faults",
    "LoggedRequest",
    "RequestLog",
    "Store",
    "embedded_url",
]
