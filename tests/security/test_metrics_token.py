"""``/metrics`` names tenants (issue 13, finding 5): beyond loopback a scrape needs the
metrics token or a ``metrics`` key, refusals are throttled, tenant labels can be
turned off, and on loopback an anonymous scrape still gets tenant-free series."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from aimass.server import create_app
from aimass.server.listen import is_loopback
from aimass.server.metrics_access import MetricsGuard
from aimass.settings import Settings, load_settings

TOKEN = "scrape-" + "t" * 40
# A project and a model whose names an anonymous scrape must never see.
TENANT = ('project="acme-secret"', 'model="churn-secret"')


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def metrics_server(tmp_path) -> Iterator[Callable[..., tuple[TestClient, dict[str, str]]]]:
    """``metrics_server(**settings)``: a started app, with three predictions of a tenant's
    model recorded, and the all-projects admin key's headers."""
    opened = []

    def make(**overrides) -> tuple[TestClient, dict[str, str]]:
        home = tmp_path / f"home{len(opened)}"
        settings = Settings(home=home, device="cpu", serve_runners=0, **overrides)
        app = create_app(settings, job_workers=0)
        client = TestClient(app, base_url="http://localhost")
        client.__enter__()
        opened.append(client)
        app.state.aimass.metrics.predictions.labels("acme-secret", "churn-secret").inc(3)
        return client, bearer((home / "admin.key").read_text().strip())

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def key_with(client: TestClient, admin: dict[str, str], scopes: list[str]) -> dict[str, str]:
    r = client.post(
        "/v1/projects/default/keys", headers=admin, json={"name": "scraper", "scopes": scopes}
    )
    assert r.status_code == 201, r.text
    return bearer(r.json()["key"])


def names_tenants(text: str) -> bool:
    return any(label in text for label in TENANT)


# -- beyond loopback -------------------------------------------------------------------------


def test_beyond_loopback_anonymous_and_wrong_credentials_are_401(metrics_server):
    client, _ = metrics_server(bind_host="0.0.0.0", metrics_token=TOKEN)
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"
    assert "AIMASS_METRICS_TOKEN" in anonymous.text and "metrics scope" in anonymous.text
    assert anonymous.headers["www-authenticate"] == "Bearer"
    for headers in (
        bearer(TOKEN + "x"),
        bearer(TOKEN[:-1]),
        bearer(""),
        {"Authorization": f"Basic {TOKEN}"},
        bearer("aimass_000000000000_" + "A" * 43),  # a well-formed key that does not exist
    ):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401, headers
        assert not names_tenants(r.text)
    # A wrong token is told what /metrics takes, not that only API keys exist.
    assert "AIMASS_METRICS_TOKEN" in client.get("/metrics", headers=bearer("guess")).text


def test_beyond_loopback_the_token_and_a_metrics_key_may_scrape(metrics_server):
    client, admin = metrics_server(bind_host="::", metrics_token=TOKEN)
    by_token = client.get("/metrics", headers=bearer(TOKEN))
    assert by_token.status_code == 200
    assert 'aimass_predictions_total{model="churn-secret",project="acme-secret"} 3.0' in (
        by_token.text
    )
    # A project's metrics key may scrape, but sees no tenant's names (not even other
    # projects'); so does a project admin key.
    for scopes in (["metrics"], ["admin"]):
        r = client.get("/metrics", headers=key_with(client, admin, scopes))
        assert r.status_code == 200, scopes
        assert "aimass_predictions_total 3.0" in r.text and not names_tenants(r.text)
    # The all-projects admin key sees the per-tenant series, as before.
    assert names_tenants(client.get("/metrics", headers=admin).text)
    # A valid key without the scope is refused.
    r = client.get("/metrics", headers=key_with(client, admin, ["predict", "read"]))
    assert r.status_code == 403 and "metrics scope" in r.text


def test_beyond_loopback_without_a_token_configured_only_keys_scrape(metrics_server):
    client, admin = metrics_server(bind_host="10.1.2.3")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=bearer("anything")).status_code == 401
    assert client.get("/metrics", headers=key_with(client, admin, ["metrics"])).status_code == 200


def test_tenant_labels_off_hides_them_even_from_the_token(metrics_server):
    client, admin = metrics_server(
        bind_host="0.0.0.0", metrics_token=TOKEN, metrics_tenant_labels=False
    )
    for headers in (bearer(TOKEN), admin):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 200
        assert "aimass_predictions_total 3.0" in r.text and not names_tenants(r.text)


def test_refused_scrapes_are_throttled_and_the_token_is_then_not_compared(metrics_server):
    client, _ = metrics_server(
        bind_host="0.0.0.0", metrics_token=TOKEN, auth_failures_per_address="3/minute"
    )
    assert client.get("/metrics").status_code == 401
    for _ in range(2):
        assert client.get("/metrics", headers=bearer("guess")).status_code == 401
    r = client.get("/metrics", headers=bearer("guess"))
    assert r.status_code == 429 and "AIMASS_AUTH_FAILURES_PER_ADDRESS" in r.text
    assert int(r.headers["retry-after"]) >= 1
    # Past the limit even the right token is refused: a guess cannot be confirmed.
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 429
    assert client.get("/metrics").status_code == 429


# -- on loopback -----------------------------------------------------------------------------


def test_on_loopback_anonymous_scrapes_get_tenant_free_series(metrics_server):
    client, admin = metrics_server(metrics_token=TOKEN)  # bind_host defaults to 127.0.0.1
    for headers in ({}, bearer("wrong"), key_with(client, admin, ["read"])):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 200
        assert "aimass_predictions_total 3.0" in r.text and not names_tenants(r.text)
    assert names_tenants(client.get("/metrics", headers=bearer(TOKEN)).text)
    assert names_tenants(client.get("/metrics", headers=admin).text)


# -- where the server listens, and the token's settings -------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("example.internal", False),
    ],
)
def test_which_hosts_are_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_a_connection_on_a_network_address_is_guarded_whatever_the_setting():
    guard = MetricsGuard(Settings(home="/nonexistent", bind_host="127.0.0.1"))
    assert not guard.guarded({"server": ("127.0.0.1", 8600)})
    assert not guard.guarded({"server": ("testserver", 80)})
    assert guard.guarded({"server": ("192.168.1.20", 8600)})
    assert MetricsGuard(Settings(home="/nonexistent", bind_host="0.0.0.0")).guarded({})


def test_the_token_is_read_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "metrics.token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("AIMASS_METRICS_TOKEN_FILE", str(secret))
    found = load_settings()
    assert found.metrics_token is not None
    assert found.metrics_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(found)
    monkeypatch.setenv("AIMASS_METRICS_TOKEN", "other")
    with pytest.raises(ValidationError, match="not both"):
        load_settings()
    monkeypatch.delenv("AIMASS_METRICS_TOKEN")
    secret.write_text("\n")
    with pytest.raises(ValidationError, match="is empty"):
        load_settings()
    secret.unlink()
    with pytest.raises(ValidationError, match="cannot read the metrics token file"):
        load_settings()


def test_a_token_from_the_file_opens_metrics(tmp_path, metrics_server):
    secret = tmp_path / "metrics.token"
    secret.write_text(TOKEN)
    client, _ = metrics_server(bind_host="0.0.0.0", metrics_token_file=secret)
    assert client.get("/metrics", headers=bearer(TOKEN)).status_code == 200
