"""DP-SGD for the token-level tasks: named-entity recognition (one example per sentence,
the privacy unit), causal-LM fine-tuning (one per text or pair, in full or LoRA adapters
only), masked-LM pre-training and seq2seq; every trained weight clipped and noised, the
budget recorded."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from aimass.artifacts.bundle import verify_bundle
from aimass.data.importer import ImportOptions
from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from tests.conftest import ner_rows, write_jsonl

NER = {"task": "token-classification", "epochs": 6, "lr": 3e-3, "batch_size": 32}


def train(ws, model, config, privacy=None, dataset="ner"):
    return ws.jobs.train(
        TrainSpec(dataset=dataset, base="bert", model=model, config=config, privacy=privacy)
    )


def test_a_private_ner_model_learns_and_records_its_budget(lm_ready):
    version = train(lm_ready, "ner-dp", NER, privacy={"target_epsilon": 50.0})
    record = version.privacy
    assert record is not None and 0 < record["epsilon"] <= 50.0
    assert record["trained_embeddings"] is False and record["grad_sample_mode"] == "ghost"
    assert record["privacy_unit"].startswith("sentence")
    assert record["training_examples"] == version.metrics["training"]["train_rows"]
    assert lm_ready.models.get(version.ref).privacy == record, "stored with the version"
    assert version.metrics["training"]["dp_cut_rows"] == 0
    assert version.metrics["validation"]["f1"] > version.metrics["initial_validation"]["f1"]
    [result] = lm_ready.serving.predict(version.ref, ["Alice Smith went to Rome"])
    assert isinstance(result["entities"], list)


def test_under_dp_a_sentence_is_one_example_however_many_windows_it_spans(lm_ready, tmp_path):
    rows = ner_rows(120)
    long = [
        {"tokens": a["tokens"] + b["tokens"], "tags": a["tags"] + b["tags"]}
        for a, b in zip(rows, rows[1:] + rows[:1], strict=True)
    ]
    lm_ready.datasets.import_file(
        write_jsonl(tmp_path / "long.jsonl", long),
        name="ner-long",
        options=ImportOptions(kind="tokens"),
    )
    short = {**NER, "epochs": 1, "max_length": 8}  # 10-word sentences span 2+ windows
    plain = train(lm_ready, "ner-windows", short, dataset="ner-long")
    private = train(
        lm_ready, "ner-windows-dp", short, privacy={"target_epsilon": 8.0}, dataset="ner-long"
    )
    rows = plain.metrics["training"]["train_rows"]
    assert plain.metrics["training"]["train_examples"] > rows, "windows without DP"
    assert private.metrics["training"]["train_examples"] == rows, "one per sentence under DP"
    assert private.metrics["training"]["dp_cut_rows"] == rows
    assert private.privacy["epsilon"] == pytest.approx(8.0, rel=0.02)


@pytest.mark.parametrize(
    ("config", "adapters_only"),
    [
        ({"lr": 3e-3}, False),
        ({"lr": 1e-2, "lora_rank": 4}, True),
    ],
)
def test_a_causal_lm_fine_tunes_privately_in_full_or_with_adapters(lm_ready, config, adapters_only):
    lm = {"task": "causal-lm", "epochs": 6, "batch_size": 32, **config}
    name = "lm-dp-lora" if adapters_only else "lm-dp"
    version = lm_ready.jobs.train(
        TrainSpec(
            dataset="pairs", base="llama", model=name, config=lm, privacy={"target_epsilon": 50.0}
        )
    )
    assert (
        version.metrics["validation"]["loss"] < 0.9 * version.metrics["initial_validation"]["loss"]
    )
    record = version.privacy
    assert record is not None and 0 < record["epsilon"] <= 50.0
    assert record["training_examples"] == version.metrics["training"]["train_rows"]
    assert record["trained_embeddings"] is False
    assert record["privacy_unit"] == "text or prompt/response pair (a dataset row)"
    task_config = verify_bundle(lm_ready.artifacts.resolve(version.uri)).task_config
    if adapters_only:  # exactly the adapters are clipped and noised
        assert record["trained_parameters"] == task_config["lora"]["trained_parameters"]
    else:
        assert "lora" not in task_config and record["trained_parameters"] > 100_000
    answer = lm_ready.serving.generate(version.ref, "repeat cat", max_new_tokens=4)
    assert isinstance(answer["text"], str)


def weights(ws, version):
    return load_file(str(ws.artifacts.resolve(version.uri) / "model.safetensors"))


def test_a_causal_lm_trains_its_tied_embeddings_privately_with_per_example_gradients(lm_ready):
    # The tiny Llama ties its output layer to its token table: one weight, two layers.
    lm = {"task": "causal-lm", "epochs": 6, "batch_size": 32, "lr": 3e-3}
    privacy = {"target_epsilon": 50.0, "train_embeddings": True}
    version = lm_ready.jobs.train(
        TrainSpec(dataset="pairs", base="llama", model="lm-tied", config=lm, privacy=privacy)
    )
    assert version.privacy["grad_sample_mode"] == "hooks", "ghost clipping cannot bound it"
    assert version.privacy["trained_embeddings"] is True
    assert (
        version.metrics["validation"]["loss"] < 0.9 * version.metrics["initial_validation"]["loss"]
    )
    with pytest.raises(InvalidArgument, match="cannot train the tied weights"):
        lm_ready.jobs.train(
            TrainSpec(
                dataset="pairs",
                base="llama",
                model="lm-tied-ghost",
                config=lm,
                privacy={**privacy, "grad_sample_mode": "ghost"},
            )
        )


@pytest.mark.parametrize(("dataset", "cut"), [("text", False), ("pairs", True)])
def test_masked_lm_pre_trains_privately_one_text_per_row(lm_ready, dataset, cut):
    config = {"task": "masked-lm", "epochs": 8, "lr": 5e-3, "batch_size": 32}
    version = train(
        lm_ready, f"mlm-dp-{dataset}", config, privacy={"target_epsilon": 50.0}, dataset=dataset
    )
    record, training = version.privacy, version.metrics["training"]
    assert record is not None and 0 < record["epsilon"] <= 50.0
    assert record["grad_sample_mode"] == "ghost" and record["trained_embeddings"] is False
    assert record["privacy_unit"].startswith("text")
    # A pair is two texts but one row: under DP it gives one example, its first text.
    assert training["train_examples"] == record["training_examples"] == training["train_rows"]
    assert training["dp_cut_rows"] == (training["train_rows"] if cut else 0)
    assert version.metrics["validation"]["loss"] < version.metrics["initial_validation"]["loss"]
    trained = weights(lm_ready, version)
    [bias] = [k for k in trained if k.endswith("predictions.bias")]
    base = weights(lm_ready, lm_ready.bases.get("bert"))
    before = base.get(bias, torch.zeros_like(trained[bias]))  # a new head's bias starts at 0
    assert torch.equal(trained[bias], before), "the vocabulary bias stays frozen"


def test_seq2seq_trains_privately_with_its_position_tables_frozen(lm_ready):
    config = {"task": "seq2seq", "epochs": 8, "lr": 5e-3, "batch_size": 32}
    version = lm_ready.jobs.train(
        TrainSpec(
            dataset="pairs",
            base="bart",
            model="s2s-dp",
            config=config,
            privacy={"target_epsilon": 50.0},
        )
    )
    record = version.privacy
    assert record is not None and 0 < record["epsilon"] <= 50.0
    assert record["privacy_unit"] == "source/target pair (a dataset row)"
    assert record["training_examples"] == version.metrics["training"]["train_rows"]
    assert version.metrics["validation"]["loss"] < version.metrics["initial_validation"]["loss"]
    trained, base = weights(lm_ready, version), weights(lm_ready, lm_ready.bases.get("bart"))
    positions = [k for k in trained if "embed_positions" in k]
    assert positions and all(torch.equal(trained[k], base[k]) for k in positions)
    answer = lm_ready.serving.generate(version.ref, "repeat cat", max_new_tokens=4)
    assert isinstance(answer["text"], str)


def test_a_task_without_private_training_refuses_dp_and_names_those_with(lm_ready, monkeypatch):
    from aimass.training.tasks import get_task

    monkeypatch.setattr(get_task("masked-lm"), "supports_privacy", False)
    with pytest.raises(InvalidArgument, match="does not support differential privacy") as caught:
        train(
            lm_ready,
            "mlm-dp",
            {"task": "masked-lm"},
            privacy={"target_epsilon": 8.0},
            dataset="text",
        )
    for task in ("classification", "token-classification", "causal-lm", "seq2seq"):
        assert task in caught.value.message
    assert lm_ready.store.registry.list_models("default") == [], "nothing was trained"


@pytest.mark.parametrize("private", [False, True], ids=["plain", "dp"])
def test_ner_trains_lora_adapters_and_its_head_and_serves_them_merged(lm_ready, private):
    config = {**NER, "lr": 1e-2, "lora_rank": 4}
    privacy = {"target_epsilon": 50.0} if private else None
    version = train(lm_ready, f"ner-lora-{int(private)}", config, privacy=privacy)
    assert version.metrics["validation"]["f1"] > version.metrics["initial_validation"]["f1"]
    directory = lm_ready.artifacts.resolve(version.uri)
    bundle = verify_bundle(directory)
    adapters = bundle.task_config["lora"]["trained_parameters"]
    assert adapters > 0
    if private:  # clipped and noised: the adapters and the new tagging head, nothing else
        hidden = json.loads((directory / "config.json").read_text())["hidden_size"]
        head = len(bundle.task_config["labels"]) * (hidden + 1)  # weights and biases
        assert version.privacy["trained_parameters"] == adapters + head
    [result] = lm_ready.serving.predict(version.ref, ["Alice Smith went to Rome"])
    assert {(e["label"], e["text"]) for e in result["entities"]} == {
        ("PER", "Alice Smith"),
        ("LOC", "Rome"),
    }


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_t5_per_example_gradients_are_exact_with_its_position_buckets_frozen():
    # T5 looks its relative position bias up by query-key distance, shared by every
    # example: Opacus has no per-example gradient of it, so DP freezes it.
    from opacus.grad_sample import GradSampleModule
    from torch import nn
    from transformers import T5Config, T5ForConditionalGeneration

    from aimass.training.tasks import get_task

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=50, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2, dropout_rate=0.0
    )
    model = T5ForConditionalGeneration(config)
    model.get_input_embeddings().requires_grad_(False)
    get_task("seq2seq").freeze_for_privacy(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any("relative_attention_bias" in n for n, _ in trainable)
    model.train()
    ids, decoder, labels = (torch.randint(2, 50, (3, n)) for n in (6, 5, 5))
    wrapped = GradSampleModule(model, loss_reduction="sum")
    logits = wrapped(input_ids=ids, decoder_input_ids=decoder).logits
    nn.functional.cross_entropy(
        logits.reshape(-1, 50), labels.reshape(-1), reduction="sum"
    ).backward()
    for name, param in trainable:
        assert param.grad_sample.shape[0] == 3, name
        torch.testing.assert_close(param.grad_sample.sum(0), param.grad, atol=1e-5, rtol=1e-4)
    wrapped._close()
