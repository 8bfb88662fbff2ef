from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import httpx
import pytest

from tests.emulator.lago import api_client
from tokbill.emulator import EmulatorServer
from tokbill.emulator.testing import running_emulator


@pytest.fixture
def api(lago_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An HTTP client on the emulator's ``/api/v1`` with a bearer key."""
    with api_client(lago_emulator) as client:
        yield client


PINNED_NOW = datetime(2026, 8, 15, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def pinned() -> Iterator[EmulatorServer]:
    """An emulator whose clock stands still at ``PINNED_NOW``."""
    with running_emulator(clock=lambda: PINNED_NOW) as server:
        yield server


@pytest.fixture
def pinned_api(pinned: EmulatorServer) -> Iterator[httpx.Client]:
    """An HTTP client on the pinned emulator."""
    with api_client(pinned) as client:
        yield client
