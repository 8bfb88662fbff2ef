from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's real Lago settings."""
    for name in ("LAGO_API_URL", "LAGO_API_KEY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
