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


def test_a_tokenizer_and_a_scratch_base_are_made_through_the_api(client, admin):
    body = {"dataset": "reviews", "name": "rev-tok", "kind": "bpe", "vocab_size": 300}
    r = client.post(f"{P}/bases:train-tokenizer", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["family"] == "tokenizer" and r.json()["provenance"]["dataset"] == "reviews@1"
    small = client.post(f"{P}/bases:train-tokenizer", headers=admin, json={**body, "vocab_size": 5})
    assert small.status_code == 400 and "vocabulary size 5" in small.json()["error"]["message"]
    scratch = {
        "name": "rev-gpt",
        "architecture": "llama",
        "tokenizer": "rev-tok",
        "overrides": {"max_length": 64},
    }
    r = client.post(f"{P}/bases:scratch", headers=admin, json=scratch)
    assert r.status_code == 201, r.text
    assert r.json()["family"] == "decoder" and r.json()["provenance"]["config"]["max_length"] == 64
    for bad, says in [
        ({"overrides": {"hidden_size": 100, "num_heads": 3}}, "num_heads (3) must divide"),
        (
            {"architecture": "bert", "overrides": {"hidden_size": 100, "num_heads": 3}},
            "cannot build",
        ),
        ({"overrides": {"num_layers": 10_000}}, "more than 256"),
        ({"overrides": {"colour": 1}}, "unknown llama options"),
        ({"preset": "huge"}, "preset 'huge'"),
    ]:
        refused = client.post(f"{P}/bases:scratch", headers=admin, json={**scratch, **bad})
        assert refused.status_code == 400, (bad, refused.text)
        assert says in refused.json()["error"]["message"], (bad, refused.text)


def test_a_scratch_base_over_the_parameter_budget_is_refused_before_it_exists(client_with, admin):
    client = client_with(max_scratch_parameters=100_000)
    body = {"dataset": "reviews", "name": "budget-tok", "vocab_size": 300}
    assert client.post(f"{P}/bases:train-tokenizer", headers=admin, json=body).status_code == 201
    scratch = {"name": "too-big", "architecture": "bert", "tokenizer": "budget-tok"}
    r = client.post(f"{P}/bases:scratch", headers=admin, json=scratch)
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert "more than the 100,000 AIMASS_MAX_SCRATCH_PARAMETERS allows" in message
    assert "too-big" not in [b["name"] for b in client.get(f"{P}/bases", headers=admin).json()]


def test_the_sdk_and_the_remote_cli_train_a_tokenizer_and_create_a_base(client, admin, monkeypatch):
    key = admin["Authorization"].split()[1]
    with Client("http://localhost", key, transport=through(client)) as sdk:
        tok = sdk.bases.train_tokenizer("reviews", name="sdk-tok", vocab_size=300)
        assert tok.created and tok.architecture == "wordpiece"
        base = sdk.bases.create_scratch(
            "sdk-bert", architecture="bert", tokenizer="sdk-tok", overrides={"max_length": 32}
        )
        assert base.family == "encoder" and base.provenance["tokenizer"] == "sdk-tok@1"
    from aimass.cli import app as cli

    monkeypatch.setattr(
        "aimass.client.Client", functools.partial(Client, transport=through(client))
    )
    env = {"AIMASS_URL": "http://localhost", "AIMASS_API_KEY": key}
    args = ["tokenizers", "train", "--dataset", "reviews", "-n", "cli-tok", "--vocab-size", "300"]
    result = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tokenizer"]["name"] == "cli-tok"
    args = ["bases", "scratch", "cli-bert", "--architecture", "bert", "--tokenizer", "cli-tok"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "cli-bert@1" in result.output and "preset tiny" in result.output


def test_the_packaged_bases_and_samples_are_the_servers(client, admin, monkeypatch):
    """``bases list`` and ``datasets samples`` with --url show what the server has."""
    from aimass.cli import app as cli
    from aimass.jobs.bases import list_packaged_bases

    assert client.get("/v1/packaged-bases").status_code == 401
    r = client.get("/v1/packaged-bases", headers=admin)
    assert r.status_code == 200, r.text
    listed = {b["name"]: b for b in r.json()}
    assert set(listed) == {p.name for p in list_packaged_bases()}
    assert listed["minilm"]["installed"] is True and listed["minilm"]["commercial_use"] is True
    key = admin["Authorization"].split()[1]
    with Client("http://localhost", key, transport=through(client)) as sdk:
        assert [b.model_dump(mode="json") for b in sdk.bases.packaged()] == r.json()

    # The local answers would be this machine's: fail them, so only the server can answer.
    def local_only(*args, **kwargs):
        raise AssertionError("asked the local home")

    monkeypatch.setattr("aimass.workspace._local_data.LocalBases.packaged", local_only)
    monkeypatch.setattr("aimass.workspace._local_data.LocalDatasets.samples", local_only)
    monkeypatch.setattr(
        "aimass.client.Client", functools.partial(Client, transport=through(client))
    )
    env = {"AIMASS_URL": "http://localhost", "AIMASS_API_KEY": key}
    result = CliRunner().invoke(cli, ["bases", "list", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["packaged"] == r.json()
    result = CliRunner().invoke(cli, ["datasets", "samples", "--json"], env=env)
    assert result.exit_code == 0, result.output
    samples = client.get("/v1/samples", headers=admin).json()
    assert json.loads(result.stdout) == samples and samples
