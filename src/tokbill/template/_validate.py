"""Run the pydantic schema on template data and explain failures in template terms.

pydantic's own sentences ("Input should be a valid integer") name neither the
value as written nor what a template expects there; these messages do both,
e.g. ``1000.0 is a decimal number; expected a whole number > 0 of units per
package, such as 1000.``
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tokbill.template._problems import FieldPath, Report
from tokbill.template._yaml import SourceDocument, kind_of

ModelT = TypeVar("ModelT", bound=BaseModel)

# Lago has these, tokbill does not price them yet: say so instead of "unknown".
_LAGO_ONLY = {
    "charge_model": (
        "graduated",
        "percentage",
        "volume",
        "graduated_percentage",
        "custom",
        "dynamic",
    ),
    "aggregation_type": (
        "max_agg",
        "unique_count_agg",
        "weighted_sum_agg",
        "latest_agg",
        "custom_agg",
    ),
}
_GENERIC_EXPECTED = {
    "string_type": "text",
    "int_type": "a whole number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "string_too_short": "non-empty text",
}


def validate(
    model: type[ModelT],
    raw: Any,
    where: SourceDocument,
    path: FieldPath,
    report: Report,
) -> ModelT | None:
    """``raw`` as a ``model``, or ``None`` after reporting every problem in it."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(part for part in error["loc"] if part != "[key]")
            full = (*path, *loc)
            shown = where.shown(full, error["input"])
            report.error(where, full, explain(model, error, loc, shown))
        return None


def validate_split(
    model: type[ModelT],
    raw: Any,
    list_fields: Sequence[str],
    where: SourceDocument,
    path: FieldPath,
    report: Report,
) -> tuple[ModelT | None, dict[str, list[tuple[FieldPath, Any]]]]:
    """Validate ``raw`` without its item lists, and hand back the raw items.

    Checking each item on its own lets one bad item leave the others usable for
    the checks of meaning, so a single run reports every problem. When a list
    field is not a list, ``raw`` is validated whole and no items come back.
    """
    lists = (
        {name: raw.get(name, []) for name in list_fields}
        if isinstance(raw, dict)
        else {}
    )
    if not lists or not all(isinstance(items, list) for items in lists.values()):
        return validate(model, raw, where, path, report), {n: [] for n in list_fields}
    header = validate(model, {**raw, **dict.fromkeys(lists, [])}, where, path, report)
    items = {
        name: [((*path, name, index), item) for index, item in enumerate(values)]
        for name, values in lists.items()
    }
    return header, items


def explain(
    model: type[BaseModel], error: ErrorDetails, loc: FieldPath, shown: str
) -> str:
    """One sentence for one pydantic error, starting with the value as written."""
    owner, rest = _model_at(model, loc)
    kind, value = error["type"], error["input"]
    expected = _expected(owner, rest, kind)
    if kind == "missing":
        return f"is required; expected {expected}."
    if kind == "extra_forbidden":
        return _unknown_key(owner, str(rest[-1]))
    if kind.startswith("tokbill_"):
        return f"{subject(value, shown)}{error['msg']}"
    if kind == "literal_error":
        return _unsupported(rest, value, shown, expected)
    if kind in ("greater_than", "greater_than_equal"):
        problem = "is negative" if kind == "greater_than_equal" else "is too small"
        return f"{shown} {problem}; expected {expected}."
    if kind == "string_too_short":
        return f"is empty text; expected {expected}."
    if kind == "string_type" and isinstance(value, bool | int | Decimal):
        return f'{shown} is {kind_of(value)}; expected text, so quote it: "{shown}".'
    return f"{subject(value, shown)}is {kind_of(value)}; expected {expected}."


def subject(value: Any, shown: str) -> str:
    """The value as written, then a space; nothing for mappings, lists and null."""
    return "" if value is None or isinstance(value, dict | list) else f"{shown} "


def _model_at(
    model: type[BaseModel], loc: FieldPath
) -> tuple[type[BaseModel], FieldPath]:
    """The innermost model that ``loc`` reaches, and ``loc`` relative to it."""
    name = loc[0] if loc else None
    if not isinstance(name, str) or name not in model.model_fields:
        return model, loc
    annotation = model.model_fields[name].annotation
    inner, rest = _model_in(annotation), loc[1:]
    if inner is None or not rest:
        return model, loc
    if get_origin(annotation) is list:
        return _model_at(inner, rest[1:]) if isinstance(rest[0], int) else (model, loc)
    return _model_at(inner, rest)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    candidates = (annotation, *get_args(annotation))
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _expected(model: type[BaseModel], loc: FieldPath, kind: str) -> str:
    if not loc:
        return f"a mapping with the keys {', '.join(model.model_fields)}"
    info = model.model_fields.get(loc[0]) if isinstance(loc[0], str) else None
    described = info.description if info is not None else None
    if len(loc) == 1 and described:
        return described
    generic = _GENERIC_EXPECTED.get(kind, "another value")
    return f"{generic} ({loc[0]} is {described})" if described else generic


def _unknown_key(model: type[BaseModel], key: str) -> str:
    known = list(model.model_fields)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f' (did you mean "{close[0]}"?)' if close else ""
    return f"unknown key{hint}; expected one of: {', '.join(known)}."


def _unsupported(loc: FieldPath, value: Any, shown: str, expected: str) -> str:
    field = loc[-1] if loc else ""
    if isinstance(field, str) and value in _LAGO_ONLY.get(field, ()):
        what = field.replace("_", " ")
        return (
            f"{shown} is a Lago {what} that tokbill does not support yet; "
            f"expected {expected}."
        )
    return f"{shown} is not supported; expected {expected}."
