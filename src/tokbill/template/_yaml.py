"""Read one template file into plain data, keeping where every value was written.

PyYAML composes the node tree with its safe resolver; the values are then built
here rather than by PyYAML's constructor, for three reasons:

- every field path gets the line it was written on, so messages can point at it;
- an unquoted decimal such as ``0.03`` becomes ``Decimal("0.03")`` from the text
  of the scalar, never through ``float``, so prices stay exact;
- a key given twice is an error instead of PyYAML's silent last-one-wins.

Mapping keys are taken as written (``yes:`` is the key ``"yes"``): in a template
every key is a field name or a filter value, and both are text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tokbill.template._problems import FieldPath, Problem

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT = _TAG + "str", _TAG + "int", _TAG + "float"
_BOOL, _NULL, _TIMESTAMP = _TAG + "bool", _TAG + "null", _TAG + "timestamp"
_MAP, _SEQ, _MERGE = _TAG + "map", _TAG + "seq", _TAG + "merge"

# Aliases let a small file expand into a huge tree ("billion laughs"); no real
# template comes near this many values.
_MAX_VALUES = 100_000

_CONSTRUCTOR = yaml.constructor.SafeConstructor()


@dataclass(frozen=True)
class SourceDocument:
    """One parsed template file: its data and where each value was written."""

    file: str
    data: Any
    lines: Mapping[FieldPath, int] = field(repr=False)
    texts: Mapping[FieldPath, str] = field(repr=False)

    def line_of(self, path: FieldPath) -> int:
        """The line of ``path``, or of its nearest ancestor present in the file."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def shown(self, path: FieldPath, value: Any) -> str:
        """``value`` as the file wrote it when it is a scalar at ``path``."""
        text = self.texts.get(path)
        return text if text is not None else render_value(value)

    def problem(self, path: FieldPath, message: str) -> Problem:
        """A problem about ``path``, located at its line."""
        return Problem(self.file, self.line_of(path), path, message)


def render_value(value: Any) -> str:
    """A short YAML-like rendering of a value built by this module."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def kind_of(value: Any) -> str:
    """What a loaded value is, in words: ``a decimal number``, ``a list``."""
    if isinstance(value, bool):
        return "a boolean"
    kinds = {
        str: "a string",
        int: "a whole number",
        Decimal: "a decimal number",
        dict: "a mapping",
        list: "a list",
        type(None): "empty",
    }
    return kinds.get(type(value), type(value).__name__)


def read_document(
    path: str | os.PathLike[str],
) -> tuple[SourceDocument | None, list[Problem]]:
    """Parse the template at ``path``.

    Returns the document (``None`` when nothing usable could be read) and every
    problem found while reading: unreadable or non-UTF-8 file, YAML syntax, an
    empty file, duplicate keys, unsupported YAML features. Never raises for a
    bad file.
    """
    file = os.fspath(path)
    text, problem = _read_text(file)
    if text is None:
        return None, [problem] if problem else []
    try:
        root = yaml.SafeLoader(text).get_single_node()
    except yaml.YAMLError as exc:
        return None, [_syntax_problem(file, text, exc)]
    if root is None:
        message = (
            "the file is empty; expected a template mapping that starts with "
            "version: 1."
        )
        return None, [Problem(file, 1, (), message)]
    builder = _Builder(file)
    try:
        data = builder.build(root)
    except _TooLarge:
        message = (
            f"the file expands to more than {_MAX_VALUES} values through aliases; "
            "expected a template."
        )
        return None, [Problem(file, 1, (), message)]
    document = SourceDocument(file, data, builder.lines, builder.texts)
    return document, builder.problems


def _read_text(file: str) -> tuple[str | None, Problem | None]:
    try:
        with open(file, "rb") as stream:
            raw = stream.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return None, Problem(file, None, (), f"cannot read the template: {reason}.")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start : exc.start + 1].hex()
        message = (
            f"the file is not UTF-8 text (byte 0x{byte} at offset {exc.start}); "
            "expected a template saved as UTF-8."
        )
        return None, Problem(file, line, (), message)


def _syntax_problem(file: str, text: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        detail = exc.problem or "invalid YAML"
        context_mark = exc.context_mark
        if exc.context and context_mark is not None:
            detail = f"{exc.context} at line {context_mark.line + 1}, {detail}"
        message = f"YAML syntax error at column {mark.column + 1}: {detail}."
        return Problem(file, mark.line + 1, (), message)
    position = getattr(exc, "position", 0)
    line = text.count("\n", 0, position) + 1
    reason = getattr(exc, "reason", None) or str(exc)
    character = getattr(exc, "character", None)
    if isinstance(character, int):  # PyYAML gives the code point for str input
        reason = f"character U+{character:04X}: {reason}"
    return Problem(file, line, (), f"the file cannot be read as YAML: {reason}.")


def decimal_from_text(text: str) -> Decimal | str:
    """The exact value of a YAML float scalar; its text if it is no decimal."""
    cleaned = text.replace("_", "").lower()
    if cleaned.lstrip("+-") in (".inf", ".nan"):
        return Decimal(cleaned.replace(".inf", "Infinity").replace(".nan", "NaN"))
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        # YAML 1.1 also has base-60 floats (``1:30.5``); leave the text for the
        # schema to refuse.
        return text


class _TooLarge(Exception):
    """The document expands past ``_MAX_VALUES`` values."""


class _Builder:
    """Turns a node tree into dicts, lists and scalars, recording locations."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[FieldPath, int] = {}
        self.texts: dict[FieldPath, str] = {}
        self.problems: list[Problem] = []
        self._open: set[int] = set()
        self._count = 0

    def build(self, root: Node) -> Any:
        self.lines[()] = root.start_mark.line + 1
        return self._value(root, ())

    def _value(self, node: Node, path: FieldPath) -> Any:
        self._count += 1
        if self._count > _MAX_VALUES:
            raise _TooLarge
        if id(node) in self._open:
            return self._refuse(
                path,
                "an alias refers to a value that contains it; expected a finite tree.",
            )
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        self._open.add(id(node))
        try:
            if isinstance(node, SequenceNode) and node.tag == _SEQ:
                return self._sequence(node, path)
            if isinstance(node, MappingNode) and node.tag == _MAP:
                return self._mapping(node, path)
            return self._refuse(
                path,
                f"the YAML tag {node.tag} is not supported; "
                "expected a plain mapping or list.",
            )
        finally:
            self._open.discard(id(node))

    def _sequence(self, node: SequenceNode, path: FieldPath) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            self.lines[child] = item.start_mark.line + 1
            items.append(self._value(item, child))
        return items

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            if key in result:
                first = self.lines[child]
                message = (
                    f"this key is given twice (first at line {first}); expected "
                    "each key once."
                )
                self._refuse(child, message, line=key_node.start_mark.line + 1)
                continue
            self.lines[child] = key_node.start_mark.line + 1
            result[key] = self._value(value_node, child)
        return result

    def _key(self, node: Node, path: FieldPath) -> str | None:
        if isinstance(node, ScalarNode) and node.tag == _MERGE:
            message = (
                "YAML merge keys (<<) are not supported; expected the keys written out."
            )
        elif isinstance(node, ScalarNode):
            return str(node.value)
        else:
            message = "a key is a mapping or a list; expected a name."
        self._refuse(path, message, line=node.start_mark.line + 1)
        return None

    def _scalar(self, node: ScalarNode, path: FieldPath) -> Any:
        quoted = node.style in ("'", '"')
        self.texts[path] = json.dumps(node.value) if quoted else node.value
        if node.tag in (_STR, _TIMESTAMP):
            return node.value
        if node.tag == _FLOAT:
            return decimal_from_text(node.value)
        if node.tag == _INT:
            return _CONSTRUCTOR.construct_yaml_int(node)
        if node.tag == _BOOL:
            return _CONSTRUCTOR.construct_yaml_bool(node)
        if node.tag == _NULL:
            self.texts[path] = node.value or "null"
            return None
        return self._refuse(
            path, f"the YAML tag {node.tag} is not supported; expected a plain value."
        )

    def _refuse(
        self, path: FieldPath, message: str, *, line: int | None = None
    ) -> None:
        where = line if line is not None else self.lines.get(path, 1)
        self.problems.append(Problem(self.file, where, path, message))
