"""Lago's integer subunits to ``Decimal`` currency units.

Lago reports money as ``*_amount_cents``: integers in the currency's smallest
unit, after rounding each fee to the currency's exponent (lago-api.md §3.1).
Dividing by ``10 ** exponent`` is therefore exact, and the result keeps the
currency's precision: 2100 USD cents -> ``Decimal("21.00")``, 2100 JPY ->
``Decimal("2100")``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["currency_exponent", "from_subunits", "round_to_currency"]

# ISO 4217 minor units that differ from 2, as the Money gem (and so Lago) uses
# them. Every other currency Lago accepts has two decimals.
_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split()
)
_THREE_DECIMALS = frozenset("BHD IQD JOD KWD LYD OMR TND".split())


def currency_exponent(currency: str) -> int:
    """Digits after the decimal point in ``currency``; 2 for unlisted codes."""
    code = currency.upper()
    if code in _ZERO_DECIMALS:
        return 0
    if code in _THREE_DECIMALS:
        return 3
    return 2


def from_subunits(subunits: int, currency: str) -> Decimal:
    """``subunits`` of ``currency`` as an exact amount: ``(9, "USD")`` -> 0.09."""
    return Decimal(int(subunits)).scaleb(-currency_exponent(currency))


def round_to_currency(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded to ``currency``'s precision, as Lago rounds a fee.

    Lago rounds each fee with Ruby's ``BigDecimal#round``, which rounds half
    away from zero; ``Decimal.quantize`` with ROUND_HALF_UP does the same.
    """
    step = Decimal(1).scaleb(-currency_exponent(currency))
    return amount.quantize(step, rounding=ROUND_HALF_UP)
