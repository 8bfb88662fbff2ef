"""Reading the event shape a meter needs from a pricing template."""

from __future__ import annotations

import os
from collections.abc import Sequence

from tokbill._errors import ConfigurationError
from tokbill.ingest._events import EventShape
from tokbill.template._model import MetricSpec, TemplateSet

__all__ = ["shape_from_template"]

_TYPE_VALUES = frozenset({"input", "output"})


def shape_from_template(
    path: str | os.PathLike[str],
    *,
    metric_code: str | None,
    model_key: str | None,
    type_key: str | None,
) -> EventShape:
    """The metric the template's charges use, as an :class:`EventShape`.

    Raises:
        TemplateError: the template is invalid.
        ConfigurationError: no metric, or several and ``metric_code`` unset,
            or the model and type filter keys cannot be told apart.
    """
    from tokbill.template import load_templates

    templates = load_templates([path])
    metric = _pick_metric(templates, metric_code, str(path))
    if not metric.field_name:
        raise ConfigurationError(
            f"The metric {metric.code!r} in {path} has no field_name; the meter "
            "needs the property that carries the token count."
        )
    model, kind = _filter_keys(metric, model_key, type_key)
    return EventShape(
        code=metric.code,
        field_name=metric.field_name,
        model_key=model,
        type_key=kind,
        known_models=_values(metric, model),
        known_types=_values(metric, kind),
    )


def _pick_metric(
    templates: TemplateSet, metric_code: str | None, where: str
) -> MetricSpec:
    if metric_code is not None:
        try:
            return templates.metric(metric_code)
        except KeyError:
            raise ConfigurationError(
                f"The template {where} has no metric {metric_code!r}; it has "
                f"{_codes(templates.metrics)}."
            ) from None
    charged = {
        charge.billable_metric for plan in templates.plans for charge in plan.charges
    }
    candidates = [m for m in templates.metrics if m.code in charged] or list(
        templates.metrics
    )
    if len(candidates) != 1:
        raise ConfigurationError(
            f"The template {where} charges for {_codes(candidates)}; pass "
            "metric_code to say which one the meter records."
        )
    return candidates[0]


def _filter_keys(
    metric: MetricSpec, model_key: str | None, type_key: str | None
) -> tuple[str, str]:
    keys = set(metric.filters)
    if type_key is None:
        by_values = [k for k in keys if _TYPE_VALUES <= set(metric.filters[k])]
        type_key = "type" if "type" in keys or not by_values else by_values[0]
    if model_key is None:
        others = sorted(keys - {type_key})
        model_key = "model" if "model" in keys or len(others) != 1 else others[0]
    if model_key == type_key:
        raise ConfigurationError(
            f"The metric {metric.code!r} filters on {sorted(keys)}; pass model_key "
            "and type_key to say which filter holds the model and which the type."
        )
    return model_key, type_key


def _values(metric: MetricSpec, key: str) -> frozenset[str] | None:
    values = metric.filters.get(key)
    return frozenset(values) if values else None


def _codes(metrics: Sequence[MetricSpec]) -> str:
    return ", ".join(repr(m.code) for m in metrics) or "no metric"
