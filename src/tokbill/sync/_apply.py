"""Carry out a plan: the writes, in a safe order, then a read-back check.

Order, so no write ever leaves Lago billing an event wrongly in between:

1. metric creates, and metric updates that add filter values or change
   other fields (a removal in the same update waits for step 4);
2. plan creates (one POST with their charges), plan field updates (a PUT
   without ``charges``, which leaves charges alone), charge creates and
   charge updates (one charge sub-resource request each, carrying
   ``charge_model``, the complete ``properties`` and every filter: Lago
   replaces properties and deletes filters it is not sent);
3. charge deletes, then pruned plan deletes;
4. metric filter value removals, once no plan in the templates prices them
   (a plan outside them that still does is blocked unless ``allow_destroy``;
   with it, Lago rewrites that plan's filters here), then pruned metric
   deletes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any

from tokbill._errors import (
    BlockedError,
    DriftError,
    LagoError,
    LagoStatusError,
    RateLimitError,
    SyncError,
)
from tokbill._wording import counted
from tokbill.lago import LagoClient, api_path
from tokbill.sync._changes import FORMAT_VERSION, Change, Plan
from tokbill.sync._diff import compute_changes
from tokbill.sync._live import LiveMetric
from tokbill.sync._read import read_state
from tokbill.template._model import ChargeSpec, MetricSpec, PlanSpec

logger = logging.getLogger(__name__)

JSON = dict[str, Any]


@dataclass(frozen=True)
class Write:
    """One write request of an apply."""

    method: str
    path: str
    description: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.description})"

    def to_dict(self) -> dict[str, str]:
        """This write in the JSON apply document."""
        return {
            "method": self.method,
            "path": self.path,
            "description": self.description,
        }


class ApplyError(SyncError):
    """A write failed; the writes before it were made, the others were not.

    Re-running apply converges: it plans again from what Lago now holds.
    """

    def __init__(
        self,
        message: str,
        *,
        done: tuple[Write, ...],
        failed: Write,
        not_done: tuple[Write, ...],
    ) -> None:
        super().__init__(message)
        self.done = done
        """The writes Lago accepted, in order."""
        self.failed = failed
        """The write that failed (Lago may or may not have applied it)."""
        self.not_done = not_done
        """The writes that were not attempted."""


@dataclass(frozen=True)
class ApplyResult:
    """What an apply did: the plan and the writes made, in order.

    A failed apply has ``error`` set; ``failed`` is the write Lago refused
    or did not answer (none for drift found on read-back), and ``not_done``
    the writes never attempted.
    """

    plan: Plan
    writes: tuple[Write, ...]
    failed: Write | None = None
    not_done: tuple[Write, ...] = ()
    error: str | None = None

    @classmethod
    def from_error(cls, plan: Plan, exc: ApplyError | DriftError) -> ApplyResult:
        """What an apply that raised ``exc`` had done."""
        if isinstance(exc, ApplyError):
            return cls(plan, exc.done, exc.failed, exc.not_done, str(exc))
        return cls(plan, exc.writes, error=str(exc))

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON document ``apply --json`` prints."""
        return {
            "format_version": FORMAT_VERSION,
            "plan": self.plan.to_dict(),
            "writes": [write.to_dict() for write in self.writes],
            "failed": None if self.failed is None else self.failed.to_dict(),
            "not_done": [write.to_dict() for write in self.not_done],
            "error": self.error,
        }


class _Phase(IntEnum):
    """The four steps of the module docstring, in the order they run.

    Plans include their charges: charge writes run with plan writes, and
    charge deletes with plan deletes.
    """

    GROW_METRICS = 1
    WRITE_PLANS = 2
    DELETE_PLANS = 3
    SHRINK_METRICS = 4


@dataclass
class _Step:
    write: Write
    phase: _Phase
    # The request is built when the step runs, not when it is planned: a plan
    # or charge body needs the lago_id of a metric an earlier step created.
    send: Callable[[LagoClient], JSON] = field(repr=False)
    on_result: Callable[[JSON], None] | None = field(default=None, repr=False)


def _post(
    path: str,
    description: str,
    phase: _Phase,
    body: Callable[[], JSON],
    on_result: Callable[[JSON], None] | None = None,
) -> _Step:
    write = Write("POST", path, description)
    return _Step(write, phase, lambda client: client.post(path, body()), on_result)


def _put(path: str, description: str, phase: _Phase, body: Callable[[], JSON]) -> _Step:
    write = Write("PUT", path, description)
    return _Step(write, phase, lambda client: client.put(path, body()))


def _delete(path: str, description: str, phase: _Phase) -> _Step:
    write = Write("DELETE", path, description)
    return _Step(write, phase, lambda client: client.delete(path))


def apply_plan(client: LagoClient, plan: Plan) -> ApplyResult:
    """Make the writes ``plan`` needs, then check Lago matches the templates.

    Writes nothing when the plan has nothing to do (not even a read-back).
    Raises :class:`BlockedError` before any write when a change is blocked,
    :class:`ApplyError` at the first failed write, and :class:`DriftError`
    when Lago, read back after the writes, still differs from the templates
    (for instance a value Lago silently ignored).
    """
    if plan.blocked:
        raise BlockedError(_blocked_message(plan))
    steps = sorted(_Steps(plan).build(), key=lambda step: step.phase)
    writes = _run(client, steps)
    if writes:
        _verify(client, plan, writes)
    return ApplyResult(plan, writes)


def _blocked_message(plan: Plan) -> str:
    lines = [
        f"{counted(len(plan.blocked), 'change')} blocked by a safety rule; "
        "nothing was written."
    ]
    for change in plan.blocked:
        lines.append(f"- {change.label}: {change.reason} Remedy: {change.remedy}")
    return "\n".join(lines)


def _run(client: LagoClient, steps: list[_Step]) -> tuple[Write, ...]:
    done: list[Write] = []
    for index, step in enumerate(steps):
        logger.info("Writing %s.", step.write)
        try:
            result = step.send(client)
        except LagoError as exc:
            raise _apply_error(exc, steps, index) from exc
        if step.on_result is not None:
            step.on_result(result)
        done.append(step.write)
    return tuple(done)


def _apply_error(exc: LagoError, steps: list[_Step], index: int) -> ApplyError:
    done = tuple(step.write for step in steps[:index])
    not_done = tuple(step.write for step in steps[index + 1 :])
    made = "; ".join(str(w) for w in done) or "none"
    message = (
        f"Apply stopped at write {index + 1} of {len(steps)}, "
        f"{steps[index].write}: {exc} Writes made before it: {made}. "
        f"{counted(len(not_done), 'write')} not attempted. {_next_step(exc)}"
    )
    return ApplyError(message, done=done, failed=steps[index].write, not_done=not_done)


def _next_step(exc: LagoError) -> str:
    """What to do after ``exc``: a rerun, or first a fix when Lago refused."""
    refused = (
        isinstance(exc, LagoStatusError)
        and 400 <= exc.status_code < 500
        and not isinstance(exc, RateLimitError)
    )
    if refused:
        # Lago would refuse the same write again; a rerun alone cannot finish.
        return (
            "Lago refused this write: correct what it names, then run apply "
            "again; it plans from what Lago now holds."
        )
    return "Run apply again to finish: it plans from what Lago now holds."


def _verify(client: LagoClient, plan: Plan, writes: tuple[Write, ...]) -> None:
    live = read_state(client, plan.template_set, prune=plan.prune)
    left = [
        change
        for change in compute_changes(
            plan.template_set,
            live,
            allow_destroy=plan.allow_destroy,
            prune=plan.prune,
        )
        if change.action != "unchanged"
    ]
    if left:
        details = "; ".join(
            f"{c.label}: " + (", ".join(f.text for f in c.fields) or c.action)
            for c in left
        )
        raise DriftError(
            f"After the apply, Lago still differs from the templates: {details}.",
            writes=writes,
        )


class _Steps:
    """Turns the changes of a plan into ordered write steps."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.metric_ids = {code: m.lago_id for code, m in plan.live.metrics.items()}
        self.created_plans = {
            c.code for c in plan.changes if c.kind == "plan" and c.action == "create"
        }

    def build(self) -> list[_Step]:
        steps: list[_Step] = []
        for change in self.plan.pending:
            if change.kind == "billable_metric":
                steps += self._metric(change)
            elif change.kind == "plan":
                steps += self._plan(change)
            elif change.plan not in self.created_plans:
                steps += self._charge(change)
        return steps

    def _metric(self, change: Change) -> list[_Step]:
        path = api_path("billable_metrics", change.code)
        if change.action == "delete":
            description = f"delete metric {change.code}"
            return [_delete(path, description, _Phase.SHRINK_METRICS)]
        spec: MetricSpec = change.desired
        if change.action == "create":
            create = _post(
                "/billable_metrics",
                f"create metric {spec.code}",
                _Phase.GROW_METRICS,
                lambda: {"billable_metric": spec.payload()},
                on_result=self._remember_metric,
            )
            return [create]
        return self._metric_update(change, spec, path)

    def _metric_update(
        self, change: Change, spec: MetricSpec, path: str
    ) -> list[_Step]:
        live: LiveMetric = change.live
        filter_lines = [f for f in change.fields if f.field.startswith("filters.")]
        adds = any(f.before is None for f in filter_lines)
        removes = any(f.after is None for f in filter_lines)
        other = len(filter_lines) < len(change.fields)
        steps = []
        if adds or other:
            # Removals wait for the last phase, once no managed plan prices
            # those values; until then the metric keeps them. Definition
            # fields cannot wait: a plan this apply creates attaches the
            # metric, and Lago then silently keeps the old definition.
            widened = replace(spec, filters=_union(live.filters, spec.filters))
            fields = widened.payload()
            if not adds:
                # Lago flags every draft invoice of the metric's plans for a
                # refresh whenever filters are sent, changed or not.
                del fields["filters"]
            steps.append(
                _put(
                    path,
                    f"update metric {spec.code}",
                    _Phase.GROW_METRICS,
                    lambda: {"billable_metric": fields},
                )
            )
        if removes:
            steps.append(
                _put(
                    path,
                    f"remove filter values of metric {spec.code}",
                    _Phase.SHRINK_METRICS,
                    lambda: {"billable_metric": spec.payload()},
                )
            )
        return steps

    def _remember_metric(self, result: JSON) -> None:
        metric = result.get("billable_metric") or {}
        self.metric_ids[str(metric.get("code"))] = str(metric.get("lago_id"))

    def _plan(self, change: Change) -> list[_Step]:
        path = api_path("plans", change.code)
        if change.action == "delete":
            return [_delete(path, f"delete plan {change.code}", _Phase.DELETE_PLANS)]
        spec: PlanSpec = change.desired
        if change.action == "create":
            create = _post(
                "/plans",
                f"create plan {spec.code} with {counted(len(spec.charges), 'charge')}",
                _Phase.WRITE_PLANS,
                lambda: {"plan": spec.payload(self.metric_ids)},
            )
            return [create]

        def fields_only() -> JSON:
            # Without "charges", Lago leaves every charge as it is.
            fields = spec.payload(self.metric_ids)
            fields.pop("charges")
            return {"plan": fields}

        description = f"update plan {spec.code}"
        return [_put(path, description, _Phase.WRITE_PLANS, fields_only)]

    def _charge(self, change: Change) -> list[_Step]:
        if change.plan is None:
            raise ValueError(f"The change to charge {change.code} names no plan.")
        path = api_path("plans", change.plan, "charges", change.code)
        if change.action == "delete":
            return [_delete(path, f"delete {change.label}", _Phase.DELETE_PLANS)]
        spec: ChargeSpec = change.desired

        def body() -> JSON:
            return {"charge": spec.payload(self.metric_ids[spec.billable_metric])}

        if change.action == "create":
            charges = api_path("plans", change.plan, "charges")
            return [_post(charges, f"create {change.label}", _Phase.WRITE_PLANS, body)]
        return [_put(path, f"update {change.label}", _Phase.WRITE_PLANS, body)]


def _union(
    left: Mapping[str, tuple[str, ...]], right: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    keys = sorted(set(left) | set(right))
    return {k: tuple(sorted({*left.get(k, ()), *right.get(k, ())})) for k in keys}
