"""Slow end-to-end tests of pre-training, generation and NER on real data and weights.

All of them take minutes, so ``make test-all`` runs them (``make test`` keeps
the packaged weights' digest checks and the MiniLM paths): SmolLM2 converted
from its GGUF, tuned on instruction pairs and generating; a tiny BERT
pre-trained from scratch on the Chinese reviews; MiniLM fine-tuned for NER on
WNUT-16; and the Gemma-3 base converted from its GGUF and generating Chinese.
"""

import json

import pytest

from aimass.jobs.train import TrainSpec
from aimass.serving.predictor import load_predictor
from tests.conftest import write_jsonl

CAPITALS = {
    "France": "Paris",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Germany": "Berlin",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Austria": "Vienna",
    "Poland": "Warsaw",
    "Greece": "Athens",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Denmark": "Copenhagen",
    "Hungary": "Budapest",
    "Belgium": "Brussels",
    "Egypt": "Cairo",
    "Japan": "Tokyo",
    "China": "Beijing",
    "India": "New Delhi",
    "Canada": "Ottawa",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Chile": "Santiago",
    "Cuba": "Havana",
}


@pytest.mark.long
def test_pretrain_tiny_bert_from_scratch_on_chinese_reviews(workspace):
    workspace.datasets.import_sample("chinese-reviews")
    tokenizer, _ = workspace.bases.train_tokenizer("chinese-reviews", name="zh", vocab_size=8000)
    assert tokenizer.provenance["coverage"]["unk_rate"] < 0.005  # no flood of [UNK]
    workspace.bases.create_scratch("zh-bert", architecture="bert", tokenizer="zh", preset="tiny")
    version = workspace.jobs.train(
        TrainSpec(
            dataset="chinese-reviews",
            base="zh-bert",
            model="zh-mlm",
            config={
                "task": "masked-lm",
                "epochs": 1,
                "batch_size": 32,
                "lr": 1e-3,
                "max_length": 64,
                "max_train_rows": 4000,
            },
        )
    )
    start = version.metrics["initial_validation"]["loss"]
    end = version.metrics["validation"]["loss"]
    print(f"held-out MLM loss {start:.3f} -> {end:.3f}", json.dumps(version.metrics["validation"]))
    assert end < 0.75 * start
    assert version.metrics["validation"]["masked_accuracy"] > 0.02  # chance is 1/8000


@pytest.mark.long
def test_smollm2_instruction_tuning_then_generation(workspace, tmp_path):
    from aimass.data.importer import ImportOptions

    rows = [
        {"prompt": f"What is the capital of {country}?", "response": f"The capital is {city}."}
        for country, city in CAPITALS.items()
    ]
    path = write_jsonl(tmp_path / "capitals.jsonl", rows)
    workspace.datasets.import_file(
        path, name="capitals", options=ImportOptions(kind="pairs", fractions=(0.75, 0.25, 0.0))
    )
    base, _ = workspace.bases.import_("smollm2")
    assert base.family == "decoder" and base.num_parameters > 100_000_000
    version = workspace.jobs.train(
        TrainSpec(
            dataset="capitals",
            base="smollm2",
            model="capitals",
            config={"task": "causal-lm", "epochs": 1, "batch_size": 6, "lr": 1e-4},
        )
    )
    metrics = version.metrics
    print("loss", metrics["initial_validation"]["loss"], "->", metrics["validation"]["loss"])
    assert metrics["validation"]["loss"] < metrics["initial_validation"]["loss"]
    out = workspace.serving.generate("capitals", "What is the capital of Italy?", max_new_tokens=12)
    print(out)
    assert out["text"].strip() and out["usage"]["completion_tokens"] <= 12
    bundle = load_predictor(workspace.artifacts.resolve(version.uri), device="cpu")
    assert bundle.prompt_format == "chat"  # SmolLM2's tokenizer carries a chat template


@pytest.mark.long
def test_ner_on_wnut16_reports_entity_f1(workspace):
    workspace.datasets.import_sample("wnut16")
    workspace.bases.import_("minilm")
    version = workspace.jobs.train(
        TrainSpec(
            dataset="wnut16",
            base="minilm",
            model="wnut",
            config={"task": "token-classification", "epochs": 2, "lr": 1e-4, "batch_size": 16},
        )
    )
    test = version.metrics["test"]
    print("WNUT-16 entity P/R/F1", test["precision"], test["recall"], test["f1"])
    assert test["entities"] > 100
    assert test["f1"] > 0.1
    [result] = workspace.serving.predict("wnut", ["Taylor Swift played in London last night"])
    assert all({"label", "start", "end", "text", "score"} == set(e) for e in result["entities"])


@pytest.mark.long
def test_gemma3_base_converts_and_generates_chinese(workspace):
    base, _ = workspace.bases.import_("gemma3")
    assert base.architecture.startswith("gemma3") and base.family == "decoder"
    predictor = load_predictor(workspace.artifacts.resolve(base.uri), device="cpu")
    out = predictor.generate("中华人民共和国的首都是", max_new_tokens=8)
    print(out)
    assert out["usage"]["completion_tokens"] >= 1
    assert any("\u4e00" <= ch <= "\u9fff" for ch in out["text"])
