"""Masked-LM pre-training (BERT), from scratch or continued from an encoder base.

Masking is BERT's (Devlin et al. 2019, §3.1): each non-special, non-padding
token is *selected* with probability 15 %; a selected token is replaced by
``[MASK]`` with probability 80 %, by a random ordinary token with 10 %, and kept
with 10 %; the loss is taken on selected positions only. With whole-word
masking (option ``whole_word_mask``) the draw is per *word* — every sub-token
of a selected word is selected — where words are what the tokenizer's
pre-tokenizer splits (whitespace and punctuation; each CJK character is a word).

Masks are drawn afresh for every training batch from a seeded generator, and
from a fixed seed for evaluation, so every evaluation scores the same masks.
A base without an MLM head (e.g. a sentence encoder) gets a new one.

Each text is one example, cut at ``max_length``; with the option ``pack`` every
text's tokens (with its own ``[CLS]``/``[SEP]``) run end to end and are cut into
blocks of ``max_length``, as Hugging Face's ``run_mlm`` groups texts: no padding
and nothing cut off. Whole-word masking still draws per word within a block.

With a masked-LM teacher (``aimass distill``), the student also learns the
teacher's distribution over the vocabulary at every masked position of the same
masked batch (:mod:`aimass.training.lm_distill`), from the training texts and a
transfer set of more text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from aimass.data.tables import SplitData
from aimass.errors import InvalidArgument
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.training.examples import IGNORE, Example, LabelAccuracy, Tracker
from aimass.training.lm_distill import WordByWordTask
from aimass.training.tasks import (
    PACK,
    TaskOption,
    TrainInputs,
    flag_option,
    packing,
    register_task,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from aimass.training.config import TrainConfig
    from aimass.training.distill import SoftTargets

__all__ = ["MaskedLMTask", "mask_tokens"]

OPTIONS = (
    TaskOption(
        "mask_probability",
        "number",
        0.15,
        "share of tokens to predict, between 0 and 1 (BERT: 0.15)",
    ),
    TaskOption("whole_word_mask", "flag", False, "mask every sub-token of a chosen word together"),
    PACK,
)


def mask_tokens(
    input_ids: torch.Tensor,
    special: torch.Tensor,
    *,
    mask_id: int,
    random_ids: torch.Tensor,
    generator: torch.Generator,
    probability: float = 0.15,
    word_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of a padded batch.

    Args:
        input_ids: (B, T) token ids.
        special: (B, T) bool, True at special and padding positions (never selected).
        mask_id: Id of the mask token.
        random_ids: Ids a "random token" replacement draws from (ordinary tokens).
        generator: Source of randomness (seeded by the caller).
        probability: Selection probability per token (or per word).
        word_ids: (B, T) word index per token, -1 at special positions; when
            given, selection is per word (whole-word masking).

    Returns:
        ``(inputs, labels)``: the corrupted ids, and the original ids at selected
        positions with ``-100`` everywhere else.
    """
    shape = input_ids.shape
    if word_ids is None:
        draw = torch.rand(shape, generator=generator) < probability
    else:
        words = int(word_ids.max()) + 1 if word_ids.numel() else 0
        per_word = torch.rand((shape[0], max(words, 1)), generator=generator) < probability
        draw = per_word.gather(1, word_ids.clamp(min=0)) & (word_ids >= 0)
    selected = draw & ~special
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE))
    action = torch.rand(shape, generator=generator)  # < .8 mask, < .9 random, else keep
    inputs = input_ids.clone()
    inputs[selected & (action < 0.8)] = mask_id
    randomise = selected & (action >= 0.8) & (action < 0.9)
    picks = torch.randint(len(random_ids), shape, generator=generator)
    inputs[randomise] = random_ids[picks[randomise]]
    return inputs, labels


class MaskedLMTask(WordByWordTask):
    """Masked-language-model pre-training of an encoder."""

    name = "masked-lm"
    description = "masked-LM pre-training of an encoder (BERT masking, 15 % / 80-10-10)"
    families = ("encoder",)
    kinds = ("text", "tokens", "pairs")
    keys: ClassVar[tuple[str, ...]] = ("input_ids", "special", "word_ids")
    supports_privacy = True
    supports_lora = True
    transfer_kinds = ("text",)
    # With LoRA the masked-LM head trains in full (a base without one gets a new head).
    adapts_backbone = True
    privacy_unit = "text (a dataset row; the first text of a pair under DP)"
    options = OPTIONS

    def __init__(self) -> None:
        super().__init__()
        self._mask: dict[str, Any] = {}
        self.pack = False

    def check_options(self, config: TrainConfig, *, kind: str, private: bool) -> None:
        super().check_options(config, kind=kind, private=private)
        probability = config.options.get("mask_probability", 0.15)
        if (
            isinstance(probability, bool)
            or not isinstance(probability, (int, float))
            or not 0 < probability < 1
        ):
            raise InvalidArgument(
                f"--option mask_probability={probability!r}: use a number between 0 and 1 "
                "(exclusive); BERT's is 0.15",
                field="options",
            )
        flag_option(config, "whole_word_mask")
        packing(config, private=private)

    def defaults(self, base_provenance: dict[str, Any]) -> dict[str, Any]:
        return {**super().defaults(base_provenance), "batch_size": 32}

    def load(self, inputs: TrainInputs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        options = dict(inputs.config.options)  # checked before the job was queued
        probability = float(options.get("mask_probability", 0.15))
        self.pack = bool(options.get("pack", False))
        tokenizer = load_tokenizer(inputs.base_dir)
        if tokenizer.mask_token_id is None:
            raise InvalidArgument(
                f"the tokenizer of {inputs.base_dir.name} has no mask token; masked-LM needs one"
            )
        model = load_pretrained(inputs.base_dir, family="encoder-mlm")
        self._set_masking(tokenizer, probability, bool(options.get("whole_word_mask", False)))
        return model, tokenizer

    def _set_masking(
        self, tokenizer: PreTrainedTokenizerBase, probability: float, whole_word: bool
    ) -> None:
        special = set(tokenizer.all_special_ids)
        self._mask = {
            "mask_id": tokenizer.mask_token_id,
            "random_ids": torch.tensor([i for i in range(len(tokenizer)) if i not in special]),
            "probability": probability,
            "whole_word": whole_word,
        }

    def restore(
        self,
        task_config: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
    ) -> None:
        self._set_masking(
            tokenizer,
            float(task_config.get("mask_probability", 0.15)),
            bool(task_config.get("whole_word_mask", False)),
        )

    def encode(
        self, split: SplitData, tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> list[Example]:
        texts = [" ".join(t) for t in split.tokens] if split.tokens is not None else split.texts
        rows = list(range(len(texts)))
        texts = list(texts) + list(split.targets or [])
        rows += rows[: len(texts) - len(rows)]  # a pair's second text belongs to its row
        out = tokenizer(
            texts,
            truncation=not self.pack,
            max_length=None if self.pack else max_length,
            return_special_tokens_mask=True,
            verbose=False,  # a packed text longer than the model's window is cut in blocks
        )
        examples = []
        for i, ids in enumerate(out["input_ids"]):
            words = [-1 if w is None else w for w in out.word_ids(i)]
            examples.append(
                {
                    "input_ids": ids,
                    "special": out["special_tokens_mask"][i],
                    "word_ids": words,
                    "row": [rows[i]],
                }
            )
        return _packed(examples, max_length) if self.pack else examples

    def transfer_examples(
        self,
        soft: SoftTargets,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        first_row: int,
    ) -> list[Example]:
        texts = SplitData(texts=soft.transfer_texts, labels=None, extras={})
        transfer = self.encode(texts, tokenizer, max_length)
        for example in transfer:
            if "row" in example:
                example["row"] = [example["row"][0] + first_row]
        return transfer

    def freeze_for_privacy(self, model: PreTrainedModel) -> None:
        """Freeze the vocabulary bias of the output layer.

        BERT's head holds that bias itself and again as its decoder's bias: Opacus
        would sample the head module through functorch, which fails on the tied
        decoder. Like the token table (which the decoder's weight is), it is a
        vocabulary-sized vector, the most noised coordinates for the least gain.
        """
        output = model.get_output_embeddings()
        if output is not None and output.bias is not None:
            output.bias.requires_grad_(False)

    def collate(
        self, examples: Sequence[Example], pad_id: int, device: Any, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        batch = super().collate(examples, pad_id, "cpu", generator)
        special = (batch.pop("special") == 1) | (batch["attention_mask"] == 0)
        word_ids = batch.pop("word_ids")
        word_ids[batch["attention_mask"] == 0] = -1
        inputs, labels = mask_tokens(
            batch["input_ids"],
            special,
            mask_id=self._mask["mask_id"],
            random_ids=self._mask["random_ids"],
            generator=generator,
            probability=self._mask["probability"],
            word_ids=word_ids if self._mask["whole_word"] else None,
        )
        batch.update(input_ids=inputs, labels=labels)
        return {k: v.to(device) for k, v in batch.items()}

    def tracker(self, tokenizer: PreTrainedTokenizerBase) -> Tracker:
        return LabelAccuracy("masked_accuracy")

    def task_config(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, Any]:
        return {
            **super().task_config(tokenizer, max_length),
            "mask_probability": self._mask["probability"],
            "whole_word_mask": self._mask["whole_word"],
        }


def _packed(examples: list[Example], block: int) -> list[Example]:
    """The examples' tokens end to end, cut into blocks of ``block`` tokens (the last
    may be shorter).

    Word indices are renumbered so that no two texts share one and each block's
    indices start at 0: whole-word masking draws one number per word index of a block.
    """
    ids: list[int] = []
    special: list[int] = []
    words: list[int] = []
    offset = 0
    for example in examples:
        ids += example["input_ids"]
        special += example["special"]
        words += [-1 if w < 0 else w + offset for w in example["word_ids"]]
        offset += max(example["word_ids"], default=-1) + 1
    blocks = []
    for start in range(0, len(ids), block):
        part = words[start : start + block]
        first = min((w for w in part if w >= 0), default=0)
        blocks.append(
            {
                "input_ids": ids[start : start + block],
                "special": special[start : start + block],
                "word_ids": [-1 if w < 0 else w - first for w in part],
            }
        )
    return blocks


register_task(MaskedLMTask())
