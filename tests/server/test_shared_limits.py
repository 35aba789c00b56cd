"""Limits shared by the servers on one database (``AIMASS_SHARED_RATE_LIMITS``,
``AIMASS_SHARED_CONCURRENCY_LIMITS``): two apps on one home stand for two ``aimass serve``
behind a load balancer. Without the settings each counts its own, so a client spreading
its guesses (or its concurrent calls) gets the limit per server."""

from __future__ import annotations

import time

from tests.security.conftest import WRONG

GUESSING = {"auth_failures_per_address": "4/minute", "auth_failures_per_key": "100/minute"}


def _fresh_counts(client):
    client.app.state.aimass.workspace.store.rates.reset()


def test_two_servers_share_the_count_of_failed_authentications(client_with, admin):
    one, two = (client_with(shared_rate_limits=True, **GUESSING) for _ in range(2))
    _fresh_counts(one)
    for client in (one, two, one, two):
        assert client.get("/v1/whoami", headers=WRONG).status_code == 401
    for client in (one, two):
        r = client.get("/v1/whoami", headers=WRONG)
        assert r.status_code == 429, r.text
        assert "AIMASS_AUTH_FAILURES_PER_ADDRESS" in r.json()["error"]["message"]
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # The address is refused before any key is looked at, a valid one too.
        assert client.get("/v1/whoami", headers=admin).status_code == 429
    _fresh_counts(one)
    assert two.get("/v1/whoami", headers=admin).status_code == 200


def test_without_the_setting_each_server_counts_its_own(client_with, admin):
    one, two = (client_with(**GUESSING) for _ in range(2))
    for _ in range(4):
        assert one.get("/v1/whoami", headers=WRONG).status_code == 401
    assert one.get("/v1/whoami", headers=WRONG).status_code == 429
    assert two.get("/v1/whoami", headers=WRONG).status_code == 401  # the whole rate again


def test_two_servers_share_each_keys_request_rate(client_with, admin):
    one, two = (client_with(shared_rate_limits=True, requests_per_key="3/minute") for _ in range(2))
    _fresh_counts(one)
    for client in (one, two, one):
        assert client.get("/v1/whoami", headers=admin).status_code == 200
    for client in (two, one):
        r = client.get("/v1/whoami", headers=admin)
        assert r.status_code == 429 and r.json()["error"]["details"]["limit"] == "requests_per_key"
    _fresh_counts(one)


# -- calls in flight (AIMASS_SHARED_CONCURRENCY_LIMITS) --------------------------------------

PREDICT = "/v1/projects/default/models/sentiment@production:predict"


def test_two_servers_share_each_keys_calls_in_flight(client_with, admin):
    one, two = (client_with(shared_concurrency_limits=True, max_predicts_per_key=1) for _ in "12")
    key_id = one.get("/v1/whoami", headers=admin).json()["key_id"]
    slots = one.app.state.aimass.workspace.store.slots
    with one.app.state.aimass.throttle.stream(key_id, "predict"):  # a call in flight on one
        assert slots.count(f"predict:key:{key_id}") == 1
        r = two.post(PREDICT, headers=admin, json={"inputs": ["good"]})
        assert r.status_code == 429 and r.headers["retry-after"] == "1", r.text
        assert "this key on all servers" in r.json()["error"]["message"]
        assert r.json()["error"]["details"]["limit"] == "max_predicts_per_key"
        assert two.app.state.aimass.throttle.in_flight("predict", key_id) == 0  # taken back
    assert two.post(PREDICT, headers=admin, json={"inputs": ["good"]}).status_code == 200
    assert slots.count(f"predict:key:{key_id}") == 0


def test_without_the_setting_each_server_counts_its_own_calls(client_with, admin):
    one, two = (client_with(max_predicts_per_key=1) for _ in "12")
    key_id = one.get("/v1/whoami", headers=admin).json()["key_id"]
    with one.app.state.aimass.throttle.stream(key_id, "predict"):
        assert two.post(PREDICT, headers=admin, json={"inputs": ["good"]}).status_code == 200
        assert one.post(PREDICT, headers=admin, json={"inputs": ["good"]}).status_code == 429


def test_a_running_server_renews_its_leases_and_gives_them_back_when_it_stops(
    settings_for, monkeypatch
):
    from fastapi.testclient import TestClient

    from aimass.server import create_app
    from aimass.server import throttle as throttle_module

    monkeypatch.setattr(throttle_module, "LEASE_SECONDS", 0.3)  # renewed every 0.1 s
    app = create_app(settings_for(shared_concurrency_limits=True), job_workers=0)
    with TestClient(app, base_url="http://localhost"):
        state = app.state.aimass
        slots = state.workspace.store.slots
        state.throttle.acquire_stream("long-stream", "generate")
        time.sleep(0.8)  # past the lease's time to live: only renewals keep it
        assert slots.count("generate:key:long-stream") == 1
    assert slots.count("generate:key:long-stream") == 0  # the stopping server gave it back


def test_a_lease_not_given_back_goes_at_the_next_renewal_not_kept_alive(settings_for, monkeypatch):
    from fastapi.testclient import TestClient

    from aimass.errors import Unavailable
    from aimass.server import create_app
    from aimass.server import throttle as throttle_module

    monkeypatch.setattr(throttle_module, "LEASE_SECONDS", 0.3)
    app = create_app(settings_for(shared_concurrency_limits=True), job_workers=0)
    with TestClient(app, base_url="http://localhost"):
        state = app.state.aimass
        slots = state.workspace.store.slots
        real, calls = slots.release, []

        def flaky(lease):
            calls.append(lease)
            if len(calls) == 1:
                raise Unavailable("the database did not answer")
            real(lease)

        monkeypatch.setattr(slots, "release", flaky)
        state.throttle.acquire_stream("flaky", "generate")
        state.throttle.release_stream("flaky", "generate")  # the call ends either way
        assert state.throttle.in_flight("generate", "flaky") == 0
        assert slots.count("generate:key:flaky") == 1
        time.sleep(0.6)  # renewals ran: the orphan was given back, not renewed
        assert slots.count("generate:key:flaky") == 0 and len(calls) == 2
