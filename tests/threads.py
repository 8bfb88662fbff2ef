"""Waiting for the meters' threads, which may outlive ``close``."""

from __future__ import annotations

import threading
import time


def join_meter_threads(timeout_s: float = 10.0) -> None:
    """Wait until every meter thread of this process has ended.

    ``close`` returns at its deadline, and a sender whose request is still in
    flight goes on until the request ends: it may then log, and until the
    last thread is out the meter keeps its spool lane locked and its files
    open. A test that reads or edits that lane waits here first.
    """
    deadline = time.monotonic() + timeout_s
    for thread in threading.enumerate():
        if thread.name.startswith("tokbill-ingest"):
            thread.join(max(deadline - time.monotonic(), 0.0))
