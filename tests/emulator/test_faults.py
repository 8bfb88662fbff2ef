"""Fault injection over real HTTP."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.emulator.lago import api_client, event, ok
from tokbill.emulator import EmulatorServer, Faults
from tokbill.emulator.testing import running_emulator


def _statuses(server: EmulatorServer, count: int) -> list[int]:
    with api_client(server) as api:
        return [api.get("/plans").status_code for _ in range(count)]


def test_error_share_is_seeded_and_drawn_from_the_statuses() -> None:
    faults = Faults(error_rate=0.5, seed=7)
    with running_emulator(faults=faults) as server:
        first = _statuses(server, 60)
        server.faults.update(seed=7)
        second = _statuses(server, 60)

    assert first == second
    assert set(first) == {200, 500, 502, 503}


def test_injected_error_happens_before_any_state_change(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    lago_emulator.faults.update(error_rate=1.0, error_statuses=[503])

    response = api.post("/events", json={"event": event({})})

    assert response.status_code == 503
    assert response.json() == {"status": 503, "error": "Service Unavailable"}
    assert lago_emulator.store.events() == []


def test_rate_limit_share_sends_the_cloud_headers(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    lago_emulator.faults.update(
        rate_limit_rate=1.0,
        rate_limit_limit=500,
        rate_limit_reset_s=3,
        retry_after=True,
    )

    response = api.get("/plans")

    assert response.status_code == 429
    assert response.headers["X-RateLimit-Limit"] == "500"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.headers["X-RateLimit-Reset"] == "3"
    assert response.headers["Retry-After"] == "3"


def test_rate_limit_window_answers_429_until_lifted(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    lago_emulator.faults.update(rate_limit_for_s=30)

    limited = api.get("/plans")
    lago_emulator.faults.update(rate_limit_for_s=0)
    lifted = api.get("/plans")

    assert limited.status_code == 429
    assert 0 < int(limited.headers["X-RateLimit-Reset"]) <= 30
    assert "Retry-After" not in limited.headers
    assert lifted.status_code == 200


def test_latency_delays_one_path_without_blocking_others(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    lago_emulator.faults.update(latency_s=30.0, path_prefix="/api/v1/events")

    with pytest.raises(httpx.ReadTimeout):
        api.post("/events", json={"event": event({})}, timeout=0.3)
    # The post still waits out its latency on the server: a server that
    # slept its thread away would hold this request for as long.
    plans = api.get("/plans", timeout=10.0)

    assert plans.status_code == 200


def test_methods_limit_faults_to_writes(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    lago_emulator.faults.update(error_rate=1.0, methods=["post", "PUT"])

    read = api.get("/plans")
    written = api.post("/customers", json={"customer": {"external_id": "c1"}})

    assert read.status_code == 200
    assert written.status_code in (500, 502, 503)
    with pytest.raises(ValueError, match="wrong kind"):
        lago_emulator.faults.update(methods="POST")


def test_stalled_request_is_committed_before_the_client_times_out(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    lago_emulator.faults.update(stall_after_commit_s=2.0, stall_count=1)
    payload = {"event": event({"tokens": 1})}

    with pytest.raises(httpx.ReadTimeout):
        api.post("/events", json=payload, timeout=0.3)
    retry = api.post("/events", json=payload)

    assert len(lago_emulator.store.events()) == 1
    assert retry.json()["error_details"] == {"transaction_id": ["value_already_exist"]}
    assert lago_emulator.faults.settings.stall_count == 0


def test_a_client_giving_up_on_a_stall_is_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    faults = Faults(stall_after_commit_s=30.0, stall_count=1)
    with running_emulator(faults=faults) as server:
        with api_client(server) as api:
            with pytest.raises(httpx.ReadTimeout):
                api.post("/events", json={"event": event({})}, timeout=0.3)

    assert server.store.event_count() == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_client_leaving_before_its_body_is_read_is_logged_as_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running_emulator(faults=Faults(latency_s=30.0)) as server:
        with api_client(server) as api:
            with pytest.raises(httpx.ReadTimeout):
                api.post("/events", json={"event": event({})}, timeout=0.3)

    assert [(e.method, e.status) for e in server.requests] == [("POST", 499)]
    assert server.store.event_count() == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_faults_can_be_set_from_another_process_over_http(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    control = f"{lago_emulator.url}/_emulator/faults"
    changes = {
        "error_rate": 1,
        "error_statuses": [502],
        "path_prefix": "/api/v1/events",
    }

    set_body = httpx.post(control, json=changes).json()
    events = api.post("/events/batch", json={"events": [event({})]})
    plans = api.get("/plans")
    unknown = httpx.post(control, json={"explode": True})

    assert set_body["faults"]["error_statuses"] == [502]
    assert httpx.get(control).json()["faults"]["path_prefix"] == "/api/v1/events"
    assert (events.status_code, plans.status_code) == (502, 200)
    assert unknown.status_code == 422


def test_reset_endpoint_clears_state_faults_and_log(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    ok(api.post("/events", json={"event": event({})}))
    lago_emulator.faults.update(error_rate=1.0)

    httpx.post(f"{lago_emulator.url}/_emulator/reset")

    assert lago_emulator.store.events() == []
    assert lago_emulator.faults.settings.error_rate == 0
    assert len(lago_emulator.requests) == 0


def test_replacing_the_faults_object_takes_effect(
    lago_emulator: EmulatorServer, api: httpx.Client
) -> None:
    lago_emulator.faults = Faults(error_rate=1.0, error_statuses=[500])

    response = api.get("/plans")

    assert response.status_code == 500


def test_unknown_fault_setting_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="error_rat"):
        Faults(error_rat=0.5)


@pytest.mark.parametrize(
    "settings",
    [
        {"error_rate": 1.5},
        {"latency_s": -1},
        {"error_statuses": []},
        {"stall_count": "x"},
        {"path_prefix": 5},
        {"seed": [1]},
        {"retry_after": "no"},
    ],
    ids=["share", "duration", "statuses", "kind", "prefix", "seed", "flag"],
)
def test_invalid_fault_values_are_refused_and_change_nothing(
    lago_emulator: EmulatorServer, settings: dict[str, object]
) -> None:
    control = f"{lago_emulator.url}/_emulator/faults"

    response = httpx.post(control, json=settings)

    assert response.status_code == 422
    assert lago_emulator.faults.settings == Faults().settings
    with pytest.raises(ValueError, match="fault setting|must"):
        Faults(**settings)


def test_an_emulator_with_a_key_guards_its_control_endpoints_with_it() -> None:
    with running_emulator(api_key="secret") as server:
        control = f"{server.url}/_emulator/faults"
        anonymous = httpx.post(control, json={"error_rate": 1})
        anonymous_reset = httpx.post(f"{server.url}/_emulator/reset")
        settings_after = server.faults.settings.error_rate
        keyed = httpx.post(
            control,
            json={"error_rate": 1},
            headers={"Authorization": "Bearer secret"},
        )

    assert (anonymous.status_code, anonymous_reset.status_code) == (401, 401)
    assert settings_after == 0
    assert keyed.status_code == 200
    assert keyed.json()["faults"]["error_rate"] == 1
