"""Charge properties: the per-model slice, the defaults and the validation.

Follows lago-api ``app/services/charge_models/filter_properties/*`` (unknown
keys dropped), ``build_default_properties_service.rb`` (defaults when omitted)
and ``app/services/charges/validators/*`` (the error codes).

The emulator prices only the ``standard`` and ``package`` models; the other
Lago models are refused with ``charge_model: value_is_invalid`` rather than
stored and priced wrongly. ``pricing_group_keys`` (grouped usage) is refused
for the same reason.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tokbill.emulator._common import is_json_int

SUPPORTED_CHARGE_MODELS = frozenset({"standard", "package"})

_MODEL_KEYS = {
    "standard": ("amount",),
    "package": ("amount", "free_units", "package_size"),
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "standard": {"amount": "0"},
    "package": {"package_size": 1, "amount": "0", "free_units": 0},
}


def defaults(charge_model: str | None) -> dict[str, Any]:
    """Lago's default properties for ``charge_model``; ``{}`` for None."""
    return dict(_DEFAULTS.get(charge_model or "", {}))


def slice_properties(
    charge_model: str | None, properties: Any, *, for_filter: bool = False
) -> dict[str, Any]:
    """Keep the keys ``charge_model`` uses; empty input gives the defaults.

    Filter properties get no defaults: each filter must carry its own prices.
    """
    if not isinstance(properties, dict) or not properties:
        return {} if for_filter else defaults(charge_model)
    kept = {
        key: properties[key]
        for key in _MODEL_KEYS.get(charge_model or "", ())
        if key in properties
    }
    if "grouped_by" in properties and "pricing_group_keys" not in properties:
        kept["pricing_group_keys"] = properties["grouped_by"]
    elif "pricing_group_keys" in properties:
        kept["pricing_group_keys"] = properties["pricing_group_keys"]
    if "presentation_group_keys" in properties and not for_filter:
        kept["presentation_group_keys"] = properties["presentation_group_keys"]
    return kept


def problems(charge_model: str | None, properties: dict[str, Any]) -> list[str]:
    """The ``properties`` error codes for ``charge_model``; empty when valid."""
    codes = []
    if charge_model in _MODEL_KEYS and not is_decimal_amount(properties.get("amount")):
        codes.append("invalid_amount")
    if charge_model == "package":
        size = properties.get("package_size")
        if not (is_json_int(size) and size > 0):
            codes.append("invalid_package_size")
        free = properties.get("free_units")
        if not (is_json_int(free) and free >= 0):
            codes.append("invalid_free_units")
    if properties.get("pricing_group_keys"):
        # Grouped usage is not emulated; refusing beats pricing it wrongly.
        codes.append("value_is_invalid")
    return codes


def is_decimal_amount(value: Any) -> bool:
    """A JSON string holding a finite decimal >= 0, as Lago requires."""
    if not isinstance(value, str):
        return False
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return False
    return amount.is_finite() and amount >= 0
