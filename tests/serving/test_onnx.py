"""ONNX Runtime serving: export, int8, the parity gate, the backend choice, over HTTP."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from aimass.errors import InvalidArgument, PermissionDenied
from aimass.jobs.optimize import OptimizeSpec, parity_record, tagged_rows
from aimass.serving.onnx import choose_backend
from aimass.serving.predictor import load_predictor
from tests.conftest import TINY_FINETUNE, live_server, ner_rows, trained_workspace, write_jsonl

TEXTS = ["good great fine", "bad awful poor", "great", "awful awful bad movie", "fine"]


@pytest.fixture(scope="module")
def optimized(tmp_path_factory, tiny_bert_dir):
    """Tiny classifier 'm', regressor 'r' and tagger 'n', each optimised (graphs + parity
    attached)."""
    from aimass.data.importer import ImportOptions
    from aimass.jobs.train import TrainSpec

    root = tmp_path_factory.mktemp("onnx")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data", regression=True)
    ws.datasets.import_file(
        write_jsonl(root / "data" / "ns.jsonl", ner_rows(200)),
        name="ns",
        options=ImportOptions(kind="tokens"),
    )
    config = {**TINY_FINETUNE, "task": "token-classification", "epochs": 8, "lr": 3e-3}
    ws.jobs.train(TrainSpec(dataset="ns", base="tiny", model="n", config=config))
    for model in ("m@1", "r@1", "n@1"):
        ws.jobs.optimize(OptimizeSpec(model=model))
    yield ws
    ws.close()


def _predictor(ws, ref, backend):
    version = ws.models.get(ref)
    parity = version.metrics["serving"]
    graph = None if backend == "torch" else ws.artifacts.resolve(parity["graphs"])
    # On the CPU: the reference is torch in fp32. On a GPU torch serves in bf16 and
    # differs from the fp32 graph by ~1e-3 (seen on an H200), beyond these tolerances.
    return load_predictor(
        ws.artifacts.resolve(version.uri), device="cpu", backend=backend, graph=graph
    )


def test_parity_record_is_attached_and_names_its_files(optimized):
    version = optimized.models.get("m@1")
    parity = version.metrics["serving"]
    assert set(parity["backends"]) == {"torch", "onnx", "onnx-int8"}
    assert parity["dataset"] == "s@1" and parity["rows"] > 0
    assert parity["backends"]["onnx"]["agreement_with_torch"] == 1.0
    assert parity["recommended"] in ("onnx-int8", "onnx")
    (attachment,) = optimized.models.attachments("m@1", kind="onnx")
    graphs = optimized.artifacts.resolve(attachment.uri)
    record = json.loads((graphs / "parity.json").read_text())
    assert record["digest"] == version.digest
    for name, digest in record["files"].items():
        assert hashlib.sha256((graphs / name).read_bytes()).hexdigest() == digest
    assert {p.name for p in graphs.iterdir()} == {*record["files"], "parity.json"}


@pytest.mark.parametrize("model", ["m@1", "n@1"])
def test_int8_graphs_went_through_quantisation_pre_processing(optimized, model, tmp_path):
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from aimass.models.onnx import FP32_FILE, INT8_FILE

    parity = optimized.models.get(model).metrics["serving"]
    graphs = optimized.artifacts.resolve(parity["graphs"])
    int8 = onnx.load(str(graphs / INT8_FILE))
    marks = {p.key: p.value for p in int8.metadata_props}
    assert marks.get("onnx.quant.pre_process") == "onnxruntime.quant"
    # As many weight MatMuls quantised as without the pre-processing, in fewer nodes.
    quantize_dynamic(
        str(graphs / FP32_FILE),
        str(tmp_path / "plain.onnx"),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
    )
    plain = [node.op_type for node in onnx.load(str(tmp_path / "plain.onnx")).graph.node]
    ops = [node.op_type for node in int8.graph.node]
    assert ops.count("MatMulInteger") == plain.count("MatMulInteger") > 0
    assert len(ops) < len(plain)


def test_onnx_fp32_matches_torch_and_int8_predicts(optimized):
    torch_out = _predictor(optimized, "m@1", "torch").predict(TEXTS)
    onnx = _predictor(optimized, "m@1", "onnx")
    assert onnx.info()["backend"] == "onnx"
    for a, b in zip(torch_out, onnx.predict(TEXTS), strict=True):
        assert a["label"] == b["label"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
    int8 = _predictor(optimized, "m@1", "onnx-int8").predict(TEXTS)
    for result in int8:
        assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_regression_graph_matches_torch(optimized):
    torch_out = _predictor(optimized, "r@1", "torch").predict(TEXTS)
    onnx_out = _predictor(optimized, "r@1", "onnx").predict(TEXTS)
    assert [r["value"] for r in onnx_out] == pytest.approx(
        [r["value"] for r in torch_out], abs=1e-4
    )
    assert optimized.models.get("r@1").metrics["serving"]["drop_unit"].startswith("percent")


def test_ner_graph_tags_as_torch_does(optimized):
    texts = ["Alice Smith went to Rome", "in Paris we met Bob", "nothing here at all"]
    torch_out = _predictor(optimized, "n@1", "torch").predict(texts)
    assert any(r["entities"] for r in torch_out)  # the tagger learnt something to compare
    for backend in ("onnx", "onnx-int8"):
        served = _predictor(optimized, "n@1", backend)
        assert served.info()["backend"] == backend
        out = served.predict(texts)
        if backend == "onnx":
            for a, b in zip(torch_out, out, strict=True):
                assert [(e["label"], e["start"], e["end"]) for e in a["entities"]] == [
                    (e["label"], e["start"], e["end"]) for e in b["entities"]
                ]
                assert [e["score"] for e in a["entities"]] == pytest.approx(
                    [e["score"] for e in b["entities"]], abs=1e-4
                )
        assert all(0 <= e["score"] <= 1 for r in out for e in r["entities"])
    version = optimized.models.get("n@1")
    parity = version.metrics["serving"]
    assert parity["drop_unit"] == "entity F1 points"
    # served text with character spans scores as training scored the test split's tags
    assert parity["backends"]["torch"]["f1"] == pytest.approx(version.metrics["test"]["f1"])
    assert parity["backends"]["onnx"]["agreement_with_torch"] == 1.0
    assert parity["backends"]["onnx"]["drop"] == 0.0


def test_tagged_rows_give_character_spans():
    texts, entities = tagged_rows(
        [["Alice", "Smith", "went", "to", "Rome"], ["in", "New", "York"]],
        [["B-PER", "I-PER", "O", "O", "B-LOC"], ["O", "B-LOC", "I-LOC"]],
    )
    assert texts == ["Alice Smith went to Rome", "in New York"]
    assert entities == [[("PER", 0, 11), ("LOC", 20, 24)], [("LOC", 3, 11)]]
    assert texts[0][0:11] == "Alice Smith" and texts[1][3:11] == "New York"


def test_explanations_through_the_onnx_backend(optimized):
    onnx = _predictor(optimized, "m@1", "onnx")
    (result,) = onnx.predict(["good great fine"], explain="occlusion")
    assert [w["word"] for w in result["explanation"]["words"]] == ["good", "great", "fine"]
    (gradients,) = onnx.explain(["good great fine"], method="integrated-gradients", n_steps=4)
    assert gradients["tokens"] and gradients["target"] == result["label"]


def test_a_taggers_entities_are_explained_through_the_onnx_backend(optimized):
    text = "Alice Smith went to Paris"
    torch_ner, onnx_ner = (_predictor(optimized, "n@1", b) for b in ("torch", "onnx"))
    (found,) = onnx_ner.predict([text])
    assert found["entities"], "the tagger finds the person and the place"
    for method, options in (("occlusion", {}), ("integrated-gradients", {"n_steps": 8})):
        (on_graph,) = onnx_ner.explain([text], method=method, **options)
        (on_torch,) = torch_ner.explain([text], method=method, **options)
        assert [(e["label"], e["start"], e["end"]) for e in on_graph["entities"]] == [
            (e["label"], e["start"], e["end"]) for e in found["entities"]
        ]
        # occlusion reads the graph, integrated gradients the PyTorch model it builds
        for a, b in zip(on_graph["entities"], on_torch["entities"], strict=True):
            assert [w["score"] for w in a["words"]] == pytest.approx(
                [w["score"] for w in b["words"]], abs=1e-3
            )


def test_the_parity_gate():
    labels = ["pos", "neg"] * 100
    right = [{"label": label} for label in labels]
    one_wrong = [{"label": "neg"}, *right[1:]]  # 0.5 points below torch
    two_wrong = [{"label": "neg"}, *right[1:3], {"label": "pos"}, *right[4:]]
    speed = {"torch": 10.0, "onnx": 20.0, "onnx-int8": 30.0}
    record = parity_record(
        "classification",
        labels,
        {"torch": right, "onnx": right, "onnx-int8": one_wrong},
        speed,
        0.5,
    )
    assert record["backends"]["onnx-int8"]["drop"] == pytest.approx(0.5)
    assert record["recommended"] == "onnx-int8"
    record = parity_record(
        "classification",
        labels,
        {"torch": right, "onnx": right, "onnx-int8": two_wrong},
        speed,
        0.5,
    )
    assert record["backends"]["onnx-int8"]["passes"] is False
    assert record["recommended"] == "onnx"
    values = [{"value": v} for v in np.linspace(0, 1, 10)]
    worse = [{"value": v + 0.5} for v in np.linspace(0, 1, 10)]
    gold = [[("PER", 0, 5)], [("LOC", 3, 7)]] * 50
    found = [{"entities": [{"label": k, "start": s, "end": e} for k, s, e in row]} for row in gold]
    missed = [{"entities": []}, *found[1:]]  # 1 of 100 entities: F1 0.995, 0.5 points down
    record = parity_record(
        "token-classification",
        gold,
        {"torch": found, "onnx": found, "onnx-int8": missed},
        speed,
        0.4,
    )
    assert record["backends"]["onnx-int8"]["drop"] == pytest.approx(0.5025, abs=1e-3)
    assert record["backends"]["onnx-int8"]["agreement_with_torch"] == pytest.approx(0.99)
    assert record["recommended"] == "onnx"
    record = parity_record(
        "regression",
        list(np.linspace(0, 1, 10) + 0.1),
        {"torch": values, "onnx": worse, "onnx-int8": worse},
        speed,
        0.5,
    )
    assert record["recommended"] == "torch"


def test_choose_backend():
    parity = {"recommended": "onnx-int8"}
    assert choose_backend("auto", None) == "torch"
    assert choose_backend("auto", parity) == "onnx-int8"
    assert choose_backend("torch", parity) == "torch"
    assert choose_backend("onnx", parity) == "onnx"
    with pytest.raises(InvalidArgument, match="aimass models optimize"):
        choose_backend("onnx-int8", None)
    with pytest.raises(InvalidArgument, match="unknown serving backend"):
        choose_backend("tensorrt", parity)


def test_the_workspace_serves_what_the_setting_and_the_record_say(optimized):
    from aimass.workspace import Workspace

    version = optimized.models.get("m@1")
    recommended = version.metrics["serving"]["recommended"]
    backend, graph = optimized.serving.plan(version)
    assert backend == recommended and (graph / "model.onnx").is_file()
    assert optimized.serving.load_version(version).backend == recommended
    torch_only = Workspace(optimized.settings.model_copy(update={"serve_backend": "torch"}))
    try:
        assert torch_only.serving.plan(version) == ("torch", None)
        assert torch_only.serving.load_version(version).backend == "torch"
    finally:
        torch_only.close()


def test_optimize_refuses_a_bad_spec_and_a_missing_split(optimized):
    with pytest.raises(InvalidArgument, match="threshold"):
        OptimizeSpec(model="m@1", threshold=-1)
    with pytest.raises(InvalidArgument, match="do not match the model's"):
        optimized.jobs.submit_optimization(OptimizeSpec(model="m@1", dataset="rs", split="train"))


def test_served_over_http_with_the_onnx_backend(optimized):
    import httpx

    from aimass.client import Client

    home = optimized.settings.home
    torch_out = _predictor(optimized, "m@1", "torch").predict(TEXTS[:2])
    sentences = ["Alice Smith went to Rome", "in Paris we met Bob"]
    torch_entities = _predictor(optimized, "n@1", "torch").predict(sentences)
    server = live_server(home, serve_runners=1, serve_backend="onnx", num_threads=1)
    url, key, _app = next(server)
    try:
        with Client(url, key) as client:
            results = client.predict("m@1", TEXTS[:2])
            for a, b in zip(torch_out, results, strict=True):
                assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-4)
            tagged = client.predict("n@1", sentences)
            for a, b in zip(torch_entities, tagged, strict=True):
                assert [e["text"] for e in a["entities"]] == [e["text"] for e in b["entities"]]
            metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {key}"}).text
            for model in ("m@1", "n@1"):
                gauge = f'aimass_serve_backend{{backend="onnx",model="{model}",project="default"}}'
                assert f"{gauge} 1.0" in metrics
            reader = client.keys.create("reader", scopes=["predict", "read"])
        with Client(url, reader.key) as limited, pytest.raises(PermissionDenied, match="train"):
            limited.jobs.submit_optimization(model="m@1")
    finally:
        next(server, None)
