from __future__ import annotations

from pathlib import Path

import pytest

from tokbill.lago import LagoClient


def test_local_selects_the_embedded_emulator_and_needs_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    with LagoClient("local") as client:
        body = client.get("/billable_metrics")

    assert body["billable_metrics"] == []
    assert client.api_url.startswith("http://127.0.0.1:")
    assert (tmp_path / ".tokbill" / "lago.sqlite3").exists()
