from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real Lago settings."""
    for name in ("LAGO_API_URL", "LAGO_API_KEY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_meter_thread_outlives_its_test() -> Iterator[None]:
    """Wait for the meters' threads after each test.

    ``close`` returns at its deadline with a request possibly in flight, and
    that thread may log when the request ends. Joined here, its lines land in
    the test that started it rather than in whichever test runs next.
    """
    yield
    deadline = time.monotonic() + 10.0
    for thread in threading.enumerate():
        if thread.name.startswith("tokbill-ingest"):
            thread.join(max(deadline - time.monotonic(), 0.0))
