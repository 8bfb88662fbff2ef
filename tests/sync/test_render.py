"""render_plan: grouped by resource, every line prefixed, colour optional."""

from __future__ import annotations

import click

from tests.sync.builders import (
    GPT4_PRICES,
    charge,
    lago_metric,
    lago_plan,
    metric,
    plan,
    replace,
    templates,
)
from tokbill.sync import LiveState, SubscriptionCount, make_plan, render_plan


def test_the_text_groups_changes_and_prefixes_every_line() -> None:
    live = LiveState.from_lago(
        [lago_metric(metric())],
        [lago_plan(plan())],
        {"gpt4": SubscriptionCount(active=1, ever=1)},
    )
    prices = {**GPT4_PRICES, ("gpt-4", "input"): "0.035"}
    wanted = templates(
        metric(), plan(charge(prices), interval="yearly"), plan(code="gpt4-32k")
    )

    text = render_plan(make_plan(wanted, live))

    assert text.splitlines() == [
        "Billable metrics",
        "  = llm_tokens (unchanged)",
        "",
        "Plan gpt4 (1 active subscription)",
        "  ! plan fields (blocked)",
        "      ~ interval: 'monthly' -> 'yearly'",
        "      reason: Lago keeps interval of plan gpt4 unchanged once the plan "
        "has had a subscription (gpt4 has 1 active, 1 in all), and still "
        "answers 200.",
        "      remedy: Declare the new terms as a plan with a new code (such as "
        "gpt4_v2), apply it, migrate the subscriptions of gpt4 to it, then "
        "retire gpt4.",
        "  ~ charge llm_tokens (update)",
        "      ~ gpt-4 / input: 0.03 -> 0.035 per 1,000 tokens (+16.7%)",
        "",
        "Plan gpt4-32k (new)",
        "  + plan fields (create)",
        "      + name: 'GPT-4'",
        "      + interval: 'monthly'",
        "      + amount_cents: 0",
        "      + amount_currency: 'USD'",
        "      + pay_in_advance: false",
        "  + charge llm_tokens (create)",
        "      + unmatched: 0 per 1,000 tokens",
        "      + gpt-4 / input: 0.03 per 1,000 tokens",
        "      + gpt-4 / output: 0.06 per 1,000 tokens",
        "      + gpt-4-32k / input: 0.06 per 1,000 tokens",
        "      + gpt-4-32k / output: 0.12 per 1,000 tokens",
        "",
        "Plan: 2 to create, 1 to update, 0 to delete, 1 blocked, 1 unchanged.",
    ]


def test_a_new_metric_lists_what_it_is_created_with() -> None:
    described = metric(description="Tokens in and out")
    counted = replace(
        metric(),
        code="requests",
        name="Requests",
        aggregation_type="count_agg",
        field_name=None,
        filters={},
    )

    text = render_plan(make_plan(templates(described, counted), LiveState()))

    assert text.splitlines() == [
        "Billable metrics",
        "  + llm_tokens (create)",
        "      + name: 'LLM tokens'",
        "      + description: 'Tokens in and out'",
        "      + aggregation_type: 'sum_agg'",
        "      + field_name: 'tokens'",
        "      + recurring: false",
        "      + filters.model: gpt-4, gpt-4-32k",
        "      + filters.type: input, output",
        "  + requests (create)",
        "      + name: 'Requests'",
        "      + aggregation_type: 'count_agg'",
        "      + recurring: false",
        "",
        "Plan: 2 to create, 0 to update, 0 to delete, 0 blocked, 0 unchanged.",
    ]


def test_colour_comes_only_from_the_style_given() -> None:
    live = LiveState.from_lago([lago_metric(metric())], [lago_plan(plan())])
    result = make_plan(templates(metric(), plan()), live)

    plain = render_plan(result)
    coloured = render_plan(result, click.style)

    assert "\x1b[" not in plain
    assert click.unstyle(coloured) == plain


def test_a_pruned_plan_reads_as_a_whole_plan_going() -> None:
    live = LiveState.from_lago(
        [lago_metric(metric())],
        [lago_plan(plan()), lago_plan(plan(code="old"))],
        {"old": SubscriptionCount(active=2, ever=3)},
    )
    result = make_plan(templates(metric(), plan()), live, prune=True)

    lines = render_plan(result).splitlines()

    start = lines.index("Plan old (2 active subscriptions)")
    assert lines[start + 1] == "  ! whole plan (blocked)"
    assert "terminates its 2 active subscriptions," in lines[start + 2]
