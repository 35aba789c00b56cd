"""Predictors: batched, ordered, verified on load, cached."""

import threading

import pytest

from aimass.errors import BundleFormatError, InvalidArgument, ResourceExhausted, UnsupportedModel
from aimass.jobs.train import TrainSpec
from aimass.serving.cache import PredictorCache
from aimass.serving.predictor import load_predictor

CONFIG = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16}


@pytest.fixture
def trained(ready):
    version = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="m", config=CONFIG, alias="production")
    )
    return ready, version


def test_predictions_keep_input_order_across_batches(trained):
    ws, _ = trained
    texts = ["good great film", "bad awful movie"] * 40 + ["the film was very good and happy"]
    predictor = ws.serving.load("m@production")
    results = predictor.predict(texts, batch_size=7)
    assert [r["label"] for r in results[:4]] == ["pos", "neg", "pos", "neg"]
    assert len(results) == len(texts)
    for r in results:
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["score"] == max(r["probabilities"].values())
    single = [predictor.predict([t])[0]["probabilities"]["pos"] for t in texts[:6]]
    batched = [r["probabilities"]["pos"] for r in results[:6]]
    assert single == pytest.approx(batched, abs=1e-5)


def test_aimass_load_reads_the_environment(trained, monkeypatch):
    import aimass

    ws, version = trained
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    model = aimass.load("m@production")
    assert model.predict(["good great film"])[0]["label"] == "pos"
    assert model.digest == version.digest


@pytest.mark.parametrize("bad", ["just a string", [""], ["ok", 3], ["  "]])
def test_bad_inputs(trained, bad):
    ws, _ = trained
    with pytest.raises(InvalidArgument):
        ws.serving.predict("m", bad)


def test_limits(trained):
    ws, _ = trained
    ws.settings.max_predict_batch = 2
    with pytest.raises(ResourceExhausted, match="AIMASS_MAX_PREDICT_BATCH"):
        ws.serving.predict("m", ["a", "b", "c"])
    ws.settings.max_text_chars = 5
    with pytest.raises(InvalidArgument, match="AIMASS_MAX_TEXT_CHARS"):
        ws.serving.predict("m", ["longer than five"])


def test_a_tampered_bundle_is_refused(trained):
    ws, version = trained
    directory = ws.artifacts.resolve(version.uri)
    (directory / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(BundleFormatError):
        load_predictor(directory)


def test_a_base_bundle_is_not_a_predictor(ready):
    base = ready.bases.get("tiny")
    with pytest.raises(UnsupportedModel, match="aimass train"):
        load_predictor(ready.artifacts.resolve(base.uri))


def test_cache_loads_once_and_evicts_least_recently_used():
    cache = PredictorCache(2)
    loads = []

    def loader(key):
        def load():
            loads.append(key)
            return key

        return load

    for key in ["a", "b", "a", "c", "a", "b"]:
        assert cache.get(key, loader(key)) == key
    assert loads == ["a", "b", "c", "b"]
    assert len(cache) == 2


def test_cache_concurrent_misses_load_once():
    cache = PredictorCache(2)
    loads = []
    gate = threading.Event()

    def load():
        loads.append(1)
        gate.wait(1)
        return "x"

    threads = [threading.Thread(target=cache.get, args=("k", load)) for _ in range(5)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert len(loads) == 1
