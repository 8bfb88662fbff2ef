"""The safety rule for a metric losing filter values that other plans price.

When a metric loses filter values, Lago rewrites every charge filter that
names them, in every plan (lago-api.md, section 1.5): the filter is trimmed
to its remaining values, broadened when only its other keys remain (it keeps
its price and now matches events it never matched), or deleted when nothing
remains. A filter on any value of a key (Lago's wildcard) keeps its values
but silently stops matching the removed ones. Plans in the templates stop
pricing those values before the metric loses them (see ``_apply``), so only
plans outside the templates are left to be rewritten, and that is blocked
unless ``allow_destroy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

from tokbill.sync._diff_context import DiffContext
from tokbill.sync._live import ValuesKey

ALL_FILTER_VALUES = "__ALL_FILTER_VALUES__"
"""Lago's wildcard charge filter value: any value the metric declares."""

Filters = Mapping[str, tuple[str, ...]]
Effect = Literal["trimmed", "broadened", "deleted"]

_CONSEQUENCES: dict[Effect, str] = {
    "trimmed": "events with a removed value no longer match a trimmed filter "
    "and fall to another filter or the unmatched price",
    "broadened": "a broadened filter keeps its price and also bills events it "
    "never matched",
    "deleted": "events a deleted filter priced fall to another filter or the "
    "unmatched price",
}


@dataclass(frozen=True)
class _Rewrite:
    """What Lago would do to one charge filter of a plan outside the templates."""

    plan: str
    charge: str
    before: ValuesKey
    after: ValuesKey

    @property
    def effect(self) -> Effect:
        if not self.after:
            return "deleted"
        return "broadened" if len(self.after) < len(self.before) else "trimmed"

    @property
    def text(self) -> str:
        if not self.after:
            return f"{_braced(self.before)} deleted"
        if self.after == self.before:
            return f"{_braced(self.before)} trimmed to fewer values"
        return f"{_braced(self.before)} {self.effect} to {_braced(self.after)}"


def removal_block(
    context: DiffContext, metric: str, before: Filters, after: Filters
) -> tuple[str, str] | None:
    """The reason and remedy when ``metric`` going to ``after`` needs blocking.

    ``None`` with ``allow_destroy``, and when no plan outside the templates
    has a charge filter that Lago would rewrite; otherwise the reason names
    every such plan, charge and filter and what Lago would make of it.
    """
    if context.allow_destroy:
        return None
    rewrites = [
        _Rewrite(plan.code, charge, key, rewritten)
        for plan in context.outside_plans()
        for charge, key in plan.charge_filters(metric)
        if (rewritten := _rewritten(key, after)) != key
        or _wildcard_narrowed(key, before, after)
    ]
    if not rewrites:
        return None
    lost = _lost_values(before, after, rewrites)
    values = ", ".join(lost)
    plans = sorted({r.plan for r in rewrites})
    return (
        _reason(metric, lost, plans, rewrites),
        f"Remove the prices for {values} from {_plans_text(plans)} first, or "
        f"keep {values} in metric {metric} in the templates; or rerun with "
        "--allow-destroy to let Lago rewrite those filters.",
    )


def _rewritten(key: ValuesKey, after: Filters) -> ValuesKey:
    """A charge filter as Lago leaves it once its metric declares ``after``."""
    rows = []
    for name, values in key:
        if name not in after:
            continue
        if values != (ALL_FILTER_VALUES,):
            values = tuple(v for v in values if v in after[name])
        if values:
            rows.append((name, values))
    return tuple(rows)


def _wildcard_narrowed(key: ValuesKey, before: Filters, after: Filters) -> bool:
    """Whether a wildcard row of ``key`` stops matching a value it matched."""
    return any(
        values == (ALL_FILTER_VALUES,)
        and name in after
        and not set(before.get(name, ())) <= set(after[name])
        for name, values in key
    )


def _lost_values(
    before: Filters, after: Filters, rewrites: list[_Rewrite]
) -> list[str]:
    """``model=gpt-4-32k``: each removed value that a rewritten filter names."""
    named: set[tuple[str, str]] = set()
    for rewrite in rewrites:
        for name, values in rewrite.before:
            if values == (ALL_FILTER_VALUES,):
                values = before.get(name, ())
            named.update((name, value) for value in values)
    return [
        f"{name}={value}"
        for name, values in sorted(before.items())
        for value in values
        if value not in after.get(name, ()) and (name, value) in named
    ]


def _reason(
    metric: str, lost: list[str], plans: list[str], rewrites: list[_Rewrite]
) -> str:
    # Rewrites come plan by plan and charge by charge, so groupby sees each
    # charge's filters together.
    by_charge = groupby(rewrites, key=lambda r: (r.plan, r.charge))
    changes = "; ".join(
        f"charge {charge} of plan {plan}: " + ", ".join(r.text for r in group)
        for (plan, charge), group in by_charge
    )
    effects = sorted({r.effect for r in rewrites})
    consequences = "; ".join(_CONSEQUENCES[effect] for effect in effects)
    those = "that value" if len(lost) == 1 else "those values"
    return (
        f"Removing {', '.join(lost)} from metric {metric} makes Lago rewrite "
        f"the charge filters that price {those} in {_plans_text(plans)}, which "
        f"these templates do not manage: {changes}. Events would be re-priced: "
        f"{consequences}."
    )


def _plans_text(plans: list[str]) -> str:
    return f"plan{'s' if len(plans) > 1 else ''} {', '.join(plans)}"


def _braced(key: ValuesKey) -> str:
    rows = (
        f"{name}={'any' if vs == (ALL_FILTER_VALUES,) else ','.join(vs)}"
        for name, vs in key
    )
    return "{" + ", ".join(rows) + "}"
