"""Export over the API, the SDK and the remote CLI: a streamed, audited, verified bundle."""

from __future__ import annotations

import functools
import io
import tarfile

import pytest
from typer.testing import CliRunner

from aimass.artifacts.bundle import verify_bundle, verify_bundle_signature
from aimass.client import Client
from aimass.errors import InvalidArgument, PermissionDenied
from tests.server.conftest import make_key
from tests.server.test_trust_api import through

P = "/v1/projects/default"
EXPORT = f"{P}/models/sentiment/versions/production/export"


def test_the_export_streams_what_the_local_export_writes(app, client, admin, tmp_path):
    r = client.get(EXPORT, headers=admin)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["content-disposition"] == 'attachment; filename="sentiment-1.tar"'
    local = tmp_path / "local"
    app.state.aimass.workspace.models.export("sentiment@production", local)
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:") as archive:
        members = archive.getmembers()
        assert all(m.isreg() and "/" not in m.name for m in members)
        sent = {m.name: archive.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert sent == {p.name: p.read_bytes() for p in local.iterdir()}
    assert "aimass.sig" in sent and "model.safetensors" in sent
    assert r.headers["x-aimass-bundle-digest"] == verify_bundle(local).digest


def test_every_export_is_audited(client, admin):
    assert client.get(EXPORT, headers=admin).status_code == 200
    event = client.get("/v1/audit", headers=admin, params={"action": "models.export"}).json()[0]
    assert event["outcome"] == "ok" and event["resource"] == EXPORT
    assert event["details"]["ref"] == "sentiment@1" and event["details"]["files"] >= 4
    missing = f"{P}/models/sentiment/versions/9/export"
    assert client.get(missing, headers=admin).status_code == 404
    events = client.get("/v1/audit", headers=admin, params={"action": "models.export"}).json()
    assert events[0]["outcome"] == "NOT_FOUND"


def test_exporting_needs_models_write_on_the_model(client, admin):
    assert (
        client.get(EXPORT, headers=make_key(client, admin, ["read", "predict"])).status_code == 403
    )
    narrowed = make_key(client, admin, ["models:write:sentiment"], name="n")
    assert client.get(EXPORT, headers=narrowed).status_code == 200
    other = make_key(client, admin, ["models:write:churn"], name="o")
    assert client.get(EXPORT, headers=other).status_code == 403
    stranger = make_key(client, admin, ["admin"], project="elsewhere", name="s")
    assert client.get(EXPORT, headers=stranger).status_code == 404


def test_the_sdk_unpacks_and_checks_the_export(client, admin, tmp_path):
    key = admin["Authorization"].split()[1]
    with Client("http://localhost", key, transport=through(client)) as sdk:
        names = sdk.models.export("sentiment@production", tmp_path / "hf")
        assert names == sorted(p.name for p in (tmp_path / "hf").iterdir())
        verify_bundle(tmp_path / "hf")
        assert verify_bundle_signature(tmp_path / "hf").key_id
        with pytest.raises(InvalidArgument, match="not empty"):
            sdk.models.export("sentiment", tmp_path / "hf")
    reader = make_key(client, admin, ["read"], name="r")["Authorization"].split()[1]
    with (
        Client("http://localhost", reader, transport=through(client)) as sdk,
        pytest.raises(PermissionDenied),
    ):
        sdk.models.export("sentiment", tmp_path / "denied")
    assert not (tmp_path / "denied").exists()


def test_the_remote_cli_exports_through_the_api(client, admin, tmp_path, monkeypatch):
    from aimass.cli import app as cli

    monkeypatch.setattr(
        "aimass.client.Client", functools.partial(Client, transport=through(client))
    )
    key = admin["Authorization"].split()[1]
    env = {"AIMASS_URL": "http://localhost", "AIMASS_API_KEY": key}
    out = tmp_path / "remote"
    result = CliRunner().invoke(cli, ["models", "export", "sentiment@1", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert "exported" in result.output and "mean pooling" in " ".join(result.output.split())
    verify_bundle(out)
