"""The ``lago_emulator`` pytest fixture, registered through the pytest11 entry point."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tokbill.emulator._server import EmulatorServer
from tokbill.emulator.testing import running_emulator


@pytest.fixture
def lago_emulator() -> Iterator[EmulatorServer]:
    """A running emulator with fresh in-memory state, for one test."""
    with running_emulator() as server:
        yield server
