"""``load_templates``: template files in, one checked :class:`TemplateSet` out."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from tokbill._errors import TemplateError
from tokbill.template._compile import Compiler
from tokbill.template._model import TemplateSet
from tokbill.template._problems import Problem, Report
from tokbill.template._yaml import read_document

logger = logging.getLogger(__name__)


def load_templates(paths: Sequence[str | os.PathLike[str]]) -> TemplateSet:
    """Read, check and merge template files into one desired state.

    Every file is read and checked before anything is decided, so one call
    reports every problem of every file. A charge may use a metric declared in
    another of the files; a metric declared identically in several files is one
    metric. A path given twice is read once.

    Raises:
        TemplateError: listing each problem as ``FILE:LINE: field.path: what is
            wrong; expected ...``, in file order then line order. Nothing is
            returned when any file has a problem.

    Warnings (legal but likely unintended, such as a declared combination
    without a price) do not raise; they are in ``TemplateSet.warnings``.
    """
    files = _distinct(paths)
    if not files:
        raise TemplateError(["No template files were given; expected at least one."])
    report = Report()
    compiler = Compiler(report)
    unreadable: list[Problem] = []
    for file in files:
        document, problems = read_document(file)
        unreadable.extend(problems)
        if document is not None:
            compiler.add(document)
    metrics, plans = compiler.compile()
    errors = unreadable + _not_yet_reported(report.errors, unreadable)
    if errors:
        raise TemplateError([str(p) for p in _in_file_order(errors, files)])
    warnings = tuple(str(p) for p in _in_file_order(report.warnings, files))
    logger.debug(
        "Loaded %d template file(s): %d metric(s), %d plan(s), %d warning(s).",
        len(files),
        len(metrics),
        len(plans),
        len(warnings),
    )
    return TemplateSet(
        metrics=metrics, plans=plans, warnings=warnings, paths=tuple(files)
    )


def _distinct(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        # A lone path is a Sequence of characters: take it as one file, not many.
        paths = [paths]
    seen: set[str] = set()
    files = []
    for path in paths:
        file = os.fspath(path)
        real = os.path.realpath(file)
        if real not in seen:
            seen.add(real)
            files.append(file)
    return files


def _not_yet_reported(
    problems: list[Problem], reported: list[Problem]
) -> list[Problem]:
    # A value the YAML reader refused (say, an unsupported tag) reaches the
    # schema as null; its "is empty" would only repeat the first message.
    seen = {(problem.file, problem.path) for problem in reported}
    return [problem for problem in problems if (problem.file, problem.path) not in seen]


def _in_file_order(problems: list[Problem], files: list[str]) -> list[Problem]:
    rank = {file: index for index, file in enumerate(files)}
    return sorted(problems, key=lambda p: (rank.get(p.file, len(rank)), p.line or 0))
