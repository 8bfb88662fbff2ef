"""Turn a charge's ``price_by`` / ``prices`` tree into Lago charge filters.

``prices`` has one mapping level per ``price_by`` key, in order; each key at a
level must be a value that the metric declares for that filter key. A leaf is a
price, or a mapping with ``amount`` and optional ``free_units`` and
``invoice_display_name``. Each leaf becomes one charge filter whose values hold
one value per key: ``{"model": ("gpt-4",), "type": ("input",)}``.

Missing prices: a plan picks which values of its first ``price_by`` key it
prices at all (a plan for GPT-4 leaves the GPT-3.5 models out on purpose, and
their events bill at ``unmatched_amount``). Under every value it does price,
each declared combination of the remaining keys should have a price; one that
does not is a warning, because its events would silently bill at
``unmatched_amount``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic_core import PydanticCustomError

from tokbill.template._model import (
    ChargeModel,
    MetricSpec,
    PriceSpec,
    SourceRef,
    money_string,
)
from tokbill.template._problems import FieldPath, Report
from tokbill.template._schema import PriceDocument, parse_price
from tokbill.template._validate import subject, validate
from tokbill.template._yaml import SourceDocument, kind_of


@dataclass(frozen=True)
class PriceTree:
    """What every price of one charge shares, and where to report problems."""

    where: SourceDocument
    report: Report
    metric: MetricSpec
    price_by: tuple[str, ...]
    charge_model: ChargeModel
    package_size: int | None
    free_units: int
    unmatched_amount: Decimal

    def compile(self, prices: Any, path: FieldPath) -> list[PriceSpec]:
        """One price per leaf of ``prices``; problems go to the report."""
        found: list[PriceSpec] = []
        self._level(prices, (), path, found)
        if prices == {}:
            unmatched = self._unmatched()
            message = f"is empty; every event bills at unmatched_amount ({unmatched})."
            self.report.warn(self.where, path, message)
        return found

    def _level(
        self,
        node: Any,
        chosen: tuple[str, ...],
        path: FieldPath,
        found: list[PriceSpec],
    ) -> None:
        if len(chosen) == len(self.price_by):
            price = self._leaf(node, chosen, path)
            if price is not None:
                found.append(price)
            return
        key = self.price_by[len(chosen)]
        declared = self.metric.filters[key]
        if not isinstance(node, dict):
            shown = subject(node, self.where.shown(path, node))
            expected = self._level_expected(len(chosen))
            message = f"{shown}is {kind_of(node)}; expected {expected}."
            self.report.error(self.where, path, message)
            return
        for value, child in node.items():
            if value in declared:
                self._level(child, (*chosen, value), (*path, value), found)
            else:
                self._undeclared(key, value, (*path, value))
        if chosen:
            self._warn_missing(key, [v for v in declared if v not in node], path)

    def _level_expected(self, depth: int) -> str:
        key = self.price_by[depth]
        values = ", ".join(self.metric.filters[key])
        if depth + 1 == len(self.price_by):
            return f"a mapping of {key} values ({values}) to prices"
        inner = self.price_by[depth + 1]
        return f"a mapping of {key} values ({values}) to mappings by {inner}"

    def _undeclared(self, key: str, value: str, path: FieldPath) -> None:
        declared = ", ".join(self.metric.filters[key])
        self.report.error(
            self.where,
            path,
            f'a price for an undeclared filter value: metric "{self.metric.code}" '
            f'does not declare {key} "{value}"; expected one of: {declared}.',
        )

    def _warn_missing(self, key: str, missing: list[str], path: FieldPath) -> None:
        for value in missing:
            self.report.warn(
                self.where,
                path,
                f'no price for {key} "{value}"; those events bill at '
                f"unmatched_amount ({self._unmatched()}).",
            )

    def _unmatched(self) -> str:
        unit = "per package" if self.charge_model == "package" else "per unit"
        return f"{money_string(self.unmatched_amount)} {unit}"

    def _leaf(
        self, node: Any, chosen: tuple[str, ...], path: FieldPath
    ) -> PriceSpec | None:
        if isinstance(node, dict):
            return self._leaf_mapping(node, chosen, path)
        try:
            amount = parse_price(node)
        except PydanticCustomError as exc:
            shown = subject(node, self.where.shown(path, node))
            self.report.error(self.where, path, f"{shown}{exc.message()}")
            return None
        return self._price(amount, None, None, chosen, path)

    def _leaf_mapping(
        self, node: dict[str, Any], chosen: tuple[str, ...], path: FieldPath
    ) -> PriceSpec | None:
        if "amount" not in node:
            message = (
                "is a mapping without amount; expected a price, or a mapping with "
                f"amount (one level per price_by key: {', '.join(self.price_by)})."
            )
            self.report.error(self.where, path, message)
            return None
        leaf = validate(PriceDocument, node, self.where, path, self.report)
        if leaf is None:
            return None
        if leaf.free_units and self.charge_model != "package":
            message = "is only for charge_model package; expected no free_units."
            self.report.error(self.where, (*path, "free_units"), message)
            return None
        return self._price(
            leaf.amount, leaf.free_units, leaf.invoice_display_name, chosen, path
        )

    def _price(
        self,
        amount: Decimal,
        free_units: int | None,
        display_name: str | None,
        chosen: tuple[str, ...],
        path: FieldPath,
    ) -> PriceSpec:
        is_package = self.charge_model == "package"
        if free_units is None or not is_package:
            free_units = self.free_units if is_package else 0
        values = dict(sorted(zip(self.price_by, ((v,) for v in chosen), strict=True)))
        return PriceSpec(
            amount=amount,
            free_units=free_units,
            package_size=self.package_size if is_package else None,
            values=values,
            invoice_display_name=display_name,
            source=SourceRef(self.where.file, self.where.line_of(path)),
        )
