"""The operations contract's behaviour, the same scenarios against every implementation.

tests/test_operations_contract.py holds the signatures of ``Client``,
``AsyncClient`` and ``LocalClient`` together and tests/client/test_wire_parity.py
the two HTTP clients' requests; this holds what the calls *do* (as MLflow runs one
store test suite against its SQL and REST stores): each scenario runs on a
``LocalClient`` over a fresh home and on a ``Client`` talking to a server over
another (through FastAPI's test client, one job worker), and must give the same
answers and raise the same error classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aimass.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from aimass.settings import Settings
from tests.conftest import sentiment_rows, write_jsonl

CONFIG = {"mode": "finetune", "epochs": 1, "lr": 1e-3, "batch_size": 16}


@pytest.fixture(params=["local", "http"])
def ops(request, tmp_path, tiny_bert_dir) -> Iterator[Any]:
    """One implementation of the contract on a fresh home, with the tiny base as 'tiny'."""
    settings = Settings(
        home=tmp_path / "home",
        device="cpu",
        serve_runners=0,
        job_heartbeat_seconds=0.2,
        import_dirs=[tiny_bert_dir.parent, tmp_path],
    )
    if request.param == "local":
        from aimass.workspace.local import LocalClient

        with LocalClient.open(settings) as client:
            client.bases.import_(path=str(tiny_bert_dir), name="tiny")
            yield client
        return
    from fastapi.testclient import TestClient

    from aimass.client import Client
    from aimass.server import create_app
    from tests.server.test_trust_api import through

    with TestClient(create_app(settings, job_workers=1), base_url="http://localhost") as server:
        key = (settings.home / "admin.key").read_text().strip()
        with Client("http://localhost", key, transport=through(server)) as client:
            client.bases.import_(path=str(tiny_bert_dir), name="tiny")
            yield client


def _trained(ops: Any, tmp_path: Path, *, model: str = "sentiment") -> Any:
    ops.datasets.upload(write_jsonl(tmp_path / "reviews.jsonl", sentiment_rows(60)), name="reviews")
    job = ops.jobs.submit_training(
        dataset="reviews", base="tiny", model=model, config=CONFIG, alias="production"
    )
    done = ops.jobs.wait(job.id, poll=0.05, timeout=300)
    assert done.status == "succeeded", done.error
    return ops.models.get(f"{model}@production")


def test_imports_say_whether_they_stored_something_new(ops, tmp_path):
    data = write_jsonl(tmp_path / "reviews.jsonl", sentiment_rows(60))
    first, again = (ops.datasets.upload(data, name="reviews") for _ in range(2))
    assert (first.created, again.created) == (True, False)
    assert again.version == first.version == 1
    assert [v.version for v in ops.datasets.versions("reviews")] == [1]
    assert ops.datasets.get("reviews@1").num_rows == 60
    assert [b.name for b in ops.bases.list()] == ["tiny"]
    assert [b.ref for b in ops.bases.versions("tiny")] == ["tiny@1"]
    assert ops.bases.get("tiny@1").digest == ops.bases.get("tiny").digest
    with pytest.raises(NotFound, match="nothing"):
        ops.bases.versions("nothing")
    assert "minilm" in {b.name for b in ops.bases.packaged()}


def test_a_trained_version_is_registered_served_and_aliased(ops, tmp_path):
    version = _trained(ops, tmp_path)
    assert (version.name, version.version, version.aliases) == ("sentiment", 1, ["production"])
    assert version.lineage.base == "tiny@1" and version.lineage.dataset == "reviews@1"
    assert {"accuracy"} <= set(version.metrics["test"])
    [result] = ops.predict("sentiment@production", ["good great film"])
    assert set(result) >= {"label", "score", "probabilities"}
    full = ops.predict_full("sentiment@1", ["good great film", "bad film"])
    assert full.version == 1 and len(full.predictions) == 2
    assert full.predictions[0]["label"] == result["label"]
    ops.models.set_alias("sentiment", "staging", 1)
    assert ops.models.get("sentiment@staging").version == 1
    ops.models.delete_alias("sentiment", "staging")
    with pytest.raises(NotFound):
        ops.models.get("sentiment@staging")
    assert "sentiment" in ops.models.card("sentiment@1")
    assert ops.models.verify("sentiment@1").digest == version.digest


def test_deleting_versions_of_a_dataset_a_model_and_their_base(ops, tmp_path):
    _trained(ops, tmp_path)
    with pytest.raises(Conflict, match=r"tiny@1 is the base of sentiment@1"):
        ops.bases.delete_version("tiny", 1)
    assert ops.datasets.delete_version("reviews", 1).ref == "reviews@1"
    with pytest.raises(NotFound):
        ops.datasets.get("reviews@1")
    with pytest.raises(NotFound, match="not found"):
        ops.datasets.delete_version("reviews", 1)
    # The model trained on it still serves, and its card says where its data went.
    assert ops.predict("sentiment@production", ["good great film"])[0]["label"]
    card = ops.models.card("sentiment@1")
    assert "| dataset | reviews@1 (deleted) |" in card and "deleted since" in card
    ops.models.delete_alias("sentiment", "production")
    assert ops.models.delete_version("sentiment", 1).version == 1
    assert ops.bases.delete_version("tiny", 1).ref == "tiny@1"
    assert ops.bases.list() == []
    actions = {e.action for e in ops.audit.list(limit=50)}
    assert {"datasets.delete_version", "models.delete_version", "bases.delete_version"} <= actions


def test_training_again_with_reuse_returns_the_same_version(ops, tmp_path):
    first = _trained(ops, tmp_path)
    job = ops.jobs.submit_training(
        dataset="reviews", base="tiny", model="sentiment", config=CONFIG, reuse=True
    )
    done = ops.jobs.wait(job.id, poll=0.05, timeout=60)
    assert done.result["reused"] is True and done.result["version"] == first.version
    assert [v.version for v in ops.models.versions("sentiment")] == [1]


def test_the_same_errors_come_back(ops, tmp_path):
    with pytest.raises(NotFound):
        ops.models.get("ghost@1")
    with pytest.raises(NotFound):
        ops.predict("ghost@production", ["text"])
    with pytest.raises(NotFound):
        ops.datasets.get("ghost")
    with pytest.raises(InvalidArgument):
        ops.bases.shrink("tiny", name="tiny-x", layers=1, pick="middle")
    with pytest.raises(InvalidArgument):
        ops.jobs.submit_training(dataset="ghost", model="../up", base="tiny")
    ops.projects.create("team-b")
    with pytest.raises(AlreadyExists):
        ops.projects.create("team-b")


def test_projects_and_keys(ops):
    made = ops.projects.create("team-a", description="the A team")
    assert made.name == "team-a" and ops.projects.get("team-a").description == "the A team"
    assert {"default", "team-a"} <= {p.name for p in ops.projects.list()}
    created = ops.keys.create("reader", scopes=["read"], project="team-a")
    assert created.key.startswith("aimass_") and created.record.scopes == ["read"]
    assert [k.name for k in ops.keys.list(project="team-a")] == ["reader"]
    revoked = ops.keys.revoke(created.record.id, project="team-a")
    assert revoked.revoked and ops.keys.get(created.record.id, project="team-a").revoked
    assert ops.about().commercial_use_only is False
    assert "admin" in ops.whoami().scopes
