"""make_plan on plain data: equality rules, price wording and classification."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.sync.builders import (
    GPT4_PRICES,
    charge,
    lago_charge,
    lago_metric,
    lago_plan,
    metric,
    plan,
    replace,
    templates,
)
from tokbill.sync import Change, LiveState, SubscriptionCount, make_plan
from tokbill.template import MetricSpec, PlanSpec, PriceSpec

ALL_FILTER_VALUES = "__ALL_FILTER_VALUES__"
"""Lago's wildcard charge filter value: every value the metric declares."""
PRICE_CHANGE = "gpt-4 / input: 0.03 -> 0.035 per 1,000 tokens (+16.7%)"


def converged(
    *extra_plans: dict[str, object], **subscriptions: SubscriptionCount
) -> LiveState:
    return LiveState.from_lago(
        [lago_metric(metric())], [lago_plan(plan()), *extra_plans], subscriptions
    )


def only(changes: tuple[Change, ...], kind: str, code: str) -> Change:
    (found,) = [c for c in changes if c.kind == kind and c.code == code]
    return found


def test_a_converged_state_has_nothing_to_do() -> None:
    result = make_plan(templates(metric(), plan()), converged())

    assert not result.has_changes
    assert [c.action for c in result.changes] == ["unchanged"] * 3


def test_equal_decimals_sorted_values_and_null_extras_are_unchanged() -> None:
    live_plan = lago_plan(plan())
    live_charge = live_plan["charges"][0]
    live_charge["properties"]["amount"] = "0.000"
    live_charge["properties"]["pricing_group_keys"] = None
    live_charge["filters"].reverse()
    live_charge["filters"][0]["properties"]["amount"] = "0.120"
    live_metric = lago_metric(metric())
    live_metric["filters"][0]["values"].reverse()
    live = LiveState.from_lago([live_metric], [live_plan])

    result = make_plan(templates(metric(), plan()), live)

    assert not result.has_changes


def test_empty_texts_match_nulls_and_trial_days_compare_as_numbers() -> None:
    wanted = plan(
        replace(charge(), invoice_display_name=""), description="", trial_period=14.0
    )
    live = converged()
    live_plan = lago_plan(plan(trial_period=14))

    result = make_plan(
        templates(metric(), wanted),
        LiveState.from_lago([lago_metric(metric())], [live_plan]),
    )
    longer = make_plan(templates(metric(), plan(trial_period=7.5)), live)

    assert not result.has_changes
    assert [f.text for f in only(longer.changes, "plan", "gpt4").fields] == [
        "trial_period: 0 -> 7.5"
    ]


def test_a_price_change_is_one_charge_update_worded_with_its_unit() -> None:
    prices = {**GPT4_PRICES, ("gpt-4", "input"): "0.035"}
    wanted = templates(metric(), plan(charge(prices)))

    result = make_plan(wanted, converged(gpt4=SubscriptionCount(3, 4)))

    assert [c.action for c in result.pending] == ["update"]
    update = only(result.changes, "charge", "llm_tokens")
    assert [f.text for f in update.fields] == [PRICE_CHANGE]
    assert update.fields[0].filter == {"model": ("gpt-4",), "type": ("input",)}
    assert only(result.changes, "plan", "gpt4").active_subscriptions == 3


def test_a_standard_price_reads_per_unit_and_a_drop_is_negative() -> None:
    standard = charge(charge_model="standard", package_size=None)
    cheaper = charge(
        {**GPT4_PRICES, ("gpt-4", "output"): "0.045"},
        charge_model="standard",
        package_size=None,
    )
    live = LiveState.from_lago([lago_metric(metric())], [lago_plan(plan(standard))])

    result = make_plan(templates(metric(), plan(cheaper)), live)

    texts = [f.text for f in only(result.changes, "charge", "llm_tokens").fields]
    assert texts == ["gpt-4 / output: 0.06 -> 0.045 per token (-25.0%)"]


@pytest.mark.parametrize(
    ("before", "after", "percent"),
    [
        ("1E-28", "0.03", "(+29999999999999999999999999900.0%)"),
        ("0.03", "1E+40", "(+" + "3" * 41 + "233.3%)"),
        ("1E-999999", "1E+999999", None),
    ],
    ids=["30-digit-ratio", "44-digit-ratio", "past-any-precision"],
)
def test_a_price_change_of_any_size_is_worded_not_a_crash(
    before: str, after: str, percent: str | None
) -> None:
    live_plan = lago_plan(plan(charge({**GPT4_PRICES, ("gpt-4", "input"): before})))
    live = LiveState.from_lago([lago_metric(metric())], [live_plan])
    wanted = plan(charge({**GPT4_PRICES, ("gpt-4", "input"): after}))

    result = make_plan(templates(metric(), wanted), live)

    (line,) = only(result.changes, "charge", "llm_tokens").fields
    assert line.text.startswith("gpt-4 / input: ")
    if percent is None:
        assert line.text.endswith(" per 1,000 tokens")
    else:
        assert line.text.endswith(f" per 1,000 tokens {percent}")


def test_added_and_removed_prices_are_listed_with_their_sign() -> None:
    wanted = {k: v for k, v in GPT4_PRICES.items() if k != ("gpt-4-32k", "output")}
    present = {k: v for k, v in GPT4_PRICES.items() if k != ("gpt-4", "output")}
    live = LiveState.from_lago(
        [lago_metric(metric())], [lago_plan(plan(charge(present)))]
    )

    result = make_plan(templates(metric(), plan(charge(wanted))), live)

    fields = only(result.changes, "charge", "llm_tokens").fields
    assert [(f.sign, f.text) for f in fields] == [
        ("+", "gpt-4 / output: 0.06 per 1,000 tokens"),
        ("-", "gpt-4-32k / output: 0.12 per 1,000 tokens"),
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval", "yearly"),
        ("amount_currency", "EUR"),
        ("pay_in_advance", True),
        ("trial_period", 14.0),
    ],
    ids=["interval", "currency", "pay_in_advance", "trial"],
)
def test_frozen_plan_fields_are_blocked_once_any_subscription_existed(
    field: str, value: object
) -> None:
    wanted = templates(metric(), plan(**{field: value}))
    terminated_only = SubscriptionCount(active=0, ever=1)

    blocked = make_plan(wanted, converged(gpt4=terminated_only))
    destroying = make_plan(wanted, converged(gpt4=terminated_only), allow_destroy=True)
    free = make_plan(wanted, converged(gpt4=SubscriptionCount(0, 0)))

    change = only(blocked.changes, "plan", "gpt4")
    assert change.action == "blocked"
    # --allow-destroy cannot make Lago apply a field it keeps.
    assert only(destroying.changes, "plan", "gpt4").action == "blocked"
    assert field in (change.reason or "")
    assert "gpt4_v2" in (change.remedy or "")
    assert only(free.changes, "plan", "gpt4").action == "update"


def test_name_and_amount_stay_updatable_on_a_plan_with_subscriptions() -> None:
    wanted = templates(metric(), plan(name="GPT-4 (8K)", amount_cents=500))

    result = make_plan(wanted, converged(gpt4=SubscriptionCount(5, 9)))

    change = only(result.changes, "plan", "gpt4")
    assert change.action == "update"
    assert [f.text for f in change.fields] == [
        "name: 'GPT-4' -> 'GPT-4 (8K)'",
        "amount_cents: 0 -> 500",
    ]


def test_a_charge_model_change_is_blocked_only_with_subscriptions() -> None:
    wanted = templates(metric(), plan(charge(charge_model="standard")))

    blocked = make_plan(wanted, converged(gpt4=SubscriptionCount(1, 1)))
    free = make_plan(wanted, converged())

    assert only(blocked.changes, "charge", "llm_tokens").action == "blocked"
    assert "charge_model" in (
        only(blocked.changes, "charge", "llm_tokens").reason or ""
    )
    assert only(free.changes, "charge", "llm_tokens").action == "update"


def test_a_metric_definition_change_is_blocked_once_a_plan_uses_it() -> None:
    wanted_metric = metric(field_name="total_tokens")

    used = make_plan(templates(wanted_metric, plan()), converged())
    unused = make_plan(
        templates(wanted_metric),
        LiveState.from_lago([lago_metric(metric())], []),
    )

    change = only(used.changes, "billable_metric", "llm_tokens")
    assert change.action == "blocked"
    assert "used by gpt4" in (change.reason or "")
    assert only(unused.changes, "billable_metric", "llm_tokens").action == "update"


def test_rounding_set_in_lago_shows_and_is_blocked_once_a_plan_uses_it() -> None:
    rounded = {**lago_metric(metric()), "rounding_function": "ceil"}
    rounded["rounding_precision"] = 2

    used = make_plan(
        templates(metric(), plan()),
        LiveState.from_lago([rounded], [lago_plan(plan())]),
    )
    unused = make_plan(templates(metric()), LiveState.from_lago([rounded], []))

    change = only(used.changes, "billable_metric", "llm_tokens")
    assert [f.text for f in change.fields] == [
        "rounding_function: 'ceil' -> None",
        "rounding_precision: 2 -> None",
    ]
    assert change.action == "blocked"
    assert "llm_tokens_v2" in (change.remedy or "")
    assert only(unused.changes, "billable_metric", "llm_tokens").action == "update"


def test_a_charge_missing_from_the_template_is_blocked_unless_destroy() -> None:
    extra = replace(charge(), code="llm_tokens_batch")
    live = LiveState.from_lago(
        [lago_metric(metric())], [lago_plan(plan(charge(), extra))]
    )

    blocked = make_plan(templates(metric(), plan()), live)
    allowed = make_plan(templates(metric(), plan()), live, allow_destroy=True)

    assert only(blocked.changes, "charge", "llm_tokens_batch").action == "blocked"
    assert only(allowed.changes, "charge", "llm_tokens_batch").action == "delete"
    assert "--allow-destroy" in (blocked.blocked[0].remedy or "")


def _without_32k() -> tuple[MetricSpec, PlanSpec]:
    prices = {k: v for k, v in GPT4_PRICES.items() if k[0] == "gpt-4"}
    return metric(models=("gpt-4",)), plan(charge(prices))


def _other_plan(model: str) -> dict[str, object]:
    prices = {(model, "input"): "0.5", (model, "output"): "0.5"}
    return lago_plan(plan(charge(prices), code="enterprise"))


def _priced_by_model(*groups: tuple[str, ...]) -> dict[str, object]:
    """Plan enterprise with one price per group of models, by model only."""
    filters = tuple(
        PriceSpec(Decimal("0.5"), package_size=1000, values={"model": group})
        for group in groups
    )
    priced = replace(charge(), filters=filters, price_by=("model",))
    return lago_plan(plan(priced, code="enterprise"))


def test_removing_a_value_another_plan_prices_is_blocked() -> None:
    wanted = templates(*_without_32k())
    live = converged(_other_plan("gpt-4-32k"))

    blocked = make_plan(wanted, live)
    allowed = make_plan(wanted, live, allow_destroy=True)

    change = only(blocked.changes, "billable_metric", "llm_tokens")
    assert change.action == "blocked"
    assert "plan enterprise" in (change.reason or "")
    assert "plan gpt4" not in (change.reason or "")
    assert only(allowed.changes, "billable_metric", "llm_tokens").action == "update"


def test_a_value_only_a_plan_outside_the_templates_ever_priced_is_blocked() -> None:
    gpt35_prices = {
        ("gpt-3.5-turbo", "input"): "0.0015",
        ("gpt-3.5-turbo", "output"): "0.002",
    }
    wanted = templates(
        metric(models=("gpt-3.5-turbo", "gpt-4")),
        plan(charge(gpt35_prices), code="gpt35"),
    )

    blocked = make_plan(wanted, converged())
    allowed = make_plan(wanted, converged(), allow_destroy=True)

    change = only(blocked.changes, "billable_metric", "llm_tokens")
    assert change.action == "blocked"
    assert change.reason == (
        "Removing model=gpt-4-32k from metric llm_tokens makes Lago rewrite the "
        "charge filters that price that value in plan gpt4, which these "
        "templates do not manage: charge llm_tokens of plan gpt4: "
        "{model=gpt-4-32k, type=input} broadened to {type=input}, "
        "{model=gpt-4-32k, type=output} broadened to {type=output}. Events "
        "would be re-priced: a broadened filter keeps its price and also bills "
        "events it never matched."
    )
    assert change.remedy == (
        "Remove the prices for model=gpt-4-32k from plan gpt4 first, or keep "
        "model=gpt-4-32k in metric llm_tokens in the templates; or rerun with "
        "--allow-destroy to let Lago rewrite those filters."
    )
    update = only(allowed.changes, "billable_metric", "llm_tokens")
    assert update.action == "update"
    assert [(f.sign, f.text) for f in update.fields] == [
        ("+", "filters.model: gpt-3.5-turbo"),
        ("-", "filters.model: gpt-4-32k"),
    ]
    assert update.desired.filters["model"] == ("gpt-3.5-turbo", "gpt-4")


@pytest.mark.parametrize(
    ("wanted", "outside", "rewrite"),
    [
        (
            metric(models=("gpt-4",)),
            _priced_by_model(("gpt-4", "gpt-4-32k")),
            "{model=gpt-4,gpt-4-32k} trimmed to {model=gpt-4}",
        ),
        (
            metric(models=("gpt-4",)),
            _priced_by_model(("gpt-4-32k",)),
            "{model=gpt-4-32k} deleted",
        ),
        (
            replace(metric(), filters={"model": ("gpt-4", "gpt-4-32k")}),
            _other_plan("gpt-4"),
            "{model=gpt-4, type=input} broadened to {model=gpt-4}",
        ),
        (
            metric(models=("gpt-4",)),
            _priced_by_model((ALL_FILTER_VALUES,)),
            "{model=any} trimmed to fewer values",
        ),
    ],
    ids=["trimmed", "deleted", "key-removed", "wildcard"],
)
def test_the_reason_says_what_lago_would_do_to_each_filter(
    wanted: MetricSpec, outside: dict[str, object], rewrite: str
) -> None:
    live = LiveState.from_lago([lago_metric(metric())], [outside])

    result = make_plan(templates(wanted), live)

    change = only(result.changes, "billable_metric", "llm_tokens")
    assert change.action == "blocked"
    assert f"charge llm_tokens of plan enterprise: {rewrite}" in (change.reason or "")


def _gpt4_of_any_type() -> dict[str, object]:
    values = {"model": ("gpt-4",), "type": (ALL_FILTER_VALUES,)}
    price = PriceSpec(Decimal("0.5"), package_size=1000, values=values)
    return lago_plan(plan(replace(charge(), filters=(price,)), code="enterprise"))


@pytest.mark.parametrize(
    "outside",
    [_other_plan("gpt-4"), _gpt4_of_any_type()],
    ids=["other-model", "wildcard-on-a-key-that-keeps-its-values"],
)
def test_removing_a_value_no_plan_outside_the_templates_prices_is_an_update(
    outside: dict[str, object],
) -> None:
    result = make_plan(templates(*_without_32k()), converged(outside))

    change = only(result.changes, "billable_metric", "llm_tokens")
    assert change.action == "update"
    assert [(f.sign, f.text) for f in change.fields] == [
        ("-", "filters.model: gpt-4-32k")
    ]
    assert change.desired.filters["model"] == ("gpt-4",)


def test_a_new_plan_lists_its_prices_and_a_held_code_is_blocked() -> None:
    wanted = templates(metric(), plan(code="gpt4-new"))
    held = LiveState.from_lago(
        [lago_metric(metric())],
        [lago_plan(plan(code="gpt4-new"), pending_deletion=True)],
    )

    fresh = make_plan(wanted, LiveState.from_lago([lago_metric(metric())], []))
    blocked = make_plan(wanted, held)

    new_charge = only(fresh.changes, "charge", "llm_tokens")
    assert new_charge.action == "create"
    assert "gpt-4 / input: 0.03 per 1,000 tokens" in [f.text for f in new_charge.fields]
    assert only(blocked.changes, "plan", "gpt4-new").action == "blocked"


def test_prune_blocks_deleting_plans_and_metrics_outside_the_templates() -> None:
    other = lago_metric(replace(metric(), code="images"))
    live = LiveState.from_lago(
        [lago_metric(metric()), other], [lago_plan(plan()), _other_plan("gpt-4")]
    )

    blocked = make_plan(templates(metric(), plan()), live, prune=True)
    allowed = make_plan(
        templates(metric(), plan()), live, prune=True, allow_destroy=True
    )

    assert [(c.kind, c.code) for c in blocked.blocked] == [
        ("billable_metric", "images"),
        ("plan", "enterprise"),
    ]
    assert [(c.code, c.action) for c in allowed.pending] == [
        ("images", "delete"),
        ("enterprise", "delete"),
    ]


def test_the_json_document_is_stable_and_serialisable() -> None:
    prices = {**GPT4_PRICES, ("gpt-4", "input"): "0.035"}
    result = make_plan(templates(metric(), plan(charge(prices))), converged())

    document = json.loads(json.dumps(result.to_dict()))

    assert document["format_version"] == 1
    assert document["summary"] == {
        "create": 0,
        "update": 1,
        "delete": 0,
        "blocked": 0,
        "unchanged": 2,
    }
    (update,) = [c for c in document["changes"] if c["action"] == "update"]
    assert update["fields"][0] == {
        "field": "filters.properties.amount",
        "filter": {"model": ["gpt-4"], "type": ["input"]},
        "before": "0.03",
        "after": "0.035",
        "text": PRICE_CHANGE,
    }


def test_lago_charge_json_parses_back_to_the_template_state() -> None:
    live = LiveState.from_lago([], [lago_plan(plan())])

    state = live.plans["gpt4"].charges["llm_tokens"].state

    assert state.default.get("amount") == "0"
    assert dict(state.filters)[(("model", ("gpt-4",)), ("type", ("input",)))].get(
        "amount"
    ) == str(Decimal("0.03"))
    assert lago_charge(charge())["code"] == "llm_tokens"
