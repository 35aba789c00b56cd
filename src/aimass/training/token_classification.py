"""Token classification (named-entity recognition) on an encoder, from BIO-tagged tokens.

``finetune`` (the default) trains every weight; ``features`` trains the tagging head
alone on the frozen encoder's cached hidden states (:mod:`aimass.training.token_features`).
With differential privacy (``--dp``) fine-tuning trains every weight but the token
embeddings by DP-SGD, one example per sentence (see
:meth:`ExampleTask.private_examples`: its first window); in features mode, the head alone.

Label alignment to sub-words: a dataset token split into several sub-words
labels every one of them — the first with the token's tag, the rest with the
``I-`` form of it (``B-PER`` → ``I-PER``; ``O`` stays ``O``) — so the model
learns a tag for any sub-word and serving can read entities off whatever words
the tokenizer finds in raw text. Evaluation reads the prediction of each
dataset token's *first* sub-word and scores entities (type, start and end must
all match) with precision, recall and F1, micro-averaged as seqeval does.

A sentence longer than ``max_length`` becomes several overlapping windows
(:func:`aimass.models.text.window_stride` tokens shared), exactly as serving
reads it: training learns from every window, and evaluation takes each word's
tag from the first window that holds its first sub-word, so the scores are
those of the served model on whole sentences, not of a truncated prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from aimass.data.tables import SplitData
from aimass.errors import InvalidArgument
from aimass.metrics import entity_metrics
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.models.text import window_stride
from aimass.training.examples import IGNORE, Example, ExampleTask, Tracker, scratch_base
from aimass.training.tasks import TrainInputs, register_task

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["EntityScores", "TokenClassificationTask", "continuation_tag"]


def continuation_tag(tag: str) -> str:
    """The tag of a word's later sub-words: ``B-X`` → ``I-X``, others unchanged."""
    return "I-" + tag[2:] if tag.startswith("B-") else tag


class EntityScores(Tracker):
    """Entity-level F1 of the first sub-word tags, per sentence.

    ``true``/``pred`` map a sentence's row number to its word tags; the windows
    of one sentence may arrive in any batch and any order, and each fills in the
    words it owns (see :meth:`TokenClassificationTask.encode`).
    """

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.true: dict[int, list[str]] = {}
        self.pred: dict[int, list[str]] = {}

    def update(self, examples: list[Example], batch: dict[str, torch.Tensor], logits: Any) -> None:
        predicted = logits.argmax(-1).cpu()
        for row, example in enumerate(examples):
            sentence = example["row"][0]
            if sentence not in self.true:
                self.true[sentence] = [self.labels[i] for i in example["gold"]]
                self.pred[sentence] = ["O"] * len(example["gold"])
            found = self.pred[sentence]
            for position, word in zip(example["firsts"], example["words"], strict=True):
                found[word] = self.labels[int(predicted[row, position])]

    def tags(self) -> list[list[str]]:
        """Predicted word tags of every sentence seen, by row number."""
        return [self.pred[row] for row in sorted(self.pred)]

    def result(self) -> dict[str, Any]:
        rows = sorted(self.true)
        return entity_metrics([self.true[r] for r in rows], [self.pred[r] for r in rows])


class TokenClassificationTask(ExampleTask):
    """BIO tagging of tokens (NER) with a linear head over an encoder."""

    name = "token-classification"
    description = "named-entity recognition: one BIO tag per token, entity-level F1"
    families = ("encoder",)
    kinds = ("tokens",)
    metric = "f1"
    greater_is_better = True
    supports_privacy = True
    supports_lora = True
    adapts_backbone = True  # with LoRA the new tagging head trains in full
    modes = ("finetune", "features")
    privacy_unit = "sentence (a dataset row; its first window under DP)"

    def __init__(self) -> None:
        self.labels: list[str] = []

    def defaults(self, base_provenance: dict[str, Any]) -> dict[str, Any]:
        lr = 1e-3 if scratch_base(base_provenance) else 5e-5
        return {"lr": lr, "batch_size": 16, "epochs": 3, "warmup_ratio": 0.1}

    def check_dataset(self, schema: Any, stats: dict[str, Any]) -> None:
        if not stats.get("entity_types"):
            raise InvalidArgument("the dataset has no entities (every tag is O); nothing to learn")

    def load(self, inputs: TrainInputs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        self.labels = list(inputs.stats["classes"])
        tokenizer = load_tokenizer(inputs.base_dir)
        if not tokenizer.is_fast:
            raise InvalidArgument("token classification needs a fast tokenizer (tokenizer.json)")
        model = load_pretrained(
            inputs.base_dir,
            family="encoder-tokens",
            num_labels=len(self.labels),
            id2label=dict(enumerate(self.labels)),
            label2id={label: i for i, label in enumerate(self.labels)},
        )
        return model, tokenizer

    def restore(
        self,
        task_config: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
    ) -> None:
        self.labels = list(task_config["labels"])

    def encode(
        self, split: SplitData, tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> list[Example]:
        if split.tokens is None or split.tags is None:
            return []
        index = {label: i for i, label in enumerate(self.labels)}
        out = tokenizer(
            split.tokens,
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            stride=window_stride(max_length),
            return_overflowing_tokens=True,
        )
        golds = [[index[t] for t in tags] for tags in split.tags]
        examples = []
        owned: dict[int, set[int]] = {}  # row → words whose first sub-word a window holds
        for window, row in enumerate(out["overflow_to_sample_mapping"]):
            tags = split.tags[row]
            claimed = owned.setdefault(row, set())
            labels, firsts, words, previous = [], [], [], None
            for position, word in enumerate(out.word_ids(window)):
                if word is None:
                    labels.append(IGNORE)
                elif word != previous:
                    labels.append(index[tags[word]])
                    if word not in claimed:
                        claimed.add(word)
                        firsts.append(position)
                        words.append(word)
                else:
                    labels.append(index[continuation_tag(tags[word])])
                previous = word
            examples.append(
                {
                    "input_ids": out["input_ids"][window],
                    "labels": labels,
                    "row": [row],
                    "firsts": firsts,
                    "words": words,
                    "gold": golds[row],
                }
            )
        return examples

    def tracker(self, tokenizer: PreTrainedTokenizerBase) -> Tracker:
        return EntityScores(self.labels)

    def task_config(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, Any]:
        return {**super().task_config(tokenizer, max_length), "labels": self.labels}


register_task(TokenClassificationTask())
