from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tokbill import TemplateError
from tokbill.template import TemplateSet, load_templates


@dataclass
class TemplateFiles:
    """Writes templates into a scratch directory that is the working directory,
    so messages name them as ``t.yaml``."""

    directory: Path

    def write(self, text: str, name: str = "t.yaml") -> str:
        (self.directory / name).write_text(textwrap.dedent(text), encoding="utf-8")
        return name

    def write_bytes(self, data: bytes, name: str = "t.yaml") -> str:
        (self.directory / name).write_bytes(data)
        return name

    def line(self, needle: str, name: str = "t.yaml") -> int:
        """The 1-based number of the only line of ``name`` containing ``needle``."""
        lines = (self.directory / name).read_text(encoding="utf-8").splitlines()
        found = [n for n, text in enumerate(lines, start=1) if needle in text]
        assert len(found) == 1, f"{needle!r} is on lines {found}"
        return found[0]

    def load(self, *names: str) -> TemplateSet:
        return load_templates(list(names) or ["t.yaml"])

    def problems(self, *names: str) -> list[str]:
        with pytest.raises(TemplateError) as caught:
            load_templates(list(names) or ["t.yaml"])
        assert str(caught.value) == "\n".join(caught.value.problems)
        return caught.value.problems


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TemplateFiles:
    monkeypatch.chdir(tmp_path)
    return TemplateFiles(tmp_path)
