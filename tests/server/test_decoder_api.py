"""A classifier on a decoder backbone, served over HTTP, explained and evaluated."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from aimass.jobs.evaluate import EvaluateSpec
from aimass.jobs.train import TrainSpec
from aimass.server import create_app
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import sentiment_rows, write_jsonl
from tests.evaluation.conftest import QUICK
from tests.server.conftest import serve_settings
from tests.server.test_api import P
from tests.tiny_decoder import make_tiny_decoder

SPEC = TrainSpec(
    dataset="reviews",
    base="gpt",
    model="gpt-sentiment",
    config={"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16, "pooling": "last"},
    alias="production",
)


@pytest.fixture(scope="module")
def decoder_home(tmp_path_factory):
    """A home with dataset 'reviews', the causal LM base 'gpt' and model 'gpt-sentiment'."""
    home = tmp_path_factory.mktemp("decoder-served") / "home"
    ws = Workspace(Settings(home=home, device="cpu", num_threads=1))
    ws.datasets.import_file(
        write_jsonl(home.parent / "r.jsonl", sentiment_rows(160)), name="reviews"
    )
    ws.bases.import_(str(make_tiny_decoder(home.parent / "gpt")), name="gpt")
    ws.jobs.train(SPEC)
    ws.close()
    return home


@pytest.fixture
def decoder_client(decoder_home):
    app = create_app(serve_settings(decoder_home), job_workers=0)
    with TestClient(app, base_url="http://localhost") as client:
        key = (decoder_home / "admin.key").read_text().strip()
        yield client, {"Authorization": f"Bearer {key}"}


def test_decoder_model_predicts_and_explains_over_http(decoder_client):
    client, admin = decoder_client
    body = {"inputs": ["good great film", "bad awful movie", "the plot"], "explain": True}
    r = client.post(f"{P}/models/gpt-sentiment@production:predict", headers=admin, json=body)
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert [p["label"] for p in predictions[:2]] == ["pos", "neg"]
    for text, prediction in zip(body["inputs"], predictions, strict=True):
        explanation = prediction["explanation"]
        assert explanation["method"] == "integrated-gradients"
        for word in explanation["words"]:
            assert text[word["start"] : word["end"]] == word["word"]
    attention = {"inputs": ["good film"], "explain": "attention"}
    r = client.post(f"{P}/models/gpt-sentiment:predict", headers=admin, json=attention)
    assert r.json()["predictions"][0]["explanation"]["method"] == "attention"


def test_decoder_model_is_evaluated_like_an_encoder_model(decoder_home):
    ws = Workspace(Settings(home=decoder_home, device="cpu", num_threads=1))
    try:
        # The memory probe (a fresh process) is covered by tests/evaluation; it costs seconds.
        options = {**QUICK, "measure_memory": False, "robustness_sample": 16}
        spec = EvaluateSpec(model="gpt-sentiment@1", dataset="reviews", options=options)
        document = json.loads(
            ws.reports.report_file(ws.jobs.evaluate(spec), fmt="json").read_text()
        )
    finally:
        ws.close()
    quality = document["sections"]["quality"]["data"]
    assert quality["accuracy"] >= 0.8
    assert len(document["sections"]["explanations"]["data"]["examples"]) == 2
