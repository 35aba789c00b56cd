"""Sequence-to-sequence training of an encoder-decoder on ``source``/``target`` pairs.

The encoder reads the source (with the tokenizer's specials); the decoder
learns the target with teacher forcing: its input is the start token followed
by the target, its labels the target followed by EOS. Validation reports loss,
perplexity and teacher-forced token accuracy; after training a few held-out
sources are decoded (greedy) for the model card's sample table.

With a seq2seq teacher (``aimass distill``), the student also learns the
teacher's distribution over the vocabulary at every target position, both
teacher-forced on the same target (word-level distillation, Kim and Rush 2016;
:mod:`aimass.training.lm_distill`), from the training pairs and a transfer set
of more pairs. With sequence-level distillation (``sequence_beams``, Kim and Rush's
Seq-KD) the teacher first decodes every source, of the training pairs and of the
transfer set (which may then be plain ``text``: sources alone), and the student
learns what the teacher wrote in place of the references, word by word as above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from aimass.data.tables import SplitData
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.training.causal_lm import generation_samples
from aimass.training.examples import Example, LabelAccuracy, Tracker
from aimass.training.lm_distill import WordByWordTask
from aimass.training.tasks import TrainInputs, register_task

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


__all__ = ["Seq2SeqTask"]


class Seq2SeqTask(WordByWordTask):
    """Encoder-decoder training (summarisation, translation, rewriting)."""

    name = "seq2seq"
    description = "sequence to sequence on source/target pairs (encoder-decoder)"
    families = ("encoder-decoder",)
    kinds = ("pairs",)
    keys: ClassVar[tuple[str, ...]] = ("input_ids", "decoder_input_ids", "labels")
    supports_privacy = True
    supports_lora = True
    privacy_unit = "source/target pair (a dataset row)"

    def __init__(self) -> None:
        super().__init__()
        self._start = 0  # the decoder's start token id, read from the base's config per run

    def load(self, inputs: TrainInputs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_pretrained(inputs.base_dir, family="encoder-decoder"), load_tokenizer(
            inputs.base_dir
        )

    def encode(
        self, split: SplitData, tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> list[Example]:
        sources = tokenizer(list(split.texts), truncation=True, max_length=max_length)
        targets = tokenizer(list(split.targets or []), add_special_tokens=False)
        start, eos = self._start, tokenizer.eos_token_id
        examples = []
        for source, target in zip(sources["input_ids"], targets["input_ids"], strict=True):
            labels = [*target[: max_length - 1], eos]
            examples.append(
                {"input_ids": source, "decoder_input_ids": [start, *labels[:-1]], "labels": labels}
            )
        return examples

    def freeze_for_privacy(self, model: PreTrainedModel) -> None:
        """Freeze the position tables: BART's learned ``embed_positions`` and T5's
        ``relative_attention_bias``.

        Neither is looked up with a batch of ids (BART's takes a shape, T5's the
        query-key distance buckets, shared by every example), so Opacus has no
        per-example gradient of them; positions are a property of the language,
        not of the data.
        """
        for name, module in model.named_modules():
            if name.endswith(("embed_positions", "relative_attention_bias")):
                module.requires_grad_(False)

    def restore(
        self,
        task_config: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
    ) -> None:
        self._start = int(model.config.decoder_start_token_id)

    def run(self, inputs: TrainInputs) -> Any:
        from aimass.models.hf import read_config

        self._start = int(read_config(inputs.base_dir).decoder_start_token_id)
        return super().run(inputs)

    def tracker(self, tokenizer: PreTrainedTokenizerBase) -> Tracker:
        return LabelAccuracy("token_accuracy")

    def finish(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: TrainInputs
    ) -> dict[str, Any]:
        split = inputs.test if len(inputs.test) else inputs.validation
        max_length = int(model.config.max_position_embeddings)
        prompts = tokenizer(list(split.texts[:3]), truncation=True, max_length=max_length)
        return {"samples": generation_samples(model, tokenizer, inputs, prompts["input_ids"])}


register_task(Seq2SeqTask())
