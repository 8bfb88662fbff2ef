"""Pricing templates: YAML files that declare billable metrics and plans.

``load_templates`` reads one or more files into a :class:`TemplateSet` of frozen,
canonical specs that the reconciler, the meter and the usage estimator share::

    from tokbill.template import load_templates

    templates = load_templates(["templates/gpt4.yaml"])
    charge = templates.plan("gpt4").charges[0]
    charge.price_for({"model": "gpt-4", "type": "input"}).amount  # Decimal("0.03")

A bad template raises ``tokbill.TemplateError`` naming the file, line and field
of every problem found.
"""

from __future__ import annotations

from tokbill.template._load import load_templates
from tokbill.template._model import (
    ChargeSpec,
    MetricSpec,
    PlanSpec,
    PriceSpec,
    SourceRef,
    TemplateSet,
    money_string,
)

__all__ = [
    "ChargeSpec",
    "MetricSpec",
    "PlanSpec",
    "PriceSpec",
    "SourceRef",
    "TemplateSet",
    "load_templates",
    "money_string",
]
