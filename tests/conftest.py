from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.threads import join_meter_threads


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real Lago settings."""
    for name in ("LAGO_API_URL", "LAGO_API_KEY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def no_meter_thread_outlives_its_test() -> Iterator[None]:
    """Lines a meter's late thread logs land in the test that made it."""
    yield
    join_meter_threads()
