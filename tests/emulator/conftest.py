from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tokbill.emulator import EmulatorServer


@pytest.fixture
def api(lago_emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An HTTP client on the emulator's ``/api/v1`` with a bearer key."""
    headers = {"Authorization": "Bearer test-key"}
    with httpx.Client(base_url=lago_emulator.api_url, headers=headers) as client:
        yield client
