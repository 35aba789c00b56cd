"""Token classification reads a sentence longer than ``max_length`` in overlapping windows,
in training and evaluation as in serving, so the scores cover whole sentences."""

import pytest
import torch

from aimass.data.tables import SplitData
from aimass.training.examples import IGNORE
from aimass.training.token_classification import EntityScores, TokenClassificationTask

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
MAX_LENGTH = 16


@pytest.fixture(scope="module")
def tokenizer():
    from aimass.models.tokenizer import train_tokenizer

    return train_tokenizer(
        ["江泽民访问北京和上海。李鹏会见安南。", "Alice met Bob in Paris."] * 5,
        kind="wordpiece",
        vocab_size=200,
        min_frequency=1,
    )


def sentences() -> SplitData:
    """A short sentence, and a long one whose last entities lie far past ``max_length``."""
    long = list("江泽民访问北京和上海。" * 4 + "李鹏会见安南。")
    tags = ["B-PER", "I-PER", "I-PER", "O", "O", "B-LOC", "I-LOC", "O", "B-LOC", "I-LOC", "O"] * 4
    tags += ["B-PER", "I-PER", "O", "O", "B-PER", "I-PER", "O"]
    short, short_tags = list("北京"), ["B-LOC", "I-LOC"]
    return SplitData(
        texts=["".join(short), "".join(long)],
        labels=None,
        extras={},
        tokens=[short, long],
        tags=[short_tags, tags],
    )


def encoded(tokenizer):
    task = TokenClassificationTask()
    task.labels = LABELS
    return task.encode(sentences(), tokenizer, MAX_LENGTH)


def test_a_long_sentence_becomes_windows_that_own_each_word_once(tokenizer):
    examples = encoded(tokenizer)
    split = sentences()
    assert all(len(e["input_ids"]) <= MAX_LENGTH for e in examples)
    by_row: dict[int, list[int]] = {}
    for example in examples:
        by_row.setdefault(example["row"][0], []).extend(example["words"])
        assert len(example["labels"]) == len(example["input_ids"])
        assert any(label != IGNORE for label in example["labels"])  # every window trains
    assert [e["row"][0] for e in examples].count(0) == 1
    assert [e["row"][0] for e in examples].count(1) > 2
    for row, words in by_row.items():
        assert sorted(words) == list(range(len(split.tokens[row])))


def oracle_logits(example):
    """Logits that put all weight on each position's own label (a perfect tagger)."""
    logits = torch.zeros((1, len(example["labels"]), len(LABELS)))
    for position, label in enumerate(example["labels"]):
        if label != IGNORE:
            logits[0, position, label] = 1.0
    return logits


def test_entities_past_max_length_are_scored_from_later_windows(tokenizer):
    tracker = EntityScores(LABELS)
    for example in reversed(encoded(tokenizer)):  # windows arrive in any order
        tracker.update([example], {}, oracle_logits(example))
    scores = tracker.result()
    assert scores["entities"] == 1 + 3 * 4 + 2
    assert scores["f1"] == 1.0
    assert tracker.tags() == sentences().tags


def test_a_window_missing_its_words_leaves_them_o(tokenizer):
    """Scoring without a sentence's later windows misses their entities (the old truncation)."""
    tracker = EntityScores(LABELS)
    seen: set[int] = set()
    for example in encoded(tokenizer):
        if example["row"][0] in seen:
            continue
        seen.add(example["row"][0])
        tracker.update([example], {}, oracle_logits(example))
    assert tracker.result()["per_type"]["PER"]["recall"] < 0.5
