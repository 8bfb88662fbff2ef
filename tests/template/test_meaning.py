from __future__ import annotations

from decimal import Decimal

from tokbill.template import PriceSpec

from .conftest import TemplateFiles
from .texts import GPT4

CHARGE = "plans[0].charges[0]"
PLAN_ONLY = GPT4[GPT4.index("plans:") :]
METRIC_ONLY = GPT4[: GPT4.index("plans:")]


def test_a_price_for_an_undeclared_value_names_the_declared_ones(
    files: TemplateFiles,
) -> None:
    files.write(GPT4.replace("gpt-4-32k: {", "gpt-5: {"))

    assert files.problems() == [
        f"t.yaml:{files.line('gpt-5: {')}: {CHARGE}.prices.gpt-5: a price for an "
        'undeclared filter value: metric "llm_tokens" does not declare model '
        '"gpt-5"; expected one of: gpt-4, gpt-4-32k.'
    ]


def test_an_undeclared_value_at_the_second_level_is_located(
    files: TemplateFiles,
) -> None:
    files.write(GPT4.replace('output: "0.12"', 'cached: "0.12"'))

    assert files.problems() == [
        f"t.yaml:{files.line('cached')}: {CHARGE}.prices.gpt-4-32k.cached: a price "
        'for an undeclared filter value: metric "llm_tokens" does not declare type '
        '"cached"; expected one of: input, output.'
    ]


def test_prices_are_checked_when_only_fields_beside_them_are_wrong(
    files: TemplateFiles,
) -> None:
    # A wrong package_size and a wrong price show in the same run, but the
    # missing output price is not warned about until the charge is valid.
    files.write(
        GPT4.replace("package_size: 1000", "package_size: lots")
        .replace('input: "0.03"', 'input: "zz"')
        .replace(', output: "0.12"}', "}")
    )

    assert files.problems() == [
        f"t.yaml:{files.line('package_size')}: {CHARGE}.package_size: lots is a "
        "string; expected a whole number > 0 of units per package, such as 1000.",
        f't.yaml:{files.line("gpt-4: ")}: {CHARGE}.prices.gpt-4.input: "zz" is not '
        'a decimal number; a price is a decimal >= 0 such as "0.03".',
    ]


def test_prices_are_not_checked_when_the_price_tree_fields_are_wrong(
    files: TemplateFiles,
) -> None:
    files.write(
        GPT4.replace("price_by: [model, type]", "price_by: model").replace(
            'input: "0.03"', 'input: "zz"'
        )
    )

    [problem] = files.problems()
    assert f"{CHARGE}.price_by:" in problem


def test_a_declared_combination_without_a_price_is_a_located_warning(
    files: TemplateFiles,
) -> None:
    files.write(GPT4.replace(', output: "0.12"}', "}"))

    templates = files.load()

    assert templates.warnings == (
        f"t.yaml:{files.line('gpt-4-32k: {')}: {CHARGE}.prices.gpt-4-32k: no price "
        'for type "output"; those events bill at unmatched_amount (0 per package).',
    )
    assert len(templates.plan("gpt4").charges[0].filters) == 3


def test_a_model_the_plan_leaves_out_entirely_is_not_warned_about(
    files: TemplateFiles,
) -> None:
    files.write(
        GPT4.replace(
            "model: [gpt-4, gpt-4-32k]", "model: [gpt-4, gpt-4-32k, gpt-3.5-turbo]"
        )
    )

    assert files.load().warnings == ()


def test_empty_prices_warn_that_everything_bills_at_unmatched_amount(
    files: TemplateFiles,
) -> None:
    text = GPT4[: GPT4.index("        prices:")] + "        prices: {}\n"
    files.write(text.replace('unmatched_amount: "0"', "unmatched_amount: 0.5"))

    assert files.load().warnings == (
        f"t.yaml:{files.line('prices: {}')}: {CHARGE}.prices: is empty; "
        "every event bills at unmatched_amount (0.5 per package).",
    )


def test_prices_one_level_too_shallow(files: TemplateFiles) -> None:
    files.write(GPT4.replace('{input: "0.06", output: "0.12"}', '"0.06"'))

    assert files.problems() == [
        f't.yaml:{files.line("gpt-4-32k:")}: {CHARGE}.prices.gpt-4-32k: "0.06" '
        "is a string; expected a mapping of type values (input, output) to prices."
    ]


def test_prices_one_level_too_deep(files: TemplateFiles) -> None:
    files.write(GPT4.replace("price_by: [model, type]", "price_by: [model]"))

    assert files.problems() == [
        f"t.yaml:{files.line('gpt-4: ')}: {CHARGE}.prices.gpt-4: is a mapping "
        "without amount; expected a price, or a mapping with amount (one level per "
        "price_by key: model).",
        f"t.yaml:{files.line('gpt-4-32k: ')}: {CHARGE}.prices.gpt-4-32k: is a "
        "mapping without amount; expected a price, or a mapping with amount (one "
        "level per price_by key: model).",
    ]


def test_price_by_keys_must_be_distinct_filter_keys(files: TemplateFiles) -> None:
    files.write(GPT4.replace("[model, type]", "[model, region, model]"))

    line = files.line("price_by")
    assert files.problems() == [
        f't.yaml:{line}: {CHARGE}.price_by[1]: "region" is not a filter key of '
        'metric "llm_tokens"; expected one of: model, type.',
        f't.yaml:{line}: {CHARGE}.price_by[2]: "model" is repeated; expected each '
        "filter key once.",
    ]


def test_prices_and_price_by_come_together(files: TemplateFiles) -> None:
    without_prices = GPT4[: GPT4.index("        prices:")]
    files.write(without_prices, "a.yaml")
    files.write(
        GPT4.replace("        price_by: [model, type]\n", "").replace(
            "code: gpt4", "code: gpt4-b"
        ),
        "b.yaml",
    )

    assert files.problems("a.yaml", "b.yaml") == [
        f"a.yaml:{files.line('- billable_metric', 'a.yaml')}: {CHARGE}.prices: is "
        "required with price_by; expected one mapping level per price_by key, "
        "with prices at the leaves.",
        f"b.yaml:{files.line('prices:', 'b.yaml')}: {CHARGE}.prices: needs "
        "price_by; expected price_by to name the filter keys of its levels "
        "(model, type).",
    ]


def test_package_needs_a_package_size(files: TemplateFiles) -> None:
    files.write(GPT4.replace("        package_size: 1000\n", ""))

    assert files.problems() == [
        f"t.yaml:{files.line('- billable_metric')}: {CHARGE}.package_size: is "
        "required for charge_model package; expected a whole number > 0 of units "
        "per package, such as 1000."
    ]


def test_standard_has_no_package_size_nor_free_units(files: TemplateFiles) -> None:
    files.write(
        GPT4.replace("charge_model: package", "charge_model: standard").replace(
            "free_units: 0", "free_units: 5"
        )
    )

    assert files.problems() == [
        f"t.yaml:{files.line('package_size')}: {CHARGE}.package_size: is only for "
        "charge_model package; expected no package_size, as standard prices each "
        "unit.",
        f"t.yaml:{files.line('free_units')}: {CHARGE}.free_units: is only for "
        "charge_model package; expected no free_units.",
    ]


def test_a_standard_charge_compiles_without_package_properties(
    files: TemplateFiles,
) -> None:
    files.write(
        GPT4.replace("charge_model: package", "charge_model: standard").replace(
            "        package_size: 1000\n", ""
        )
    )

    charge = files.load().plan("gpt4").charges[0]

    assert charge.default == PriceSpec(amount=Decimal("0"))
    assert charge.filters[0].properties("standard") == {"amount": "0.03"}
    assert {price.package_size for price in charge.filters} == {None}


def test_leaf_mappings_override_free_units_and_name_the_filter(
    files: TemplateFiles,
) -> None:
    files.write(
        GPT4.replace("free_units: 0", "free_units: 100").replace(
            'input: "0.06"',
            'input: {amount: "0.06", free_units: 0, invoice_display_name: 32K in}',
        )
    )

    charge = files.load().plan("gpt4").charges[0]

    assert charge.price_for({"model": "gpt-4-32k", "type": "input"}) == PriceSpec(
        amount=Decimal("0.06"),
        free_units=0,
        package_size=1000,
        values={"model": ("gpt-4-32k",), "type": ("input",)},
        invoice_display_name="32K in",
    )
    assert charge.price_for({"model": "gpt-4", "type": "input"}).free_units == 100
    assert charge.default.free_units == 100


def test_filters_and_values_come_out_in_canonical_order(files: TemplateFiles) -> None:
    files.write(
        GPT4.replace("model: [gpt-4, gpt-4-32k]", "model: [gpt-4-32k, gpt-4]")
        .replace("type: [input, output]", "type: [output, input]")
        .replace("[model, type]", "[type, model]")
        .replace(
            '          gpt-4:     {input: "0.03", output: "0.06"}\n'
            '          gpt-4-32k: {input: "0.06", output: "0.12"}\n',
            '          output: {gpt-4-32k: "0.12", gpt-4: "0.06"}\n'
            '          input: {gpt-4-32k: "0.06", gpt-4: "0.03"}\n',
        )
    )

    templates = files.load()
    charge = templates.plan("gpt4").charges[0]

    assert templates.metric("llm_tokens").filters == {
        "model": ("gpt-4", "gpt-4-32k"),
        "type": ("input", "output"),
    }
    assert charge.price_by == ("type", "model")
    assert [(p.values, p.amount) for p in charge.filters] == [
        ({"model": ("gpt-4",), "type": ("input",)}, Decimal("0.03")),
        ({"model": ("gpt-4",), "type": ("output",)}, Decimal("0.06")),
        ({"model": ("gpt-4-32k",), "type": ("input",)}, Decimal("0.06")),
        ({"model": ("gpt-4-32k",), "type": ("output",)}, Decimal("0.12")),
    ]
    assert [list(p.values or {}) for p in charge.filters] == [["model", "type"]] * 4


def test_sum_agg_needs_field_name_and_count_agg_refuses_it(
    files: TemplateFiles,
) -> None:
    files.write(GPT4.replace("    field_name: tokens\n", ""), "a.yaml")
    files.write(
        METRIC_ONLY.replace("aggregation_type: sum_agg", "aggregation_type: count_agg"),
        "b.yaml",
    )

    assert files.problems("a.yaml", "b.yaml") == [
        "a.yaml:4: billable_metrics[0].field_name: is required for sum_agg; "
        "expected the event property to sum, such as tokens.",
        f"b.yaml:{files.line('field_name', 'b.yaml')}: billable_metrics[0]."
        "field_name: is not used by count_agg, which counts events (Lago would "
        "drop it); expected no field_name.",
    ]


def test_a_charge_on_an_unknown_metric_suggests_a_declared_one(
    files: TemplateFiles,
) -> None:
    files.write(
        GPT4.replace("billable_metric: llm_tokens", "billable_metric: llm_token")
    )

    assert files.problems() == [
        f"t.yaml:{files.line('billable_metric:')}: {CHARGE}.billable_metric: "
        '"llm_token" is not a metric of the given templates (did you mean '
        '"llm_tokens"?); expected one of: llm_tokens.'
    ]


def test_a_charge_may_use_a_metric_declared_in_another_file(
    files: TemplateFiles,
) -> None:
    files.write("version: 1\n" + PLAN_ONLY, "plans.yaml")
    files.write(METRIC_ONLY, "metrics.yaml")

    templates = files.load("plans.yaml", "metrics.yaml")

    assert templates.plan("gpt4").charges[0].billable_metric == "llm_tokens"
    source = templates.metric("llm_tokens").source
    assert source is not None and source.path == "metrics.yaml"


def test_a_charge_on_a_broken_metric_reports_only_the_metric(
    files: TemplateFiles,
) -> None:
    files.write(GPT4.replace("aggregation_type: sum_agg", "aggregation_type: sum"))

    [problem] = files.problems()

    assert "billable_metrics[0].aggregation_type: sum is not supported" in problem


def test_a_metric_code_declared_twice_in_one_file(files: TemplateFiles) -> None:
    metric = METRIC_ONLY[METRIC_ONLY.index("  - code") :]
    text = GPT4.replace("\nplans:", metric + "plans:")
    files.write(text)

    first, second = [n for n, t in enumerate(text.splitlines(), 1) if "llm_t" in t][:2]
    assert files.problems() == [
        f't.yaml:{second}: billable_metrics[1].code: metric "llm_tokens" is '
        f"already declared at t.yaml:{first}; expected each metric code once per "
        "file."
    ]


def test_identical_metrics_in_two_files_are_one_metric(files: TemplateFiles) -> None:
    files.write(GPT4, "a.yaml")
    files.write(METRIC_ONLY, "b.yaml")

    templates = files.load("a.yaml", "b.yaml")

    assert [metric.code for metric in templates.metrics] == ["llm_tokens"]


def test_differing_metrics_in_two_files_name_both_places(
    files: TemplateFiles,
) -> None:
    files.write(GPT4, "a.yaml")
    files.write(
        METRIC_ONLY.replace("[gpt-4, gpt-4-32k]", "[gpt-4]").replace(
            "name: LLM tokens", "name: Tokens"
        ),
        "b.yaml",
    )

    assert files.problems("a.yaml", "b.yaml") == [
        'b.yaml:4: billable_metrics[0]: metric "llm_tokens" is declared '
        "differently at a.yaml:4 (name, filters differ); expected identical "
        "declarations in every file."
    ]


def test_a_plan_code_declared_in_two_files(files: TemplateFiles) -> None:
    files.write(GPT4, "a.yaml")
    files.write("version: 1\n" + PLAN_ONLY, "b.yaml")

    assert files.problems("a.yaml", "b.yaml") == [
        'b.yaml:3: plans[0].code: plan "gpt4" is already declared at a.yaml:13; '
        "expected unique plan codes."
    ]


def test_two_charges_on_one_metric_need_distinct_codes(files: TemplateFiles) -> None:
    charge = GPT4[GPT4.index("      - billable_metric") :]
    files.write(GPT4 + charge, "a.yaml")
    files.write(
        GPT4
        + charge.replace(
            "- billable_metric", "- code: tokens_2\n        billable_metric"
        ),
        "b.yaml",
    )

    second = GPT4.count("\n") + 1
    assert files.problems("a.yaml") == [
        f'a.yaml:{second}: plans[0].charges[1].code: charge code "llm_tokens" is '
        "already used at a.yaml:20; expected a distinct code (it defaults to the "
        "metric code)."
    ]
    codes = [c.code for c in files.load("b.yaml").plan("gpt4").charges]
    assert codes == ["llm_tokens", "tokens_2"]
