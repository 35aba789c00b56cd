"""AIMASS_COMMERCIAL_USE_ONLY on the server: a model made from research weights is not
served (412, the base and its license named), whatever way the request reaches it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from aimass._version import __version__
from aimass.jobs.train import TrainSpec
from aimass.server import create_app
from aimass.workspace import Workspace
from tests.conftest import sentiment_rows, write_jsonl
from tests.packaged import fake_packaged_base
from tests.server.conftest import serve_settings


def test_a_model_from_research_weights_is_not_served(tmp_path, tiny_bert_dir, monkeypatch):
    fake_packaged_base(
        tmp_path / "site",
        tiny_bert_dir,
        monkeypatch,
        name="research",
        license="research only",
        commercial_use=False,
    )
    home = tmp_path / "home"
    ws = Workspace(serve_settings(home))
    ws.datasets.import_file(write_jsonl(tmp_path / "r.jsonl", sentiment_rows(40)), name="r")
    ws.bases.import_("research")
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    config = {"mode": "finetune", "epochs": 1, "lr": 1e-3}
    ws.jobs.train(TrainSpec(dataset="r", base="research", model="m", config=config))
    ws.jobs.train(TrainSpec(dataset="r", base="tiny", model="ok", config=config))
    ws.close()

    app = create_app(serve_settings(home, commercial_use_only=True), job_workers=0)
    with TestClient(app, base_url="http://localhost") as client:
        admin = {"Authorization": f"Bearer {(home / 'admin.key').read_text().strip()}"}
        models = "/v1/projects/default/models"
        for _ in range(2):  # refused again, not only while first loading
            r = client.post(f"{models}/m@1:predict", headers=admin, json={"inputs": ["good"]})
            assert r.status_code == 412, r.text
            error = r.json()["error"]
            assert error["code"] == "FAILED_PRECONDITION"
            assert "m@1's base research@1 is not licensed for commercial use" in error["message"]
            assert "research only" in error["message"]
        r = client.post(f"{models}/ok@1:predict", headers=admin, json={"inputs": ["good"]})
        assert r.status_code == 200, r.text
        # A client learns the policy (aimass quickstart adapts to it), with a key only.
        assert client.get("/v1/about").status_code == 401
        about = client.get("/v1/about", headers=admin).json()
        assert about == {"version": __version__, "commercial_use_only": True}
        packaged = {b["name"]: b for b in client.get("/v1/packaged-bases", headers=admin).json()}
        assert packaged["research"]["commercial_use"] is False
