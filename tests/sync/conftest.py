from __future__ import annotations

from collections.abc import Iterator

import pytest

from tokbill.emulator import EmulatorServer
from tokbill.lago import LagoClient


@pytest.fixture
def client(lago_emulator: EmulatorServer) -> Iterator[LagoClient]:
    """A client on a fresh emulator; the emulator's request log starts empty."""
    with LagoClient(lago_emulator.api_url, "test-key") as lago:
        yield lago
