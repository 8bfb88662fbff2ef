from __future__ import annotations

import pytest

from .conftest import TemplateFiles
from .texts import GPT4

CHARGE = "plans[0].charges[0]"


def test_an_unknown_key_suggests_the_closest_known_key(files: TemplateFiles) -> None:
    files.write(GPT4.replace("    name: GPT-4", "    nmae: GPT-4"))

    assert files.problems() == [
        f"t.yaml:{files.line('- code: gpt4')}: plans[0].name: is required; "
        "expected a non-empty name.",
        f"t.yaml:{files.line('nmae')}: plans[0].nmae: unknown key (did you mean "
        '"name"?); expected one of: code, name, interval, amount_cents, '
        "amount_currency, pay_in_advance, description, invoice_display_name, "
        "trial_period, charges.",
    ]


def test_an_unknown_top_level_key_lists_the_known_ones(files: TemplateFiles) -> None:
    files.write(GPT4 + "metrics: []\nzzz: 1\n")

    assert files.problems() == [
        f"t.yaml:{files.line('metrics: []')}: metrics: unknown key (did you mean "
        '"billable_metrics"?); expected one of: version, billable_metrics, plans.',
        f"t.yaml:{files.line('zzz')}: zzz: unknown key; expected one of: version, "
        "billable_metrics, plans.",
    ]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("1000.0", "1000.0 is a decimal number"),
        ('"1000"', '"1000" is a string'),
        ("true", "true is a boolean"),
        ("1e3", "1e3 is a string"),
    ],
    ids=["float", "quoted", "bool", "exponent"],
)
def test_package_size_must_be_a_whole_number(
    files: TemplateFiles, written: str, message: str
) -> None:
    files.write(GPT4.replace("package_size: 1000", f"package_size: {written}"))

    assert files.problems() == [
        f"t.yaml:{files.line('package_size')}: {CHARGE}.package_size: {message}; "
        "expected a whole number > 0 of units per package, such as 1000."
    ]


@pytest.mark.parametrize(
    ("field", "written", "message"),
    [
        ("package_size", "0", "0 is too small"),
        ("free_units", "-1", "-1 is negative"),
        ("free_units", "1.5", "1.5 is a decimal number"),
        ("free_units", "'10'", '"10" is a string'),
    ],
)
def test_counts_are_whole_numbers_in_range(
    files: TemplateFiles, field: str, written: str, message: str
) -> None:
    original = {"package_size": "package_size: 1000", "free_units": "free_units: 0"}
    files.write(GPT4.replace(original[field], f"{field}: {written}"))

    [problem] = files.problems()

    assert problem.startswith(f"t.yaml:{files.line(field)}: {CHARGE}.{field}: ")
    assert f": {message}; expected a whole number" in problem


def test_amount_cents_refuses_a_float(files: TemplateFiles) -> None:
    files.write(GPT4.replace("amount_cents: 0", "amount_cents: 10.0"))

    assert files.problems() == [
        f"t.yaml:{files.line('amount_cents')}: plans[0].amount_cents: 10.0 is a "
        "decimal number; expected a whole number >= 0 of cents, such as 0."
    ]


def test_the_issue_example_of_a_negative_price(files: TemplateFiles) -> None:
    files.write(GPT4.replace('{input: "0.03"', '{input: "-0.03"'))

    assert files.problems() == [
        f't.yaml:{files.line("-0.03")}: {CHARGE}.prices.gpt-4.input: "-0.03" '
        "is negative; a price is a decimal >= 0."
    ]


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("-1", "-1 is negative; a price is a decimal >= 0."),
        (
            '"abc"',
            '"abc" is not a decimal number; a price is a decimal >= 0 such as "0.03".',
        ),
        ("true", 'true is a boolean; a price is a decimal >= 0 such as "0.03".'),
        (
            ".inf",
            '.inf is not a finite number; a price is a decimal >= 0 such as "0.03".',
        ),
        (
            '"NaN"',
            '"NaN" is not a finite number; a price is a decimal >= 0 such as "0.03".',
        ),
        ("[1]", 'is a list; a price is a decimal >= 0 such as "0.03".'),
    ],
    ids=["negative", "text", "bool", "inf", "nan", "list"],
)
def test_unmatched_amount_is_a_non_negative_decimal(
    files: TemplateFiles, written: str, message: str
) -> None:
    files.write(GPT4.replace('unmatched_amount: "0"', f"unmatched_amount: {written}"))

    assert files.problems() == [
        f"t.yaml:{files.line('unmatched_amount')}: {CHARGE}.unmatched_amount: {message}"
    ]


def test_a_price_leaf_mapping_is_checked_field_by_field(files: TemplateFiles) -> None:
    files.write(
        GPT4.replace(
            '{input: "0.06", output: "0.12"}',
            "\n            input: {amount: -2, free_units: 1.5, display: x}"
            '\n            output: "0.12"',
        )
    )
    leaf = f"t.yaml:{files.line('amount: -2')}: {CHARGE}.prices.gpt-4-32k.input"

    assert files.problems() == [
        f"{leaf}.amount: -2 is negative; a price is a decimal >= 0.",
        f"{leaf}.free_units: 1.5 is a decimal number; expected a whole number "
        ">= 0 of units not billed.",
        f"{leaf}.display: unknown key; expected one of: amount, free_units, "
        "invoice_display_name.",
    ]


def test_a_missing_field_points_at_its_item(files: TemplateFiles) -> None:
    files.write(GPT4.replace("    pay_in_advance: false\n", ""))

    assert files.problems() == [
        f"t.yaml:{files.line('- code: gpt4')}: plans[0].pay_in_advance: is "
        "required; expected true or false."
    ]


def test_a_missing_version_is_an_error(files: TemplateFiles) -> None:
    files.write(GPT4.replace("version: 1\n", ""))

    assert files.problems() == [
        "t.yaml:2: version: is required; expected 1, the only format version so far."
    ]


@pytest.mark.parametrize("written", ["2", '"1"'])
def test_only_version_1_is_read(files: TemplateFiles, written: str) -> None:
    files.write(GPT4.replace("version: 1", f"version: {written}"))

    assert files.problems() == [
        f"t.yaml:1: version: {written} is not supported; expected 1, the only "
        "format version so far."
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "charge_model: package",
            "charge_model: graduated",
            f"{CHARGE}.charge_model: graduated is a Lago charge model that tokbill "
            "does not support yet; expected package or standard.",
        ),
        (
            "charge_model: package",
            "charge_model: tiered",
            f"{CHARGE}.charge_model: tiered is not supported; expected package or "
            "standard.",
        ),
        (
            "aggregation_type: sum_agg",
            "aggregation_type: max_agg",
            "billable_metrics[0].aggregation_type: max_agg is a Lago aggregation "
            "type that tokbill does not support yet; expected sum_agg or count_agg.",
        ),
        (
            "interval: monthly",
            "interval: hourly",
            "plans[0].interval: hourly is not supported; expected weekly, monthly, "
            "quarterly, semiannual or yearly.",
        ),
        (
            "amount_currency: USD",
            "amount_currency: usd",
            "plans[0].amount_currency: usd is not a currency code; expected three "
            "capital letters such as USD.",
        ),
        (
            "amount_currency: USD",
            "amount_currency: XYZ",
            "plans[0].amount_currency: XYZ is not a currency Lago accepts; expected "
            "an ISO 4217 code such as USD or EUR.",
        ),
        (
            "pay_in_advance: false",
            "pay_in_advance: 'no'",
            'plans[0].pay_in_advance: "no" is a string; expected true or false.',
        ),
        (
            "    name: GPT-4",
            "    name:",
            "plans[0].name: is empty; expected a non-empty name.",
        ),
        (
            "    name: GPT-4",
            "    name: ''",
            "plans[0].name: is empty text; expected a non-empty name.",
        ),
        (
            "- code: gpt4",
            "- code: ' gpt4'",
            'plans[0].code: " gpt4" is not a usable code; expected non-empty text '
            "without surrounding spaces.",
        ),
        (
            "    name: GPT-4",
            "    name: GPT-4\n    trial_period: -3",
            "plans[0].trial_period: -3 is not a number of days >= 0; expected e.g. 14.",
        ),
        (
            "    charges:",
            "    charges: {}\n    old_charges:",
            "plans[0].charges: is a mapping; expected a list of charges.",
        ),
    ],
    ids=[
        "lago-model",
        "unknown-model",
        "aggregation",
        "interval",
        "currency",
        "unknown-currency",
        "bool",
        "null",
        "empty",
        "code",
        "trial",
        "charges",
    ],
)
def test_wrong_values_are_explained(
    files: TemplateFiles, old: str, new: str, message: str
) -> None:
    text = GPT4.replace(old, new)
    files.write(text)

    problems = files.problems()

    assert problems[0] == f"t.yaml:{first_changed_line(text)}: {message}"


def first_changed_line(text: str) -> int:
    pairs = zip(text.splitlines(), GPT4.splitlines(), strict=False)
    return next(n for n, (new, old) in enumerate(pairs, start=1) if new != old)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            "[gpt-4, gpt-4]",
            "filters.model: lists gpt-4 more than once; expected each value once.",
        ),
        (
            "[]",
            "filters.model: has no values; expected at least one value, as Lago "
            "requires.",
        ),
        (
            "[gpt-4, 4]",
            'filters.model[1]: 4 is a whole number; expected text, so quote it: "4".',
        ),
        (
            "[gpt-4, yes]",
            'filters.model[1]: yes is a boolean; expected text, so quote it: "yes".',
        ),
        (
            "gpt-4",
            "filters.model: gpt-4 is a string; expected a list (filters is "
            "a mapping of filter key to a list of values, such as model: [gpt-4, "
            "gpt-4-32k]).",
        ),
    ],
    ids=["repeated", "empty", "number", "yes", "not-a-list"],
)
def test_metric_filter_values_are_unique_text(
    files: TemplateFiles, values: str, message: str
) -> None:
    files.write(GPT4.replace("model: [gpt-4, gpt-4-32k]", f"model: {values}"))

    problems = files.problems()

    assert problems[0] == (
        f"t.yaml:{files.line('  model: ')}: billable_metrics[0].{message}"
    )


def test_an_item_that_is_not_a_mapping_lists_the_keys_it_needs(
    files: TemplateFiles,
) -> None:
    files.write("version: 1\nbillable_metrics: [llm_tokens]\nplans:\n")

    assert files.problems() == [
        "t.yaml:2: billable_metrics[0]: llm_tokens is a string; expected a mapping "
        "with the keys code, name, aggregation_type, field_name, description, "
        "filters.",
        "t.yaml:3: plans: is empty; expected a list of plans.",
    ]


def test_items_are_still_checked_when_a_sibling_list_is_malformed(
    files: TemplateFiles,
) -> None:
    files.write(
        "version: 1\nplans: {gpt4: 1}\nbillable_metrics:\n"
        "  - {code: calls, name: Calls, aggregation_type: count_agg, bogus: 1}\n"
    )

    assert files.problems() == [
        "t.yaml:2: plans: is a mapping; expected a list of plans.",
        "t.yaml:4: billable_metrics[0].bogus: unknown key; expected one of: code, "
        "name, aggregation_type, field_name, description, filters.",
    ]
