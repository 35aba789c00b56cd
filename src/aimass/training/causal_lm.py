"""Causal-LM training: continued pre-training on text, or instruction tuning on pairs.

* A ``text`` dataset trains on every token of every row (BOS, text, EOS),
  from scratch or continuing a decoder base: one row per example (cut at
  ``max_length``), or with the option ``pack`` every row end to end, cut into
  blocks of ``max_length`` tokens (no padding, nothing cut off; a block may
  span rows, as in Hugging Face's ``run_clm``).
* A ``pairs`` dataset (``prompt``/``response``) is instruction tuning: the
  prompt is formatted with the tokenizer's chat template when it has one
  (``prompt_format`` ``chat``), else as ``prompt + "\\n"`` (``plain``); the
  loss is taken on the response tokens only (prompt positions are labelled
  -100), so the model learns to answer, not to echo questions.

The prompt format is saved in ``task_config`` and serving applies the same
one. Validation reports loss and perplexity; after training a few held-out
prompts are answered (greedy) for the model card's sample table.

With a ``teacher`` (another causal LM reading text with the same tokenizer) the
student also learns the teacher's next-token distribution at every position
(:mod:`aimass.training.lm_distill`), from the training rows and a transfer set of
more text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aimass.data.tables import SplitData
from aimass.errors import InvalidArgument
from aimass.models.generation import (
    SamplingParams,
    complete,
    encode_prompt,
    prompt_ids,
    response_ids,
    sample_pairs,
)
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.training.examples import (
    IGNORE,
    Example,
    scratch_base,
)
from aimass.training.lm_distill import WordByWordTask
from aimass.training.tasks import PACK, TrainInputs, packing, register_task

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from aimass.training.config import TrainConfig
    from aimass.training.distill import SoftTargets

__all__ = ["CausalLMTask", "generation_samples"]

SAMPLES = 3
SAMPLE_TOKENS = 48


def generation_samples(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    inputs: TrainInputs,
    prompts: list[list[int]],
) -> list[dict[str, str]]:
    """Greedy completions of the first held-out prompts, beside their references."""
    split = inputs.test if len(inputs.test) else inputs.validation
    params = SamplingParams(max_new_tokens=SAMPLE_TOKENS, temperature=0)
    model.eval()
    rows = []
    for i, ids in enumerate(prompts[:SAMPLES]):
        rows.append(
            {
                "prompt": split.texts[i],
                "reference": (split.targets or [""] * len(split))[i],
                "generated": complete(model, tokenizer, ids, params, inputs.device),
            }
        )
    return rows


class CausalLMTask(WordByWordTask):
    """Next-token prediction on a decoder (pre-training or instruction tuning)."""

    name = "causal-lm"
    description = "causal LM: continued pre-training on text, instruction tuning on pairs"
    families = ("decoder",)
    kinds = ("text", "pairs")
    shift_labels = True
    supports_lora = True
    supports_privacy = True
    transfer_kinds = ("text",)
    privacy_unit = "text or prompt/response pair (a dataset row)"
    options = (PACK,)

    def __init__(self) -> None:
        super().__init__()
        self.prompt_format = "none"
        self.pack = False

    def check_options(self, config: TrainConfig, *, kind: str, private: bool) -> None:
        super().check_options(config, kind=kind, private=private)
        if packing(config, private=private) and kind != "text":
            raise InvalidArgument(
                f"--option pack=true packs the rows of a text dataset; this one is of kind "
                f"{kind!r}, one prompt/response per example with the loss on the response "
                "alone: drop the option",
                field="options",
            )

    def defaults(self, base_provenance: dict[str, Any]) -> dict[str, Any]:
        lr = 1e-3 if scratch_base(base_provenance) else 3e-5
        return {"lr": lr, "batch_size": 8, "epochs": 2, "warmup_ratio": 0.05}

    def load(self, inputs: TrainInputs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        tokenizer = load_tokenizer(inputs.base_dir)
        model = load_pretrained(inputs.base_dir, family="decoder")
        self.pack = bool(inputs.config.options.get("pack", False))
        if inputs.schema.kind == "pairs":
            self.prompt_format = "chat" if tokenizer.chat_template else "plain"
        return model, tokenizer

    def restore(
        self,
        task_config: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
    ) -> None:
        self.prompt_format = str(task_config.get("prompt_format") or "none")

    def encode(
        self, split: SplitData, tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> list[Example]:
        if split.targets is None:
            return self._texts(split.texts, tokenizer, max_length)
        examples = []
        for prompt, response in zip(split.texts, split.targets, strict=True):
            head = prompt_ids(tokenizer, prompt, self.prompt_format)
            tail = response_ids(tokenizer, prompt, response, self.prompt_format)
            if len(head) < max_length:  # otherwise no response token would be learned
                examples.append(_example(head + tail, len(head), max_length))
        return examples

    def _texts(
        self, texts: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> list[Example]:
        """Texts as examples whose every token is learned (one per text, or packed)."""
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        rows = [encode_prompt(tokenizer, t) + eos for t in texts]
        if self.pack:
            return _packed([row for row in rows if len(row) > len(eos)], max_length)
        return [_example(row, 0, max_length) for row in rows if len(row) > len(eos)]

    def transfer_examples(
        self,
        soft: SoftTargets,
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
        first_row: int,
    ) -> list[Example]:
        if soft.transfer_targets is not None:  # prompts, and what the teacher wrote for them
            return super().transfer_examples(soft, tokenizer, max_length, first_row)
        return self._texts(soft.transfer_texts, tokenizer, max_length)

    def finish(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: TrainInputs
    ) -> dict[str, Any]:
        split = inputs.test if len(inputs.test) else inputs.validation
        pairs = sample_pairs(split.texts, split.targets, SAMPLES)
        if split.targets is None:  # continuation of the first half of a held-out text
            prompts = [encode_prompt(tokenizer, p) for p, _ in pairs]
        else:
            prompts = [prompt_ids(tokenizer, p, self.prompt_format) for p, _ in pairs]
        rows = generation_samples(model, tokenizer, inputs, prompts)
        return {
            "samples": [
                {**r, "prompt": p, "reference": ref}
                for r, (p, ref) in zip(rows, pairs, strict=True)
            ]
        }

    def task_config(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, Any]:
        return {**super().task_config(tokenizer, max_length), "prompt_format": self.prompt_format}


def _packed(rows: list[list[int]], block: int) -> list[Example]:
    """Every row's ids end to end, cut into blocks of ``block`` (the last may be shorter;
    a lone token has no next token to learn)."""
    stream = [i for row in rows for i in row]
    blocks = (stream[start : start + block] for start in range(0, len(stream), block))
    return [{"input_ids": ids, "labels": list(ids)} for ids in blocks if len(ids) > 1]


def _example(ids: list[int], prompt_length: int, max_length: int) -> Example:
    ids = ids[:max_length]
    labels = [IGNORE] * min(prompt_length, len(ids)) + ids[prompt_length:]
    return {"input_ids": ids, "labels": labels}


register_task(CausalLMTask())
