"""The shape of a version 1 template file, as pydantic models.

These models check shapes and scalar types only: unknown keys, strings where
strings belong, whole numbers for counts, exact decimals for money. What the
fields mean together (a charge's metric exists, prices match the metric's
filter values) is checked when the documents are compiled into specs.

Every model is strict: YAML's ``1000.0``, ``"1000"`` and ``true`` are not a
``package_size``, and a key the format does not know is an error, not ignored.
Each field's ``description`` finishes the sentence "expected ..." in messages.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator
from pydantic_core import PydanticCustomError

from tokbill._currency import EXPONENTS
from tokbill.template._yaml import kind_of

PRICE_EXPECTED = 'a decimal >= 0 such as "0.03"'


def parse_price(value: Any) -> Decimal:
    """An exact, finite, non-negative amount from a YAML scalar.

    Accepts decimal text (``"0.03"``), a whole number, or the ``Decimal`` that
    the loader builds from an unquoted decimal; refuses booleans and anything
    negative, not finite, or not a number. Raises ``PydanticCustomError``.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise _custom(
            "tokbill_price_type", f"is {kind_of(value)}; a price is {PRICE_EXPECTED}."
        )
    try:
        amount = Decimal(value)
    except ArithmeticError:
        raise _custom(
            "tokbill_price_text",
            f"is not a decimal number; a price is {PRICE_EXPECTED}.",
        ) from None
    if not amount.is_finite():
        raise _custom(
            "tokbill_price_finite",
            f"is not a finite number; a price is {PRICE_EXPECTED}.",
        )
    if amount < 0:
        raise _custom(
            "tokbill_price_negative", "is negative; a price is a decimal >= 0."
        )
    return amount


def _parse_days(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _custom(
            "tokbill_days_type",
            f"is {kind_of(value)}; expected a number of days >= 0, such as 14.",
        )
    if not Decimal(value).is_finite() or value < 0:
        raise _custom(
            "tokbill_days_range", "is not a number of days >= 0; expected e.g. 14."
        )
    return Decimal(value)


def _check_code(code: str) -> str:
    if not code or code != code.strip():
        raise _custom(
            "tokbill_code",
            "is not a usable code; expected non-empty text without surrounding spaces.",
        )
    return code


def _check_currency(code: str) -> str:
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise _custom(
            "tokbill_currency",
            "is not a currency code; expected three capital letters such as USD.",
        )
    if code not in EXPONENTS:
        # Lago refuses it too, but only at apply, after the metrics are written.
        raise _custom(
            "tokbill_currency_unknown",
            "is not a currency Lago accepts; expected an ISO 4217 code such as "
            "USD or EUR.",
        )
    return code


def _check_values(values: list[str]) -> list[str]:
    if not values:
        raise _custom(
            "tokbill_values_empty",
            "has no values; expected at least one value, as Lago requires.",
        )
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise _custom(
            "tokbill_values_repeated",
            f"lists {', '.join(repeated)} more than once; expected each value once.",
        )
    return values


def _custom(kind: str, message: str) -> PydanticCustomError:
    # Braces in a user's value must not be read as template fields.
    return PydanticCustomError(kind, message.replace("{", "{{").replace("}", "}}"))


Price = Annotated[Decimal, PlainValidator(parse_price)]
Days = Annotated[Decimal, PlainValidator(_parse_days)]
Code = Annotated[str, AfterValidator(_check_code)]
Text = Annotated[str, Field(min_length=1)]
Currency = Annotated[str, AfterValidator(_check_currency)]
FilterValues = Annotated[list[Text], AfterValidator(_check_values)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MetricDocument(_Document):
    """One entry of ``billable_metrics``: what events are summed or counted."""

    code: Code = Field(description="a metric code such as llm_tokens")
    name: Text = Field(description="a non-empty name")
    aggregation_type: Literal["sum_agg", "count_agg"] = Field(
        description="sum_agg or count_agg"
    )
    field_name: Text | None = Field(
        None, description="the event property to sum, such as tokens"
    )
    description: str | None = Field(None, description="text")
    filters: dict[Text, FilterValues] = Field(
        default_factory=dict,
        description="a mapping of filter key to a list of values, such as "
        "model: [gpt-4, gpt-4-32k]",
    )


class PriceDocument(_Document):
    """A price leaf written as a mapping, to set more than the amount."""

    amount: Price = Field(description=PRICE_EXPECTED)
    free_units: NonNegativeInt | None = Field(
        None, description="a whole number >= 0 of units not billed"
    )
    invoice_display_name: str | None = Field(None, description="text")


class ChargeDocument(_Document):
    """One entry of a plan's ``charges``: how one metric is priced."""

    billable_metric: Code = Field(description="the code of a declared metric")
    code: Code | None = Field(None, description="a charge code, unique within the plan")
    charge_model: Literal["package", "standard"] = Field(
        description="package or standard"
    )
    package_size: PositiveInt | None = Field(
        None, description="a whole number > 0 of units per package, such as 1000"
    )
    free_units: NonNegativeInt | None = Field(
        None, description="a whole number >= 0 of units not billed"
    )
    unmatched_amount: Price = Field(
        Decimal(0),
        description=f"the price of events no price matches, {PRICE_EXPECTED}",
    )
    invoice_display_name: str | None = Field(None, description="text")
    price_by: list[Text] = Field(
        default_factory=list,
        description="a list of the metric's filter keys, such as [model, type]",
    )
    # The depth of ``prices`` depends on ``price_by``, so it is checked when
    # the charge is compiled, against its metric.
    prices: Any = Field(
        None, description="one mapping level per price_by key, prices at the leaves"
    )


class PlanDocument(_Document):
    """One entry of ``plans``: a subscription's fee and its charges."""

    code: Code = Field(description="a plan code such as gpt4")
    name: Text = Field(description="a non-empty name")
    interval: Literal["weekly", "monthly", "quarterly", "semiannual", "yearly"] = Field(
        description="weekly, monthly, quarterly, semiannual or yearly"
    )
    amount_cents: NonNegativeInt = Field(
        description="a whole number >= 0 of cents, such as 0"
    )
    amount_currency: Currency = Field(description="a currency code such as USD")
    pay_in_advance: bool = Field(description="true or false")
    description: str | None = Field(None, description="text")
    invoice_display_name: str | None = Field(None, description="text")
    trial_period: Days | None = Field(None, description="a number of days >= 0")
    charges: list[ChargeDocument] = Field(
        default_factory=list, description="a list of charges"
    )


class TemplateDocument(_Document):
    """A whole template file."""

    version: Literal[1] = Field(description="1, the only format version so far")
    billable_metrics: list[MetricDocument] = Field(
        default_factory=list, description="a list of billable metrics"
    )
    plans: list[PlanDocument] = Field(
        default_factory=list, description="a list of plans"
    )
