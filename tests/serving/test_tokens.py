"""The NER predictor as a plain object: spans with character offsets, long texts in windows."""

import json

import pytest

from aimass.artifacts.bundle import BundleWriter
from aimass.serving.predictor import load_predictor

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


@pytest.fixture(scope="module")
def ner(tmp_path_factory):
    """A random-weight token-classification bundle over a tokenizer with CJK characters."""
    import torch
    from transformers import BertConfig, BertForTokenClassification

    from aimass.models.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("ner")
    tokenizer = train_tokenizer(
        ["江泽民访问北京和上海。", "Alice met Bob in Paris."] * 5,
        kind="wordpiece",
        vocab_size=200,
        min_frequency=1,
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    model = BertForTokenClassification(config)
    # Bias the head so most words come out as entities: more spans to check.
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0]))
    hf = root / "hf"
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    writer = BundleWriter(root / "bundle")
    for path in hf.iterdir():
        writer.add_file(path.name, path)
    writer.finish(
        kind="model",
        architecture="bert",
        family="encoder",
        task="token-classification",
        task_config={"task": "token-classification", "labels": LABELS, "max_length": 16},
    )
    return load_predictor(root / "bundle", device="cpu")


def check_spans(text, result):
    previous_end = 0
    for entity in result["entities"]:
        assert set(entity) == {"label", "start", "end", "text", "score"}
        assert entity["label"] in ("LOC", "PER")
        assert previous_end <= entity["start"] < entity["end"] <= len(text)
        assert text[entity["start"] : entity["end"]] == entity["text"]
        assert 0 < entity["score"] <= 1
        previous_end = entity["end"]


def test_spans_carry_character_offsets(ner):
    texts = ["江泽民访问北京和上海。", "Alice met Bob in Paris.", "  Alice   met  Bob  "]
    results = ner.predict(texts)
    assert len(results) == 3
    for text, result in zip(texts, results, strict=True):
        check_spans(text, result)
    assert results[0]["entities"], "the biased head should find entities"
    # Chinese: every span covers whole characters, and is JSON-serialisable as it is
    json.dumps(results, ensure_ascii=False)


def test_long_texts_are_read_in_windows(ner):
    text = "江泽民访问北京和上海。" * 12  # far over the 16-token window
    [result] = ner.predict([text])
    check_spans(text, result)
    assert result["entities"][-1]["end"] > len(text) - 12  # the tail was read too


@pytest.mark.parametrize("batch_size", [2, 3, 32])
def test_batching_does_not_change_results(ner, batch_size):
    # Windows are batched by length, across texts: a long text's windows, short and
    # mid-length texts mix in one request, and each result must stay its own text's.
    texts = ["江泽民访问北京。", "Alice met Bob.", "江泽民访问北京和上海。" * 3, "北京"]
    together = ner.predict(texts, batch_size=batch_size)
    alone = [ner.predict([t], batch_size=1)[0] for t in texts]
    for a, b in zip(together, alone, strict=True):
        assert [(e["label"], e["start"], e["end"]) for e in a["entities"]] == [
            (e["label"], e["start"], e["end"]) for e in b["entities"]
        ]
        assert [e["score"] for e in a["entities"]] == pytest.approx(
            [e["score"] for e in b["entities"]], abs=1e-5
        )


def test_lengths_count_the_whole_text(ner):
    # The micro-batcher buckets NER inputs by these counts: Chinese text has no
    # spaces, so counting words would put every sentence in one bucket; a text
    # over max_length (16) counts every token its windows read.
    short, long = "北京", "江泽民访问北京和上海。" * 3
    assert ner.token_lengths([short, long, "Alice met Bob."]) == [
        len(short) + 2,
        len(long) + 2,
        len(ner.tokenizer("Alice met Bob.")["input_ids"]),
    ]


def test_bad_inputs(ner):
    from aimass.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        ner.predict("a string, not a list")
    with pytest.raises(InvalidArgument):
        ner.predict(["ok", ""])
