"""Rate limits shared by the servers on one database (``AIMASS_SHARED_RATE_LIMITS``): two
apps on one home stand for two ``aimass serve`` behind a load balancer. Without the
setting each counts its own, so a client spreading its guesses gets the limit per server."""

from __future__ import annotations

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
