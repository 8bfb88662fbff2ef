"""Check what validated template documents mean together, and build the specs.

All files are read first, then every file's metrics are registered, then every
plan is compiled, so a charge may use a metric declared in another file. A
metric may be declared in several files when the declarations are identical
(two templates that share a metric each stay applicable alone); differing
declarations, and a code declared twice in one file, are errors.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields
from typing import Any, Final

from pydantic import ValidationError

from tokbill.template._model import (
    ChargeSpec,
    MetricSpec,
    PlanSpec,
    PriceSpec,
    SourceRef,
)
from tokbill.template._prices import PriceTree
from tokbill.template._problems import FieldPath, Report
from tokbill.template._schema import (
    ChargeDocument,
    MetricDocument,
    PlanDocument,
    TemplateDocument,
)
from tokbill.template._validate import validate, validate_split
from tokbill.template._yaml import SourceDocument, kind_of

_BESIDE_PRICES: Final = frozenset(
    {"code", "package_size", "free_units", "unmatched_amount", "invoice_display_name"}
)
"""Charge fields that the checks of its price tree do not depend on."""


@dataclass
class _PlanParts:
    path: FieldPath
    code: str | None
    header: PlanDocument | None
    charges: list[tuple[FieldPath, Any, ChargeDocument | None]]
    """Each charge's path, raw value, and document (``None`` if invalid)."""


@dataclass
class _FileParts:
    where: SourceDocument
    metrics: list[tuple[FieldPath, MetricDocument]] = field(default_factory=list)
    plans: list[_PlanParts] = field(default_factory=list)


class Compiler:
    """Collects documents from several files into one set of specs.

    Call :meth:`add` once per file, then :meth:`compile` once. Nothing here
    raises for a template problem: each one is recorded in ``report``, and the
    faulty metric, or the whole plan holding the fault, is left out of the
    specs, so one run shows every problem of every file.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        self.metrics: dict[str, MetricSpec] = {}
        self.plans: dict[str, PlanSpec] = {}
        self._files: list[_FileParts] = []
        self._broken_metrics: set[str] = set()
        self._plan_sources: dict[str, SourceRef] = {}

    def add(self, where: SourceDocument) -> None:
        """Validate the shape of one parsed file and keep its parts."""
        if not isinstance(where.data, dict):
            message = (
                f"the template is {kind_of(where.data)}; expected a mapping with "
                "version, billable_metrics and plans."
            )
            self.report.error(where, (), message)
            return
        parts = _FileParts(where)
        lists = ("billable_metrics", "plans")
        _, items = validate_split(
            TemplateDocument, where.data, lists, where, (), self.report
        )
        for path, raw in items["billable_metrics"]:
            self._add_metric_document(parts, path, raw)
        for path, raw in items["plans"]:
            parts.plans.append(self._plan_parts(where, path, raw))
        self._files.append(parts)

    def compile(self) -> tuple[tuple[MetricSpec, ...], tuple[PlanSpec, ...]]:
        """Every metric and plan of the added files, checked together."""
        for parts in self._files:
            for path, document in parts.metrics:
                self._register_metric(parts.where, path, document)
        for parts in self._files:
            for plan in parts.plans:
                self._compile_plan(parts.where, plan)
        return tuple(self.metrics.values()), tuple(self.plans.values())

    def _add_metric_document(
        self, parts: _FileParts, path: FieldPath, raw: Any
    ) -> None:
        document = validate(MetricDocument, raw, parts.where, path, self.report)
        if document is not None:
            parts.metrics.append((path, document))
        elif isinstance(raw, dict) and isinstance(raw.get("code"), str):
            # Charges on this metric are not also reported as "unknown metric".
            self._broken_metrics.add(raw["code"])

    def _plan_parts(
        self, where: SourceDocument, path: FieldPath, raw: Any
    ) -> _PlanParts:
        header, items = validate_split(
            PlanDocument, raw, ("charges",), where, path, self.report
        )
        charges = [
            (
                item_path,
                item,
                validate(ChargeDocument, item, where, item_path, self.report),
            )
            for item_path, item in items["charges"]
        ]
        code = raw.get("code") if isinstance(raw, dict) else None
        return _PlanParts(
            path, code if isinstance(code, str) else None, header, charges
        )

    def _register_metric(
        self, where: SourceDocument, path: FieldPath, document: MetricDocument
    ) -> None:
        spec = _metric_spec(where, path, document, self.report)
        if spec is None:
            self._broken_metrics.add(document.code)
            return
        first = self.metrics.get(spec.code)
        if first is None:
            self.metrics[spec.code] = spec
        elif first.source is not None and first.source.path == where.file:
            message = (
                f'metric "{spec.code}" is already declared at {first.source}; '
                "expected each metric code once per file."
            )
            self.report.error(where, (*path, "code"), message)
        elif first != spec:
            differing = ", ".join(_differences(first, spec))
            message = (
                f'metric "{spec.code}" is declared differently at {first.source} '
                f"({differing} differ); expected identical declarations in every "
                "file."
            )
            self.report.error(where, path, message)

    def _compile_plan(self, where: SourceDocument, parts: _PlanParts) -> None:
        compiled = [
            (path, self._compile_charge(where, path, document))
            for path, _, document in parts.charges
            if document is not None
        ]
        for path, raw, document in parts.charges:
            if document is None:
                self._check_prices_of_invalid_charge(where, path, raw)
        # A plan with other problems still claims its code, so a duplicate of
        # it is reported in the same run.
        if parts.code is not None:
            if not self._register_plan_code(where, parts.path, parts.code):
                return
        header = parts.header
        if header is None:
            return
        charges = [charge for _, charge in compiled if charge is not None]
        codes_unique = self._charge_codes_unique(where, compiled)
        if codes_unique and len(charges) == len(parts.charges):
            self.plans[header.code] = _plan_spec(where, parts.path, header, charges)

    def _register_plan_code(
        self, where: SourceDocument, path: FieldPath, code: str
    ) -> bool:
        first = self._plan_sources.get(code)
        if first is not None:
            message = (
                f'plan "{code}" is already declared at {first}; expected unique '
                "plan codes."
            )
            self.report.error(where, (*path, "code"), message)
            return False
        self._plan_sources[code] = SourceRef(where.file, where.line_of(path))
        return True

    def _charge_codes_unique(
        self, where: SourceDocument, compiled: list[tuple[FieldPath, ChargeSpec | None]]
    ) -> bool:
        first_use: dict[str, SourceRef | None] = {}
        unique = True
        for path, charge in compiled:
            if charge is None:
                continue
            if charge.code not in first_use:
                first_use[charge.code] = charge.source
                continue
            unique = False
            message = (
                f'charge code "{charge.code}" is already used at '
                f"{first_use[charge.code]}; expected a distinct code (it defaults "
                "to the metric code)."
            )
            self.report.error(where, (*path, "code"), message)
        return unique

    def _compile_charge(
        self, where: SourceDocument, path: FieldPath, document: ChargeDocument
    ) -> ChargeSpec | None:
        metric = self.metrics.get(document.billable_metric)
        if metric is None:
            self._unknown_metric(where, path, document.billable_metric)
            return None
        # Both checks run, so both kinds of problem show in one run.
        model_ok = _check_charge_model(where, path, document, self.report)
        price_by_ok = _check_price_by(where, path, document, metric, self.report)
        if not (model_ok and price_by_ok):
            return None
        tree = _price_tree(where, self.report, document, metric)
        filters = []
        if document.price_by:
            filters = tree.compile(document.prices, (*path, "prices"))
        return _charge_spec(where, path, document, tree, filters)

    def _check_prices_of_invalid_charge(
        self, where: SourceDocument, path: FieldPath, raw: Any
    ) -> None:
        # When only fields beside the price tree are wrong, the prices can
        # still be checked, so one run reports both kinds of problem. Only
        # errors are kept: a warning may quote a field that is being fixed.
        if not isinstance(raw, dict):
            return
        beside_prices = {k: v for k, v in raw.items() if k not in _BESIDE_PRICES}
        try:
            document = ChargeDocument.model_validate(beside_prices)
        except ValidationError:
            return  # the tree's own fields are wrong, and were reported
        metric = self.metrics.get(document.billable_metric)
        if metric is None or not document.price_by:
            return
        errors_only = Report()
        if _check_price_by(where, path, document, metric, errors_only):
            tree = _price_tree(where, errors_only, document, metric)
            tree.compile(document.prices, (*path, "prices"))
        self.report.errors.extend(errors_only.errors)

    def _unknown_metric(
        self, where: SourceDocument, path: FieldPath, code: str
    ) -> None:
        if code in self._broken_metrics:
            return
        known = sorted(self.metrics)
        close = difflib.get_close_matches(code, known, n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        listed = f"one of: {', '.join(known)}" if known else "a declared metric"
        message = (
            f'"{code}" is not a metric of the given templates{hint}; expected {listed}.'
        )
        self.report.error(where, (*path, "billable_metric"), message)


def _metric_spec(
    where: SourceDocument, path: FieldPath, document: MetricDocument, report: Report
) -> MetricSpec | None:
    field_path = (*path, "field_name")
    if document.aggregation_type == "sum_agg" and document.field_name is None:
        message = (
            "is required for sum_agg; expected the event property to sum, such as "
            "tokens."
        )
        report.error(where, field_path, message)
        return None
    if document.aggregation_type == "count_agg" and document.field_name is not None:
        message = (
            "is not used by count_agg, which counts events (Lago would drop it); "
            "expected no field_name."
        )
        report.error(where, field_path, message)
        return None
    return MetricSpec(
        code=document.code,
        name=document.name,
        aggregation_type=document.aggregation_type,
        field_name=document.field_name,
        description=document.description,
        filters={
            key: tuple(sorted(document.filters[key]))
            for key in sorted(document.filters)
        },
        source=SourceRef(where.file, where.line_of(path)),
    )


def _differences(first: MetricSpec, second: MetricSpec) -> list[str]:
    return [
        f.name
        for f in fields(MetricSpec)
        if f.compare and getattr(first, f.name) != getattr(second, f.name)
    ]


def _check_charge_model(
    where: SourceDocument, path: FieldPath, document: ChargeDocument, report: Report
) -> bool:
    only_package = "is only for charge_model package; expected no "
    if document.charge_model == "package":
        if document.package_size is None:
            message = (
                "is required for charge_model package; expected a whole number > 0 "
                "of units per package, such as 1000."
            )
            report.error(where, (*path, "package_size"), message)
        return document.package_size is not None
    if document.package_size is not None:
        message = f"{only_package}package_size, as standard prices each unit."
        report.error(where, (*path, "package_size"), message)
    if document.free_units:
        report.error(where, (*path, "free_units"), f"{only_package}free_units.")
    return document.package_size is None and not document.free_units


def _check_price_by(
    where: SourceDocument,
    path: FieldPath,
    document: ChargeDocument,
    metric: MetricSpec,
    report: Report,
) -> bool:
    problems_before = len(report.errors)
    keys = ", ".join(metric.filters) or "none, it declares no filters"
    for index, key in enumerate(document.price_by):
        key_path = (*path, "price_by", index)
        if key in document.price_by[:index]:
            message = f'"{key}" is repeated; expected each filter key once.'
            report.error(where, key_path, message)
        elif key not in metric.filters:
            message = (
                f'"{key}" is not a filter key of metric "{metric.code}"; '
                f"expected one of: {keys}."
            )
            report.error(where, key_path, message)
    if document.price_by and document.prices is None:
        message = (
            "is required with price_by; expected one mapping level per price_by "
            "key, with prices at the leaves."
        )
        report.error(where, (*path, "prices"), message)
    if not document.price_by and document.prices is not None:
        message = (
            "needs price_by; expected price_by to name the filter keys of its "
            f"levels ({keys})."
        )
        report.error(where, (*path, "prices"), message)
    return len(report.errors) == problems_before


def _price_tree(
    where: SourceDocument, report: Report, document: ChargeDocument, metric: MetricSpec
) -> PriceTree:
    return PriceTree(
        where=where,
        report=report,
        metric=metric,
        price_by=tuple(document.price_by),
        charge_model=document.charge_model,
        package_size=document.package_size,
        free_units=document.free_units or 0,
        unmatched_amount=document.unmatched_amount,
    )


def _charge_spec(
    where: SourceDocument,
    path: FieldPath,
    document: ChargeDocument,
    tree: PriceTree,
    filters: list[PriceSpec],
) -> ChargeSpec:
    source = SourceRef(where.file, where.line_of(path))
    default = PriceSpec(
        amount=tree.unmatched_amount,
        free_units=tree.free_units,
        package_size=tree.package_size,
        source=source,
    )
    ordered = sorted(filters, key=lambda price: sorted((price.values or {}).items()))
    return ChargeSpec(
        code=document.code or document.billable_metric,
        billable_metric=document.billable_metric,
        charge_model=document.charge_model,
        default=default,
        filters=tuple(ordered),
        price_by=tuple(document.price_by),
        invoice_display_name=document.invoice_display_name,
        source=source,
    )


def _plan_spec(
    where: SourceDocument,
    path: FieldPath,
    header: PlanDocument,
    charges: list[ChargeSpec],
) -> PlanSpec:
    trial = header.trial_period
    return PlanSpec(
        code=header.code,
        name=header.name,
        interval=header.interval,
        amount_cents=header.amount_cents,
        amount_currency=header.amount_currency,
        pay_in_advance=header.pay_in_advance,
        charges=tuple(charges),
        description=header.description,
        invoice_display_name=header.invoice_display_name,
        trial_period=float(trial) if trial is not None else None,
        source=SourceRef(where.file, where.line_of(path)),
    )
