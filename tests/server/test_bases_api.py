"""Bases made from a model or cut from a base, over the API, the SDK and the remote CLI."""

from __future__ import annotations

import functools
import json

import pytest
from typer.testing import CliRunner

from aimass.client import Client
from aimass.errors import InvalidArgument, NotFound
from tests.server.conftest import make_key
from tests.server.test_trust_api import through

P = "/v1/projects/default"


def test_a_trained_model_becomes_a_base(client, admin):
    body = {"model": "sentiment@production", "name": "sentiment-encoder"}
    r = client.post(f"{P}/bases:from-model", headers=admin, json=body)
    assert r.status_code == 201, r.text
    base = r.json()
    assert base["created"] is True and base["family"] == "encoder"
    assert base["provenance"]["source"] == "model" and base["provenance"]["model"] == "sentiment@1"
    again = client.post(f"{P}/bases:from-model", headers=admin, json=body).json()
    assert again["created"] is False and again["version"] == base["version"]
    missing = client.post(f"{P}/bases:from-model", headers=admin, json={**body, "model": "ghost@1"})
    assert missing.status_code == 404 and "ghost" in missing.json()["error"]["message"]


def test_a_base_is_cut_to_fewer_layers(client, admin):
    body = {"base": "tiny", "name": "tiny-1", "layers": 1}
    r = client.post(f"{P}/bases:shrink", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["provenance"]["layers"] == [0] and r.json()["created"] is True
    too_many = client.post(f"{P}/bases:shrink", headers=admin, json={**body, "layers": 9})
    assert too_many.status_code == 400 and "layers" in too_many.json()["error"]["message"]
    for bad in ({"pick": "middle"}, {"name": "../up"}, {"layers": 0}):
        refused = client.post(f"{P}/bases:shrink", headers=admin, json={**body, **bad})
        assert refused.status_code == 400, bad
        assert refused.json()["error"]["code"] in ("INVALID_ARGUMENT", "INVALID_NAME"), bad


def test_making_a_base_needs_models_write(client, admin):
    reader = make_key(client, admin, ["read"], name="reader")
    body = {"base": "tiny", "name": "tiny-r", "layers": 1}
    assert client.post(f"{P}/bases:shrink", headers=reader, json=body).status_code == 403
    shown = {"model": "sentiment@1", "name": "sent-r"}
    assert client.post(f"{P}/bases:from-model", headers=reader, json=shown).status_code == 403
    names = [b["name"] for b in client.get(f"{P}/bases", headers=admin).json()]
    assert "tiny-r" not in names and "sent-r" not in names


def test_the_sdk_and_the_remote_cli_make_bases(client, admin, monkeypatch):
    key = admin["Authorization"].split()[1]
    with Client("http://localhost", key, transport=through(client)) as sdk:
        made = sdk.bases.from_model("sentiment@1", name="sdk-encoder")
        assert made.created and made.provenance["model"] == "sentiment@1"
        cut = sdk.bases.shrink("tiny", name="sdk-tiny", layers=1, pick="spread")
        assert cut.provenance["layers"] == [0] and cut.family == "encoder"
        with pytest.raises(InvalidArgument):
            sdk.bases.shrink("tiny", name="sdk-tiny", layers=1, pick="middle")
        with pytest.raises(NotFound):
            sdk.bases.from_model("ghost@1", name="x")
    from aimass.cli import app as cli

    monkeypatch.setattr(
        "aimass.client.Client", functools.partial(Client, transport=through(client))
    )
    env = {"AIMASS_URL": "http://localhost", "AIMASS_API_KEY": key}
    args = ["bases", "shrink", "tiny", "--name", "cli-tiny", "--layers", "1", "--json"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["created"] is True and out["base"]["name"] == "cli-tiny"
    result = CliRunner().invoke(
        cli, ["bases", "from-model", "sentiment@1", "-n", "cli-enc"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "sentiment@1" in result.output and "encoder" in result.output
