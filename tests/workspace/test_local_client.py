"""LocalClient: the operations contract in process, on a fresh home with a tiny base."""

from __future__ import annotations

import pytest

from aimass.errors import InvalidArgument, NotFound
from aimass.operations import ALL_PROJECTS
from aimass.settings import Settings
from aimass.workspace.local import LocalClient
from tests.conftest import sentiment_rows, write_jsonl

CONFIG = {"mode": "finetune", "epochs": 1, "lr": 1e-3, "batch_size": 16}


@pytest.fixture
def local(tmp_path, tiny_bert_dir):
    with LocalClient.open(Settings(home=tmp_path / "home", device="cpu")) as client:
        client.bases.import_(path=str(tiny_bert_dir), name="tiny")
        yield client


def test_imports_say_whether_they_stored_something_new(local, tmp_path):
    data = write_jsonl(tmp_path / "reviews.jsonl", sentiment_rows(60))
    first = local.datasets.upload(data, name="reviews")
    again = local.datasets.upload(data, name="reviews")
    assert (first.created, again.created) == (True, False)
    assert again.version == first.version == 1
    assert [v.version for v in local.datasets.versions("reviews")] == [1]
    assert local.datasets.get("reviews@1").num_rows == 60
    assert local.bases.get("tiny").name == "tiny"


def test_a_submitted_job_runs_in_process_when_waited_for(local, tmp_path):
    data = write_jsonl(tmp_path / "reviews.jsonl", sentiment_rows(60))
    local.datasets.upload(data, name="reviews")
    job = local.jobs.submit_training(
        dataset="reviews", base="tiny", model="sentiment", config=CONFIG, alias="production"
    )
    assert job.status == "queued"
    seen = []
    done = local.jobs.wait(job.id, progress=seen.append, poll=0.01)
    assert done.status == "succeeded" and seen[-1].status == "succeeded"
    assert [j.id for j in local.jobs.list()] == [job.id]
    assert local.jobs.logs(job.id)
    version = local.models.get("sentiment@production")
    assert version.version == done.result["version"]
    predictions = local.predict("sentiment@production", ["good great film"])
    full = local.predict_full("sentiment@production", ["good great film"])
    assert full.model == "sentiment" and full.version == version.version
    assert full.predictions[0]["label"] == predictions[0]["label"]
    assert "sentiment" in local.models.card("sentiment@1")
    assert local.models.verify("sentiment@1").trusted
    with pytest.raises(NotFound, match="no evaluation report"):
        local.models.report("sentiment@1", "nope")


def test_keys_are_audited_and_all_projects_keys_are_local(local):
    made = local.keys.create("ci", scopes=["predict"], predict_budget=5)
    assert made.record.project == "default" and made.key.startswith("aimass_")
    every = local.keys.create("ops", scopes=["admin"], project=ALL_PROJECTS)
    assert every.record.project is None
    assert {k.id for k in local.keys.list(project=ALL_PROJECTS)} >= {
        made.record.id,
        every.record.id,
    }
    assert [k.id for k in local.keys.list()] == [made.record.id]
    updated = local.keys.update(made.record.id, predict_budget="unlimited", output_policy="labels")
    assert updated.predict_budget is None and updated.output_policy == "labels"
    assert local.keys.revoke(every.record.id, project=ALL_PROJECTS).revoked
    actions = [e.action for e in local.audit.list(limit=10)]
    assert actions[:3] == ["keys.update", "keys.create", "keys.create"]
    assert local.audit.verify().ok
    assert local.whoami().project is None


def test_bases_need_exactly_one_source(local):
    with pytest.raises(InvalidArgument, match="exactly one"):
        local.bases.import_("minilm", path="/tmp/x")
