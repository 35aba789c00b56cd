"""Guessing keys (issue 13, finding 2): failures are counted per client address and per
key id, a client past either count gets 429 with ``Retry-After`` before its key is even
looked at, and the audit log holds one row per throttling decision, not one per refusal."""

from __future__ import annotations

from tests.security.conftest import WRONG

P = "/v1/projects/default"


def throttled_decisions(client, admin):
    return client.get("/v1/audit", headers=admin, params={"action": "limit.throttled"}).json()


def test_guessing_keys_is_throttled_per_address_and_audited_once(client_with, admin):
    client = client_with(auth_failures_per_address="3/minute", auth_failures_per_key="100/minute")
    for _ in range(3):
        assert client.get("/v1/whoami", headers=WRONG).status_code == 401
    for _ in range(5):
        r = client.get("/v1/whoami", headers=WRONG)
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["type"] == "RateLimited"
        assert "AIMASS_AUTH_FAILURES_PER_ADDRESS" in r.json()["error"]["message"]
    # The address is refused before its key is looked at, even a valid one.
    assert client.get("/v1/whoami", headers=admin).status_code == 429
    # A malformed header counts as a failure too.
    assert client.post(f"{P}/datasets", headers={"Authorization": "Bearer nope"}).status_code == 429
    other = client_with(auth_failures_per_address="3/minute")
    decisions = throttled_decisions(other, admin)
    assert len(decisions) == 1, "one audit entry for the decision, not one per refusal"
    assert decisions[0]["resource"] == "address:testclient"
    assert decisions[0]["details"]["limit"] == "auth_failures_per_address"


def test_guessing_one_key_ids_secret_is_throttled_per_key_id(client_with, admin):
    client = client_with(auth_failures_per_key="2/minute", auth_failures_per_address="100/minute")
    for _ in range(2):
        assert client.get("/v1/whoami", headers=WRONG).status_code == 401
    r = client.get("/v1/whoami", headers=WRONG)
    assert r.status_code == 429 and "AIMASS_AUTH_FAILURES_PER_KEY" in r.text
    assert int(r.headers["retry-after"]) >= 1
    # Other keys from the same address still work.
    assert client.get("/v1/whoami", headers=admin).status_code == 200


def test_two_hundred_wrong_keys_write_a_bounded_number_of_audit_rows(client_with, admin):
    """The probe of finding 2: 200 wrong keys in a row were 200 × 401 and 200 audit rows."""
    client = client_with(auth_failures_per_address="10/minute", auth_failures_per_key="1000/minute")
    before = client.get("/v1/audit:verify", headers=admin).json()["rows"]
    statuses = [client.get("/v1/whoami", headers=WRONG).status_code for _ in range(200)]
    assert statuses.count(401) == 10 and statuses.count(429) == 190
    after = client_with(auth_failures_per_address="10/minute")
    rows = after.get("/v1/audit:verify", headers=admin).json()["rows"]
    # The admin key's requests above pass (GETs are not audited): only refusals and decisions.
    assert rows - before <= 10 + 1, "10 refusals and one throttling decision, not 200 rows"


def test_a_wrong_key_on_a_public_path_is_anonymous_but_still_counted(client_with, admin):
    client = client_with(auth_failures_per_key="2/minute")
    assert client.get("/healthz", headers=WRONG).status_code == 200
    assert client.get("/metrics", headers=WRONG).status_code == 200
    assert client.get("/v1/whoami", headers=WRONG).status_code == 429, "two failures counted"
    assert client.get("/healthz", headers=WRONG).status_code == 200
    url = f"{P}/models/sentiment@production:predict"
    assert client.post(url, headers=admin, json={"inputs": ["good"]}).status_code == 200
    assert 'project="' in client.get("/metrics", headers=admin).text
    assert 'project="' not in client.get("/metrics", headers=WRONG).text


def test_keyless_bodies_in_a_loop_are_throttled_and_audited_once(client_with, admin):
    """A flood of anonymous bodies (no key at all) is counted like wrong keys: after the
    per-address count it is 429, and the audit log does not grow by a row per refusal."""
    client = client_with(auth_failures_per_address="3/minute")
    audit_before = len(client.get("/v1/audit", headers=admin, params={"limit": 1000}).json())
    body = {"content": b"{}" * 50, "headers": {"Content-Type": "application/json"}}
    for _ in range(3):
        assert client.post(f"{P}/datasets", **body).status_code == 401
    for _ in range(20):
        r = client.post(f"{P}/datasets", **body)
        assert r.status_code == 429, r.text
    audit_after = client_with(auth_failures_per_address="3/minute").get(
        "/v1/audit", headers=admin, params={"limit": 1000}
    )
    grown = len(audit_after.json()) - audit_before
    assert grown <= 3 + 1 + 1, f"{grown} audit rows for 23 refusals"
