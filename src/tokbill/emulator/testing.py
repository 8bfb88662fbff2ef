"""One line to use the emulator in a test.

with running_emulator() as lago:
    client = LagoClient(api_url=lago.api_url, api_key="any")
    ...
    assert lago.store.events("sub_1")
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tokbill.emulator._server import EmulatorServer

__all__ = ["running_emulator"]


@contextmanager
def running_emulator(**kwargs: Any) -> Iterator[EmulatorServer]:
    """A started :class:`EmulatorServer` (same arguments), stopped on exit."""
    server = EmulatorServer(**kwargs)
    with server:
        yield server
