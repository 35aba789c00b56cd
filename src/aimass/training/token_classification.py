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

A student distilled from a registered tagger (``--teacher``) learns the
teacher's tag distribution at every position of its windows, and of the windows
of a transfer set of raw text, beside the labels
(:mod:`aimass.training.token_distill`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from aimass.data.tables import SplitData
from aimass.errors import InvalidArgument
from aimass.metrics import entity_metrics
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.models.text import text_windows, window_probabilities, window_stride
from aimass.training.distill import NO_LABEL
from aimass.training.examples import IGNORE, Example, ExampleTask, Tracker, scratch_base
from aimass.training.sequence_parts import INFERENCE_BATCH
from aimass.training.tasks import TrainInputs, register_task
from aimass.training.token_distill import TokenDistillation

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

    def agreement(self, other: EntityScores) -> float | None:
        """The share of words both trackers tagged alike (``None`` when there are none)."""
        pairs = [
            (mine, theirs)
            for row, tags in self.pred.items()
            for mine, theirs in zip(tags, other.pred.get(row, []), strict=False)
        ]
        return sum(a == b for a, b in pairs) / len(pairs) if pairs else None

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
    supports_distillation = True
    transfer_kinds = ("text", "tokens")  # raw text is read as served; a tokens set's tags unused

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.distillation: TokenDistillation | None = None  # set on a run's copy

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

    # -- distillation ----------------------------------------------------------------

    def distil(
        self,
        inputs: TrainInputs,
        train: list[Example],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
    ) -> list[Example]:
        soft, cfg = inputs.distillation, inputs.config
        assert soft is not None
        assert cfg.temperature is not None
        assert cfg.distill_alpha is not None
        self.distillation = TokenDistillation(
            soft,
            temperature=float(cfg.temperature),
            alpha=float(cfg.distill_alpha),
            max_length=max_length,
        )
        transfer = []
        # A transfer text's windows carry the rows after the labelled ones (one DP unit each).
        for row, ids, words in text_windows(tokenizer, soft.transfer_texts, max_length):
            labels = [IGNORE if word is None else NO_LABEL for word in words]
            transfer.append({"input_ids": ids, "labels": labels, "row": [len(inputs.train) + row]})
        return self.distillation.label(train + transfer)

    def distilled(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        test: list[Example],
        tested: Tracker,
        inputs: TrainInputs,
    ) -> dict[str, Any]:
        assert self.distillation is not None
        assert self.distillation.soft.windows is not None
        assert isinstance(tested, EntityScores)  # this task's tracker
        teacher = EntityScores(self.labels)
        said = self.distillation.soft.windows([e["input_ids"] for e in test])
        for example, probabilities in zip(test, said, strict=True):
            teacher.update([example], {}, torch.as_tensor(probabilities).unsqueeze(0))
        return self.distillation.report(
            student_scores=tested.result() if test else {},
            teacher_scores=teacher.result() if test else {},
            agreement=tested.agreement(teacher),
            train_rows=len(inputs.train),
            student=_tagger(model, tokenizer, self.distillation.max_length, inputs.device),
            test_texts=inputs.test.texts,
        )


def _tagger(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, max_length: int, device: Any
) -> Callable[[list[str]], list[torch.Tensor]]:
    """Raw texts → the tag probabilities of each window, as the teacher is timed: windows
    read as served, batches of 64 sorted by length."""
    pad = int(tokenizer.pad_token_id or 0)

    def forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.cpu()

    def tag(texts: list[str]) -> list[torch.Tensor]:
        windows = [ids for _, ids, _ in text_windows(tokenizer, texts, max_length)]
        return window_probabilities(forward, windows, pad, INFERENCE_BATCH)

    return tag


register_task(TokenClassificationTask())
