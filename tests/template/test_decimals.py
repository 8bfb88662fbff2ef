from __future__ import annotations

from decimal import Decimal

import pytest

from tokbill.template import money_string

from .conftest import TemplateFiles
from .texts import GPT4


def input_price(files: TemplateFiles, written: str) -> Decimal:
    files.write(GPT4.replace('{input: "0.03"', f"{{input: {written}"))
    charge = files.load().plan("gpt4").charges[0]
    return charge.price_for({"model": "gpt-4", "type": "input"}).amount


@pytest.mark.parametrize(
    ("written", "exact"),
    [
        ("0.1", "0.1"),
        ("0.0015", "0.0015"),
        ("0.30000000000000004", "0.30000000000000004"),
        (
            "12345678901234567890.123456789012345",
            "12345678901234567890.123456789012345",
        ),
        ("1_000.5", "1000.5"),
        ("1.0e-3", "0.001"),
        ("3", "3"),
        ("'0.03'", "0.03"),
    ],
)
def test_a_price_keeps_the_exact_decimal_it_was_written_as(
    files: TemplateFiles, written: str, exact: str
) -> None:
    amount = input_price(files, written)

    assert amount == Decimal(exact)
    assert money_string(amount) == exact


def test_unquoted_tenths_add_up_exactly(files: TemplateFiles) -> None:
    files.write(GPT4.replace('"0.03"', "0.1").replace('"0.06", output', "0.2, output"))
    charge = files.load().plan("gpt4").charges[0]

    total = (
        charge.price_for({"model": "gpt-4", "type": "input"}).amount
        + charge.price_for({"model": "gpt-4-32k", "type": "input"}).amount
    )

    assert total == Decimal("0.3")
    assert money_string(total) == "0.3"


def test_an_unquoted_unmatched_amount_is_exact(files: TemplateFiles) -> None:
    files.write(GPT4.replace('unmatched_amount: "0"', "unmatched_amount: 0.0015"))

    default = files.load().plan("gpt4").charges[0].default

    assert default.properties("package")["amount"] == "0.0015"


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0.030", "0.03"),
        ("0.03", "0.03"),
        ("1.50", "1.5"),
        ("100", "100"),
        ("1E+3", "1000"),
        ("0E-8", "0"),
        ("-0.00", "0"),
        ("0", "0"),
        ("1.5E-10", "0.00000000015"),
        ("-2.50", "-2.5"),
        ("1.00000000000000000000000000000001", "1.00000000000000000000000000000001"),
    ],
)
def test_money_string_is_canonical_and_exact(amount: str, text: str) -> None:
    assert money_string(Decimal(amount)) == text


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "-Infinity", "sNaN"])
def test_money_string_refuses_what_is_not_an_amount(amount: str) -> None:
    with pytest.raises(ValueError, match="is not an amount of money"):
        money_string(Decimal(amount))
