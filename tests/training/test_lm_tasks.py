"""Each token-level task trains a tiny from-scratch model: loss falls, the bundle round-trips,
predictions or generations come back."""

import pytest

from aimass.artifacts.bundle import verify_bundle
from aimass.errors import ErrorCode, InvalidArgument
from aimass.jobs.train import TrainSpec


def train(ws, dataset, base, task, **config):
    return ws.jobs.train(
        TrainSpec(dataset=dataset, base=base, model=f"{task}-m", config={"task": task, **config})
    )


def loss_fell(version, *, factor=0.9):
    start = version.metrics["initial_validation"]["loss"]
    return version.metrics["validation"]["loss"] < factor * start


def exported(ws, version, tmp_path):
    out = tmp_path / f"export-{version.name}"
    ws.models.export(version.ref, out)
    return out


def test_masked_lm_from_scratch(lm_ready, tmp_path):
    version = train(lm_ready, "text", "bert", "masked-lm", epochs=3, lr=2e-3)
    assert loss_fell(version)
    validation = version.metrics["validation"]
    assert 0 <= validation["masked_accuracy"] <= 1
    assert validation["perplexity"] == pytest.approx(2.718281828 ** validation["loss"], rel=1e-4)
    from transformers import AutoModelForMaskedLM

    AutoModelForMaskedLM.from_pretrained(exported(lm_ready, version, tmp_path))
    result = lm_ready.serving.predict(version.ref, ["the cat [MASK] on the mat"])
    assert len(result[0]["masks"][0]["candidates"]) == 5


def test_whole_word_masking_option_is_recorded(lm_ready):
    version = train(
        lm_ready, "text", "bert", "masked-lm", epochs=1, options={"whole_word_mask": True}
    )
    bundle = verify_bundle(lm_ready.artifacts.resolve(version.uri))
    assert bundle.task_config["whole_word_mask"] is True


def test_token_classification_learns_entities(lm_ready, tmp_path):
    version = train(lm_ready, "ner", "bert", "token-classification", epochs=4, lr=3e-3)
    assert loss_fell(version)
    assert version.metrics["validation"]["f1"] > version.metrics["initial_validation"]["f1"]
    assert version.metrics["test"]["f1"] >= 0.8
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(exported(lm_ready, version, tmp_path))
    assert model.config.id2label[1] == "B-LOC"
    text = "Alice Smith went to Rome"
    [result] = lm_ready.serving.predict(version.ref, [text])
    found = {(e["label"], e["text"]) for e in result["entities"]}
    assert found == {("PER", "Alice Smith"), ("LOC", "Rome")}
    for entity in result["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]
        assert 0 < entity["score"] <= 1


def test_causal_lm_instruction_tuning_generates(lm_ready, tmp_path):
    version = train(lm_ready, "pairs", "llama", "causal-lm", epochs=6, lr=3e-3)
    assert loss_fell(version, factor=0.5)
    assert len(version.metrics["samples"]) == 3
    bundle = verify_bundle(lm_ready.artifacts.resolve(version.uri))
    assert bundle.task_config["prompt_format"] == "plain"  # the tiny tokenizer has no template
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(exported(lm_ready, version, tmp_path))
    out = lm_ready.serving.generate(version.ref, "repeat cat", max_new_tokens=8)
    assert out["text"] == "cat cat"
    assert out["finish_reason"] == "stop"


def test_causal_lm_pretraining_on_text(lm_ready):
    version = train(lm_ready, "text", "llama", "causal-lm", epochs=3, lr=3e-3)
    assert loss_fell(version, factor=0.7)
    assert version.metrics["validation"]["perplexity"] < 10
    assert version.metrics["samples"][0]["generated"]


def test_seq2seq_from_scratch(lm_ready, tmp_path):
    version = train(lm_ready, "pairs", "bart", "seq2seq", epochs=8, lr=3e-3)
    assert loss_fell(version, factor=0.5)
    assert version.metrics["validation"]["token_accuracy"] > 0.5
    from transformers import AutoModelForSeq2SeqLM

    AutoModelForSeq2SeqLM.from_pretrained(exported(lm_ready, version, tmp_path))
    out = lm_ready.serving.generate(version.ref, "repeat dog", max_new_tokens=6)
    assert out["text"]


def test_gradient_accumulation_takes_fewer_steps(lm_ready):
    one = train(lm_ready, "text", "bert", "masked-lm", epochs=1, batch_size=8, max_train_rows=48)
    four = lm_ready.jobs.train(
        TrainSpec(
            dataset="text",
            base="bert",
            model="accum",
            config={
                "task": "masked-lm",
                "epochs": 1,
                "batch_size": 8,
                "grad_accum": 4,
                "max_train_rows": 48,
            },
        )
    )
    steps_one, steps_four = one.metrics["training"]["steps"], four.metrics["training"]["steps"]
    assert steps_four == -(-steps_one // 4)


def test_max_train_rows_samples_the_training_split(lm_ready):
    version = train(lm_ready, "text", "bert", "masked-lm", epochs=1, max_train_rows=30)
    assert version.metrics["training"]["train_rows"] == 30


@pytest.mark.parametrize(
    ("dataset", "base", "task", "match"),
    [
        ("text", "bert", "token-classification", "kind tokens"),
        ("pairs", "bert", "seq2seq", "family encoder-decoder"),
        ("pairs", "bert", "causal-lm", "family decoder"),
        ("text", "tok", "masked-lm", "family encoder"),
        ("ner", "bert", "classification", "kind text"),
    ],
)
def test_mismatched_task_dataset_or_base_is_refused(lm_ready, dataset, base, task, match):
    with pytest.raises(InvalidArgument, match=match) as info:
        train(lm_ready, dataset, base, task, epochs=1)
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    assert lm_ready.store.registry.list_models("default") == []


def test_language_model_tasks_only_finetune(lm_ready):
    with pytest.raises(InvalidArgument, match="not one of finetune"):
        train(lm_ready, "text", "bert", "masked-lm", mode="features")


def test_masked_lm_continues_an_encoder_base_without_a_head(workspace, tiny_bert_dir, tmp_path):
    from tests.conftest import sentiment_rows, write_jsonl

    workspace.datasets.import_file(write_jsonl(tmp_path / "s.jsonl", sentiment_rows(80)), name="s")
    workspace.bases.import_(str(tiny_bert_dir), name="tiny")
    version = train(workspace, "s", "tiny", "masked-lm", epochs=3, lr=5e-3)
    assert loss_fell(version, factor=1.0)
    assert version.lineage.config["lr"] == 5e-3
    from safetensors import safe_open

    with safe_open(workspace.artifacts.resolve(version.uri) / "model.safetensors", "pt") as f:
        assert any(k.startswith("cls.predictions") for k in f.keys())  # noqa: SIM118 (safe_open has no __iter__)  # the new MLM head


def test_causal_lm_packs_text_rows_into_blocks(lm_ready):
    rows = train(lm_ready, "text", "llama", "causal-lm", epochs=1, max_length=64)
    packed = lm_ready.jobs.train(
        TrainSpec(
            dataset="text",
            base="llama",
            model="packed",
            config={
                "task": "causal-lm",
                "epochs": 8,
                "lr": 3e-3,
                "max_length": 64,
                "options": {"pack": True},
            },
        )
    )
    # short rows end to end in blocks of 64 tokens: far fewer examples than rows
    per_epoch = packed.metrics["training"]["steps"] / 8
    assert per_epoch * 3 < rows.metrics["training"]["steps"]
    assert loss_fell(packed, factor=0.7)
    assert packed.lineage.config["options"] == {"pack": True}


def test_packing_joins_rows_and_cuts_blocks():
    from aimass.training.causal_lm import _packed

    blocks = _packed([[1, 2, 3], [4, 5], [6]], 4)
    assert [b["input_ids"] for b in blocks] == [[1, 2, 3, 4], [5, 6]]
    assert all(b["labels"] == b["input_ids"] for b in blocks)
    assert [b["input_ids"] for b in _packed([[1, 2, 3, 4, 5]], 4)] == [[1, 2, 3, 4]]


def test_masked_lm_packs_texts_into_blocks(lm_ready):
    rows = train(lm_ready, "text", "bert", "masked-lm", epochs=1, max_length=64, batch_size=4)
    packed = train(
        lm_ready,
        "text",
        "bert",
        "masked-lm",
        epochs=6,
        lr=3e-3,
        max_length=64,
        batch_size=4,
        options={"pack": True, "whole_word_mask": True},
    )
    per_epoch = packed.metrics["training"]["steps"] / 6
    assert per_epoch * 3 < rows.metrics["training"]["steps"]
    assert loss_fell(packed)
    assert packed.lineage.config["options"] == {"pack": True, "whole_word_mask": True}


def test_masked_lm_packing_keeps_words_apart():
    from aimass.training.masked_lm import _packed

    def text(ids, words):
        return {"input_ids": ids, "special": [int(w < 0) for w in words], "word_ids": words}

    blocks = _packed([text([101, 7, 8, 102], [-1, 0, 1, -1]), text([101, 9, 102], [-1, 0, -1])], 5)
    assert [b["input_ids"] for b in blocks] == [[101, 7, 8, 102, 101], [9, 102]]
    assert [b["special"] for b in blocks] == [[1, 0, 0, 1, 1], [0, 1]]
    # the second text's first word is not the first text's, and each block starts at 0
    assert [b["word_ids"] for b in blocks] == [[-1, 0, 1, -1, -1], [0, -1]]


@pytest.mark.parametrize(
    ("dataset", "base", "task", "options", "privacy", "match"),
    [
        ("text", "bert", "masked-lm", {"wwm": True}, None, "its options: mask_probability"),
        ("text", "bert", "masked-lm", {"mask_probability": 1.5}, None, "between 0 and 1"),
        ("text", "bert", "masked-lm", {"mask_probability": True}, None, "between 0 and 1"),
        ("text", "bert", "masked-lm", {"whole_word_mask": "yes"}, None, "use true or false"),
        ("text", "bert", "masked-lm", {"pack": True}, {"target_epsilon": 8}, "with --dp"),
        ("text", "llama", "causal-lm", {"pack": "yes"}, None, "use true or false"),
        ("pairs", "llama", "causal-lm", {"pack": True}, None, "kind 'pairs'"),
        ("text", "llama", "causal-lm", {"pack": True}, {"target_epsilon": 8}, "with --dp"),
        ("pairs", "bart", "seq2seq", {"pack": True}, None, "its options: none"),
        ("text", "llama", "causal-lm", ["pack"], None, "an object of task options"),
    ],
)
def test_task_options_are_checked_before_training(
    lm_ready, dataset, base, task, options, privacy, match
):
    spec = TrainSpec(
        dataset=dataset,
        base=base,
        model="m",
        config={"task": task, "epochs": 1, "options": options},
        privacy=privacy,
    )
    with pytest.raises(InvalidArgument, match=match):
        lm_ready.jobs.submit_training(spec)
    assert lm_ready.store.registry.list_models("default") == []
