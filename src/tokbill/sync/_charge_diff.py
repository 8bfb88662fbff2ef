"""Differences between two states of one charge, worded for a person.

A price change reads ``gpt-4 / input: 0.03 -> 0.035 per 1,000 tokens
(+16.7%)``; the default bucket (events that match no price) is labelled
``unmatched``. The wording of single values (:func:`shown`,
:func:`field_text`) is shared with the metric and plan diffs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

from tokbill.sync._changes import FieldChange
from tokbill.sync._live import Bucket, ChargeState, ValuesKey
from tokbill.template._model import money_string

FROZEN_CHARGE_FIELDS = ("charge_model", "billable_metric", "pay_in_advance")
"""Charge fields Lago silently keeps once the plan has a subscription."""

DEFAULT_BUCKET_LABEL = "unmatched"
_PERCENT_STEP = Decimal("0.1")
_MAX_EXTRA_DIGITS = 100


@dataclass(frozen=True)
class UnitWords:
    """How one unit of a metric is called: ``token`` / ``tokens``."""

    singular: str
    plural: str

    @classmethod
    def for_field(cls, field_name: str | None) -> UnitWords:
        """Words from the metric's summed field; events for a count metric."""
        if not field_name:
            return cls("event", "events")
        plural = field_name.replace("_", " ")
        singular = plural[:-1] if plural.endswith("s") else plural
        return cls(singular, plural)


def per_unit(charge_model: str, bucket: Bucket, words: UnitWords) -> str:
    """``per 1,000 tokens`` for a package price, ``per token`` for standard."""
    size = bucket.get("package_size")
    if charge_model == "package" and isinstance(size, int) and size != 1:
        return f"per {size:,} {words.plural}"
    if charge_model in ("package", "standard"):
        return f"per {words.singular}"
    return ""


def percent_change(before: str, after: str) -> str | None:
    """``+16.7%``, or ``None`` when there is no base to compare with."""
    try:
        old, new = Decimal(before), Decimal(after)
        if old == 0 or not (old.is_finite() and new.is_finite()):
            return None
        with localcontext() as context:
            # Room for every digit before the point: a price raised from 1e-28
            # to 0.03 is a ratio of some 30 digits, past the default 28.
            extra = new.adjusted() - old.adjusted()
            context.prec += max(0, min(_MAX_EXTRA_DIGITS, extra))
            ratio = (new - old) / old * 100
            return f"{ratio.quantize(_PERCENT_STEP, ROUND_HALF_UP):+}%"
    except ArithmeticError:
        # Only a ratio past _MAX_EXTRA_DIGITS digits; no one reads it anyway.
        return None


def bucket_label(key: ValuesKey, price_by: Sequence[str]) -> str:
    """``gpt-4 / input``: the filter's values in ``price_by`` order."""
    values = dict(key)
    order = [k for k in price_by if k in values]
    order += sorted(k for k in values if k not in order)
    return " / ".join(",".join(values[k]) for k in order)


def charge_field_changes(
    before: ChargeState,
    after: ChargeState,
    *,
    price_by: Sequence[str],
    words: UnitWords,
) -> list[FieldChange]:
    """Every difference between two states of a charge, charge fields first."""
    changes = [
        FieldChange(
            name,
            field_text(old),
            field_text(new),
            f"{name}: {shown(old)} -> {shown(new)}",
        )
        for name in (*FROZEN_CHARGE_FIELDS, "invoice_display_name")
        if (old := getattr(before, name)) != (new := getattr(after, name))
    ]
    changes += _bucket_changes(
        DEFAULT_BUCKET_LABEL,
        None,
        before.default,
        after.default,
        (before.charge_model, after.charge_model),
        words,
    )
    for key in sorted(set(before.filters) | set(after.filters)):
        changes += _bucket_changes(
            bucket_label(key, price_by),
            key,
            before.filters.get(key),
            after.filters.get(key),
            (before.charge_model, after.charge_model),
            words,
        )
    return changes


def describe_charge(
    state: ChargeState, *, price_by: Sequence[str], words: UnitWords, added: bool
) -> list[FieldChange]:
    """One line per price of a charge being created or deleted."""
    lines = [
        _presence(
            DEFAULT_BUCKET_LABEL,
            None,
            state.default,
            state.charge_model,
            words,
            added=added,
        )
    ]
    lines += [
        _presence(
            bucket_label(key, price_by),
            key,
            bucket,
            state.charge_model,
            words,
            added=added,
        )
        for key, bucket in sorted(state.filters.items())
    ]
    return lines


def _presence(
    label: str,
    key: ValuesKey | None,
    bucket: Bucket,
    charge_model: str,
    words: UnitWords,
    *,
    added: bool,
) -> FieldChange:
    amount = field_text(bucket.get("amount")) or ""
    return FieldChange(
        "properties" if key is None else "filter",
        None if added else amount,
        amount if added else None,
        f"{label}: {_price_text(bucket, charge_model, words)}",
        _filter(key),
    )


def _bucket_changes(
    label: str,
    key: ValuesKey | None,
    before: Bucket | None,
    after: Bucket | None,
    models: tuple[str, str],
    words: UnitWords,
) -> list[FieldChange]:
    if after is None and before is not None:
        return [_presence(label, key, before, models[0], words, added=False)]
    if before is None and after is not None:
        return [_presence(label, key, after, models[1], words, added=True)]
    if before is None or after is None:
        return []
    return _changed_bucket(label, key, before, after, models, words)


def _changed_bucket(
    label: str,
    key: ValuesKey | None,
    before: Bucket,
    after: Bucket,
    models: tuple[str, str],
    words: UnitWords,
) -> list[FieldChange]:
    changes = []
    old, new = before.get("amount"), after.get("amount")
    # With an amount on both sides, its line also tells a package size change
    # ("per 1,000 tokens"); otherwise every property gets its own line.
    covered: set[str] = set()
    if old is not None and new is not None:
        covered = {"amount", "package_size"}
        unit_old = per_unit(models[0], before, words)
        unit_new = per_unit(models[1], after, words)
        if (old, unit_old) != (new, unit_new):
            text = _amount_text(label, str(old), str(new), unit_old, unit_new)
            field = f"{_prefix(key)}.amount"
            changes.append(FieldChange(field, str(old), str(new), text, _filter(key)))
    changes += _property_changes(label, key, before, after, models, covered)
    if before.invoice_display_name != after.invoice_display_name:
        a, b = before.invoice_display_name, after.invoice_display_name
        changes.append(
            FieldChange(
                "filters.invoice_display_name",
                a,
                b,
                f"{label}: invoice_display_name {a!r} -> {b!r}",
                _filter(key),
            )
        )
    return changes


def _property_changes(
    label: str,
    key: ValuesKey | None,
    before: Bucket,
    after: Bucket,
    models: tuple[str, str],
    covered: set[str],
) -> list[FieldChange]:
    props_old, props_new = dict(before.properties), dict(after.properties)
    if models[0] != models[1]:
        # Lago keeps only the new model's properties; the model line says why.
        props_old = {k: v for k, v in props_old.items() if k in props_new}
    return [
        FieldChange(
            f"{_prefix(key)}.{name}",
            field_text(a),
            field_text(b),
            f"{label}: {name} {field_text(a)} -> {field_text(b)}",
            _filter(key),
        )
        for name in sorted((set(props_old) | set(props_new)) - covered)
        if (a := props_old.get(name)) != (b := props_new.get(name))
    ]


def _prefix(key: ValuesKey | None) -> str:
    return "properties" if key is None else "filters.properties"


def _filter(key: ValuesKey | None) -> dict[str, tuple[str, ...]] | None:
    return None if key is None else dict(key)


def _amount_text(label: str, old: str, new: str, unit_old: str, unit_new: str) -> str:
    if unit_old != unit_new:
        return f"{label}: {old} {unit_old} -> {new} {unit_new}".replace("  ", " ")
    percent = percent_change(old, new)
    suffix = f" ({percent})" if percent else ""
    return f"{label}: {old} -> {new} {unit_new}{suffix}".replace("  ", " ")


def _price_text(bucket: Bucket, charge_model: str, words: UnitWords) -> str:
    amount = bucket.get("amount")
    if amount is None:
        return ", ".join(f"{k} {v}" for k, v in bucket.properties)
    text = f"{amount} {per_unit(charge_model, bucket, words)}".rstrip()
    free_units = bucket.get("free_units")
    if free_units:
        text += f" ({free_units:,} free {words.plural})"
    return text


def shown(value: object) -> str:
    """A value as a plan line shows it: texts and None quoted as Python does."""
    if isinstance(value, bool | Decimal):
        return field_text(value) or ""
    return repr(value) if isinstance(value, str) or value is None else str(value)


def field_text(value: object) -> str | None:
    """A value as ``FieldChange.before``/``after`` carry it in the JSON plan."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return money_string(value)
    return str(value).lower() if isinstance(value, bool) else str(value)
