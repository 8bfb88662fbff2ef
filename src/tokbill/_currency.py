"""ISO 4217 currencies as Lago knows them, and money in their smallest unit.

Lago accepts a plan's ``amount_currency`` only from the Money gem's list, keeps
every amount as an integer count of the currency's smallest unit
(``*_amount_cents``), and rounds each fee to the currency's exponent
(lago-api.md §3.1). The emulator refuses a currency missing from
:data:`EXPONENTS`; the usage client reads one as two decimals, the commonest
case, rather than failing on a currency Lago added later.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Final

__all__ = ["EXPONENTS", "exponent", "from_subunits", "round_to_currency"]

_TWO_DECIMALS = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD
BTN BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB
EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IRR
JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP
MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN
QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP
SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW
"""
_ZERO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"

EXPONENTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        **dict.fromkeys(_TWO_DECIMALS.split(), 2),
        **dict.fromkeys(_ZERO_DECIMALS.split(), 0),
        **dict.fromkeys(_THREE_DECIMALS.split(), 3),
    }
)
"""Every currency code Lago accepts, with its digits after the decimal point."""


def exponent(currency: str) -> int:
    """Digits after the decimal point in ``currency`` (any case); 2 if unlisted."""
    return EXPONENTS.get(currency.upper(), 2)


def from_subunits(subunits: int, currency: str) -> Decimal:
    """``subunits`` of ``currency`` as an exact amount: ``(9, "USD")`` -> 0.09.

    The result keeps the currency's precision: 2100 USD cents give
    ``Decimal("21.00")``, 2100 JPY give ``Decimal("2100")``.
    """
    return Decimal(int(subunits)).scaleb(-exponent(currency))


def round_to_currency(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded to ``currency``'s precision, as Lago rounds a fee.

    Lago rounds with Ruby's ``BigDecimal#round``, which rounds half away from
    zero; ``Decimal.quantize`` with ROUND_HALF_UP does the same.
    """
    step = Decimal(1).scaleb(-exponent(currency))
    return amount.quantize(step, rounding=ROUND_HALF_UP)
