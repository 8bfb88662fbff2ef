"""Requests tokbill sends and the emulator's answers validate against Lago's spec.

The spec is read by path, from ``TOKBILL_LAGO_OPENAPI`` or
``<repo>/../shared/lago-openapi/openapi.yaml``; it is never copied into the
repository. One scenario drives every emulated endpoint once through a
recording client; each test then validates the exchanges of one operation.

Where the spec disagrees with the server (lago-api.md is the source of
truth), the one disagreeing check is skipped, with its reason, in
``SPEC_DEVIATIONS``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.emulator.lago import (
    charge,
    create_metric,
    create_plan,
    event,
    ok,
    package,
    price,
    subscribe,
    tokens,
)
from tokbill.emulator import EmulatorServer
from tokbill.emulator.testing import running_emulator

_REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = Path(
    os.environ.get("TOKBILL_LAGO_OPENAPI")
    or _REPO.parent / "shared" / "lago-openapi" / "openapi.yaml"
)
SPEC_HOST = "https://api.getlago.com"

openapi_core = pytest.importorskip("openapi_core")
if not SPEC_PATH.is_file():
    pytest.skip(
        f"Lago's OpenAPI spec is not at {SPEC_PATH}; set TOKBILL_LAGO_OPENAPI to "
        "its path to run the contract tests.",
        allow_module_level=True,
    )

from openapi_core import OpenAPI  # noqa: E402 - only after the skip above
from openapi_core.datatypes import RequestParameters  # noqa: E402
from werkzeug.datastructures import Headers, ImmutableMultiDict  # noqa: E402


@dataclass
class Exchange:
    """One request the scenario sent and the answer it got."""

    operation: str
    request: httpx.Request
    response: httpx.Response


class SpecRequest:
    """An httpx request seen by openapi-core, as if sent to Lago Cloud."""

    def __init__(self, request: httpx.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = SPEC_HOST
        self.path = url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "application/json")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qs(url.query)),
            header=Headers(dict(request.headers)),
            cookie=ImmutableMultiDict(),
        )


class SpecResponse:
    """An httpx response seen by openapi-core."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(dict(response.headers))
        self.content_type = response.headers.get("content-type", "")
        self.data = response.content


@dataclass(frozen=True)
class Deviation:
    """A check skipped because the spec contradicts the real server."""

    field: str
    """Regex on the dotted field path, list indices written as ``*``."""
    message: str
    """Regex on the schema validator's message."""
    reason: str


SPEC_DEVIATIONS = (
    Deviation(
        r"(^|\.)expression$",
        "None is not of type",
        "Lago serializes a metric without an expression as null (§1.2); the spec "
        "types it as a non-null string.",
    ),
    Deviation(
        r"^plans?(\.\*)?\.(invoice_display_name|description|trial_period)$",
        "None is not of type",
        "Unset plan fields are null in Lago's PlanSerializer (§2.2); the spec "
        "types them as non-null.",
    ),
    Deviation(
        r"(^|\.)on_termination_credit_note$",
        "None is not one of",
        "The spec types the field as nullable but leaves null out of its enum; "
        "Lago sends null for plans paid in arrears.",
    ),
    Deviation(
        r"(^|\.)properties\.[^.]+$",
        "is valid under each of",
        "The spec's event properties are oneOf number/integer, which no integer "
        "can satisfy; Lago accepts integers (§4.2).",
    ),
    Deviation(
        r"charges_usage\.\*\.filters\.\*\.(invoice_display_name|values)$",
        "None is not of type",
        "The default bucket of current usage has values and "
        "invoice_display_name null (§3.3, §5.1); the spec types them non-null.",
    ),
)
UNLISTED_STATUSES = {
    ("GET /customers/{external_customer_id}/current_usage", 405): (
        "Lago answers 405 no_active_subscription for a subscription that is not "
        "active (§5.1); the spec lists only 401 and 404."
    ),
}

OPERATIONS = (
    "POST /billable_metrics",
    "GET /billable_metrics",
    "GET /billable_metrics/{code}",
    "PUT /billable_metrics/{code}",
    "DELETE /billable_metrics/{code}",
    "POST /plans",
    "GET /plans",
    "GET /plans/{code}",
    "PUT /plans/{code}",
    "DELETE /plans/{code}",
    "GET /plans/{code}/charges",
    "POST /plans/{code}/charges",
    "GET /plans/{code}/charges/{charge_code}",
    "PUT /plans/{code}/charges/{charge_code}",
    "DELETE /plans/{code}/charges/{charge_code}",
    "GET /plans/{code}/charges/{charge_code}/filters",
    "POST /plans/{code}/charges/{charge_code}/filters",
    "GET /plans/{code}/charges/{charge_code}/filters/{filter_id}",
    "PUT /plans/{code}/charges/{charge_code}/filters/{filter_id}",
    "DELETE /plans/{code}/charges/{charge_code}/filters/{filter_id}",
    "POST /customers",
    "GET /customers",
    "GET /customers/{external_customer_id}",
    "DELETE /customers/{external_customer_id}",
    "GET /customers/{external_customer_id}/current_usage",
    "POST /subscriptions",
    "GET /subscriptions",
    "GET /subscriptions/{external_id}",
    "DELETE /subscriptions/{external_id}",
    "POST /events",
    "POST /events/batch",
    "GET /events",
    "GET /events/{transaction_id}",
)


def _operation(request: httpx.Request) -> str:
    path = request.url.path.removeprefix("/api/v1")
    for operation in OPERATIONS:
        method, template = operation.split(" ")
        pattern = re.sub(r"\{[^}]+\}", "[^/]+", template)
        if method == request.method and re.fullmatch(pattern, path):
            if "{" in template and path.endswith("/batch"):
                continue
            return operation
    raise AssertionError(f"The scenario called {request.method} {path}, not listed.")


@dataclass
class Recorded:
    """Every exchange of the scenario; ``invalid`` ones were meant to be bad."""

    exchanges: list[Exchange]
    invalid: set[int]


def _recording_client(
    server: EmulatorServer, record: Recorded, *, key: bool
) -> httpx.Client:
    def keep(response: httpx.Response) -> None:
        response.read()
        exchange = Exchange(_operation(response.request), response.request, response)
        record.exchanges.append(exchange)

    return httpx.Client(
        base_url=server.api_url,
        headers={"Authorization": "Bearer contract"} if key else {},
        event_hooks={"response": [keep]},
    )


@pytest.fixture(scope="module")
def spec() -> Any:
    return OpenAPI.from_file_path(str(SPEC_PATH))


@pytest.fixture(scope="module")
def recorded() -> Iterator[Recorded]:
    record = Recorded([], set())
    with running_emulator() as server:
        with _recording_client(server, record, key=True) as api:
            _happy_paths(api)
        with _recording_client(server, record, key=True) as api:
            start = len(record.exchanges)
            _error_paths(api)
            record.invalid.update(range(start, len(record.exchanges)))
        with _recording_client(server, record, key=False) as anonymous:
            record.invalid.add(len(record.exchanges))
            anonymous.get("/plans")
    yield record


def _happy_paths(api: httpx.Client) -> None:
    metric = create_metric(api)
    ok(api.get("/billable_metrics/llm_tokens"))
    ok(api.get("/billable_metrics", params={"page": 1, "per_page": 10}))
    ok(api.put("/billable_metrics/llm_tokens", json={"billable_metric": {"name": "T"}}))
    filters = [price({"model": ["gpt-4o"], "type": ["input"]}, package("2.50", 1000))]
    plan = create_plan(api, [charge(metric, package("1.00", 1000), filters)])
    ok(api.get("/plans/pro"))
    ok(api.get("/plans"))
    charge_id = plan["charges"][0]["lago_id"]
    update = {
        "id": charge_id,
        "charge_model": "package",
        "filters": filters,
        "properties": package("1.50", 1000),
    }
    ok(api.put("/plans/pro", json={"plan": {"name": "Pro 2", "charges": [update]}}))
    _charges_sub_resource(api, metric)
    ok(
        api.post(
            "/customers", json={"customer": {"external_id": "cust_1", "name": "A"}}
        )
    )
    ok(api.get("/customers/cust_1"))
    ok(api.get("/customers"))
    subscribe(api)
    ok(api.get("/subscriptions/sub_1"))
    ok(api.get("/subscriptions", params={"external_customer_id": "cust_1"}))
    single = tokens("gpt-4o", "input", 1200)
    ok(api.post("/events", json={"event": single}))
    batch = [tokens("gpt-4o", "output", 10), event({"tokens": "12.5", "model": "x"})]
    ok(api.post("/events/batch", json={"events": batch}))
    ok(api.get(f"/events/{single['transaction_id']}"))
    ok(api.get("/events", params={"external_subscription_id": "sub_1"}))
    ok(
        api.get(
            "/customers/cust_1/current_usage",
            params={"external_subscription_id": "sub_1"},
        )
    )
    ok(api.delete("/subscriptions/sub_1"))
    ok(api.delete("/customers/cust_1"))
    ok(api.delete("/plans/pro"))
    ok(api.delete("/billable_metrics/llm_tokens"))


def _charges_sub_resource(api: httpx.Client, metric: dict[str, Any]) -> None:
    base = "/plans/pro/charges"
    created = charge(metric, package("1", 10), code="extra")
    ok(api.post(base, json={"charge": created}))
    ok(api.get(base))
    ok(api.get(f"{base}/extra"))
    ok(
        api.put(
            f"{base}/extra",
            json={
                "charge": {"charge_model": "package", "properties": package("2", 10)}
            },
        )
    )
    filters = f"{base}/extra/filters"
    new_filter = price({"model": ["gpt-4o"]}, package("3", 10))
    filter_id = ok(api.post(filters, json={"filter": new_filter}))["filter"]["lago_id"]
    ok(api.get(filters))
    ok(api.get(f"{filters}/{filter_id}"))
    ok(api.put(f"{filters}/{filter_id}", json={"filter": new_filter}))
    ok(api.delete(f"{filters}/{filter_id}"))
    ok(api.delete(f"{base}/extra"))


def _error_paths(api: httpx.Client) -> None:
    api.post("/billable_metrics", json={"billable_metric": {}})
    api.get("/billable_metrics/missing")
    api.post("/plans", json={"plan": {"name": "x", "code": "x"}})
    api.post("/events/batch", json={"events": [event({}, timestamp="2024-01-01")]})
    api.get(
        "/customers/nobody/current_usage", params={"external_subscription_id": "sub_1"}
    )
    ok(api.post("/customers", json={"customer": {"external_id": "lonely"}}))
    api.get(
        "/customers/lonely/current_usage", params={"external_subscription_id": "sub_1"}
    )


def _field(path: Any) -> str:
    return ".".join("*" if isinstance(part, int) else str(part) for part in path)


def _schema_errors(error: Exception) -> list[Any]:
    for candidate in (error, error.__cause__):
        found = getattr(candidate, "schema_errors", None)
        if found:
            return list(found)
    return []


def _deviation(schema_error: Any) -> Deviation | None:
    field = _field(schema_error.absolute_path)
    for rule in SPEC_DEVIATIONS:
        if re.search(rule.field, field) and re.search(
            rule.message, schema_error.message
        ):
            return rule
    return None


def _problems(error: Exception) -> list[str]:
    """The validation errors not explained by a documented spec deviation."""
    schema_errors = _schema_errors(error)
    if not schema_errors:
        return [f"{type(error).__name__}: {error}"]
    return [
        f"{_field(item.absolute_path)}: {item.message}"
        for item in schema_errors
        if _deviation(item) is None
    ]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_exchanges_validate_against_the_spec(
    spec: Any, recorded: Recorded, operation: str
) -> None:
    mine = [
        (index, exchange)
        for index, exchange in enumerate(recorded.exchanges)
        if exchange.operation == operation
    ]
    assert mine, f"The scenario never called {operation}."
    problems: list[str] = []
    for index, exchange in mine:
        request = SpecRequest(exchange.request)
        status = exchange.response.status_code
        if index not in recorded.invalid:
            problems += _describe("request", spec.iter_request_errors(request))
        if (operation, status) in UNLISTED_STATUSES:
            continue
        response = SpecResponse(exchange.response)
        errors = spec.iter_response_errors(request, response)
        problems += _describe(f"{status} response", errors)

    assert problems == []


def _describe(what: str, errors: Iterable[Exception]) -> list[str]:
    return [f"{what}: {problem}" for error in errors for problem in _problems(error)]


def test_every_spec_deviation_is_still_needed(spec: Any, recorded: Recorded) -> None:
    """A deviation the scenario never triggers is stale and must be removed."""
    seen: set[str] = set()
    for index, exchange in enumerate(recorded.exchanges):
        request = SpecRequest(exchange.request)
        errors = list(
            spec.iter_response_errors(request, SpecResponse(exchange.response))
        )
        if index not in recorded.invalid:
            errors += spec.iter_request_errors(request)
        for error in errors:
            for schema_error in _schema_errors(error):
                rule = _deviation(schema_error)
                if rule is not None:
                    seen.add(rule.field)

    assert {rule.field for rule in SPEC_DEVIATIONS} <= seen
