"""Token-by-token generation with a key/value cache, for decoders and encoder-decoders.

One loop (:func:`generate_ids`) yields each new token id as soon as it is
chosen, so callers can stream. Each step runs the model on the single newest
token against the cache of everything before it::

    prompt (1, P) ──forward──▶ logits (1, V), cache
    repeat: pick a token from the logits (greedy, or temperature / top-k / top-p
            sampling from a seeded generator) ──forward that token──▶ logits, cache

Encoder-decoders encode the source once and decode from their start token.
Concurrent generations of a served causal LM decode in one batch instead
(:mod:`aimass.serving.decode_batch`), from the same pieces: :func:`pick_token`,
:func:`sampling_generator` and the cache helpers.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from aimass.errors import InvalidArgument, UnsupportedModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "PROMPT_FORMATS",
    "SamplingParams",
    "cache_kwarg",
    "cache_of",
    "complete",
    "encode_prompt",
    "eos_ids",
    "generate_ids",
    "keeps_logits",
    "pick_token",
    "prompt_ids",
    "response_ids",
    "sample_pairs",
    "sampling_generator",
]

MAX_NEW_TOKENS = 4096


@dataclass(frozen=True)
class SamplingParams:
    """How to choose tokens.

    Attributes:
        max_new_tokens: Most tokens to generate.
        temperature: 0 picks the most likely token (greedy); above 0 samples from
            the softmax of ``logits / temperature``.
        top_p: Nucleus sampling: sample among the most likely tokens whose
            probabilities add up to ``top_p`` (1 = all).
        top_k: Sample among the ``top_k`` most likely tokens (0 = all).
        stop: Strings that end generation; the text stops before the first one.
        seed: Seed of the sampling generator (same seed, same text); ``None`` draws one.
    """

    max_new_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        checks = [
            ("max_new_tokens", 1 <= self.max_new_tokens <= MAX_NEW_TOKENS),
            ("temperature", 0 <= self.temperature <= 100 and math.isfinite(self.temperature)),
            ("top_p", 0 < self.top_p <= 1),
            ("top_k", self.top_k >= 0),
        ]
        for name, ok in checks:
            if not ok:
                raise InvalidArgument(
                    f"generation option {name}={getattr(self, name)!r} is out of range "
                    f"(max_new_tokens 1..{MAX_NEW_TOKENS}, temperature 0..100, top_p in (0, 1], "
                    "top_k >= 0)",
                    field=name,
                )
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise InvalidArgument("stop strings must be non-empty strings", field="stop")


def pick_token(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None
) -> int:
    """The next token id from (V,) logits."""
    if params.temperature == 0:
        return int(logits.argmax())
    scores = logits.float() / params.temperature
    if params.top_k and params.top_k < scores.shape[-1]:
        kth = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, -math.inf)
    if params.top_p < 1:
        ordered, order = torch.sort(scores, descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        # Drop a token when the tokens before it already reach top_p (keeps at least one).
        drop = cumulative - ordered.softmax(-1) >= params.top_p
        scores = scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), -math.inf)
    probs = scores.softmax(-1).cpu()
    return int(torch.multinomial(probs, 1, generator=generator))


def sampling_generator(params: SamplingParams) -> torch.Generator | None:
    """The random generator one generation samples from (``None`` when greedy).

    Each generation owns one, seeded from ``params.seed``, so the same seed gives
    the same text whatever else runs beside it.
    """
    if params.temperature == 0:
        return None
    generator = torch.Generator()
    if params.seed is None:
        generator.seed()
    else:
        generator.manual_seed(params.seed)
    return generator


def keeps_logits(model: PreTrainedModel) -> bool:
    """Whether ``forward`` takes ``logits_to_keep`` (then a prefill projects one position)."""
    import inspect

    return "logits_to_keep" in inspect.signature(model.forward).parameters


def cache_kwarg(model: PreTrainedModel) -> str:
    """The name ``forward`` takes the key/value cache under.

    transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns
    and goes away in 5.40); asking the signature works on either side of it.
    """
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def cache_of(out: Any) -> Any:
    """The key/value cache a forward pass returned, under either name."""
    return out.cache if "cache" in out else out.past_key_values


@torch.inference_mode()
def generate_ids(
    model: PreTrainedModel,
    prompt_ids: Sequence[int],
    params: SamplingParams,
    *,
    eos_ids: Sequence[int],
    device: Any,
) -> Generator[int, None, None]:
    """Yield new token ids one by one; stops after an end-of-sequence id or the limit."""
    generator = sampling_generator(params)
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    stop_ids = set(eos_ids)
    if model.config.is_encoder_decoder:
        encoder = model.get_encoder()(input_ids=ids, attention_mask=torch.ones_like(ids))
        start = model.config.decoder_start_token_id
        fixed: dict[str, Any] = {"encoder_outputs": encoder, "attention_mask": torch.ones_like(ids)}
        out = model(
            decoder_input_ids=torch.tensor([[start]], device=device), use_cache=True, **fixed
        )
        key = "decoder_input_ids"
    else:
        # Only the last position's logits are needed: skip the vocabulary projection of
        # every prompt token (most of the prefill's cost for large vocabularies).
        fixed = {"logits_to_keep": 1} if keeps_logits(model) else {}
        out = model(input_ids=ids, use_cache=True, **fixed)
        key = "input_ids"
    cache_name = cache_kwarg(model)
    for produced in range(1, params.max_new_tokens + 1):
        token = pick_token(out.logits[0, -1], params, generator)
        yield token
        if token in stop_ids or produced == params.max_new_tokens:
            return
        step = torch.tensor([[token]], dtype=torch.long, device=device)
        out = model(**{key: step, cache_name: cache_of(out)}, use_cache=True, **fixed)


# -- prompts -----------------------------------------------------------------------------

PROMPT_FORMATS = ("chat", "plain", "none")


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Ids of ``text`` with the tokenizer's leading specials (BOS/CLS), without a closing EOS."""
    return _unclosed(tokenizer, list(tokenizer(text)["input_ids"]))


def _unclosed(tokenizer: Any, ids: list[int]) -> list[int]:
    """``ids`` without the closing EOS/SEP the tokenizer added."""
    closing = {tokenizer.eos_token_id, tokenizer.sep_token_id} - {None}
    return ids[:-1] if ids and ids[-1] in closing else ids


def _formatted(tokenizer: Any, prompt: str, prompt_format: str) -> tuple[str, bool]:
    """The text the model reads for ``prompt``, and whether the tokenizer adds its own
    special tokens to it (not to a chat template's text, which holds them)."""
    if prompt_format == "chat":
        turn = [{"role": "user", "content": prompt}]
        text = tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)
        return text, False
    return (prompt + "\n" if prompt_format == "plain" else prompt), True


def prompt_ids(tokenizer: Any, prompt: str, prompt_format: str) -> list[int]:
    """The ids a model sees for ``prompt`` under ``prompt_format``.

    ``chat``: the tokenizer's chat template with one user turn and the assistant
    prompt; ``plain``: the prompt and a newline (instruction-tuned without a
    template); ``none``: the text as it is (continuation).
    """
    text, specials = _formatted(tokenizer, prompt, prompt_format)
    ids = list(tokenizer(text, add_special_tokens=specials)["input_ids"])
    return _unclosed(tokenizer, ids) if specials else ids


def prompt_spans(
    tokenizer: Any, prompt: str, prompt_format: str
) -> tuple[list[int], list[tuple[int, int] | None]]:
    """:func:`prompt_ids` and each id's character span in ``prompt`` (``None`` for the
    template's tokens, special tokens and the ``plain`` format's newline).

    Raises:
        UnsupportedModel: the chat template changes the prompt's text, so its words
            cannot be found in what the model reads.
    """
    text, specials = _formatted(tokenizer, prompt, prompt_format)
    at = text.find(prompt)
    if at < 0:
        raise UnsupportedModel(
            "the model's chat template changes the prompt's text, so its words cannot "
            "be located in what the model reads"
        )
    enc = tokenizer(text, add_special_tokens=specials, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    ids = _unclosed(tokenizer, ids) if specials else ids
    spans: list[tuple[int, int] | None] = []
    for start, end in enc["offset_mapping"][: len(ids)]:
        start, end = max(start - at, 0), min(end - at, len(prompt))
        spans.append((start, end) if end > start else None)
    return ids, spans


def response_ids(tokenizer: Any, prompt: str, response: str, prompt_format: str) -> list[int]:
    """The ids that follow :func:`prompt_ids` for ``response``, closed by end-of-turn/EOS."""
    if prompt_format == "chat":
        turn = [{"role": "user", "content": prompt}]
        head = tokenizer.apply_chat_template(turn, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(
            [*turn, {"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(head):
            return list(tokenizer(full[len(head) :], add_special_tokens=False)["input_ids"])
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    return [*ids, tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else ids


def eos_ids(model: PreTrainedModel, tokenizer: Any) -> list[int]:
    """Every id that ends generation (the generation config may list several)."""
    found = {tokenizer.eos_token_id}
    config = getattr(model, "generation_config", None)
    value = getattr(config, "eos_token_id", None) if config is not None else None
    found |= set(value) if isinstance(value, list) else {value}
    return sorted(i for i in found if i is not None)


def complete(
    model: PreTrainedModel, tokenizer: Any, ids: Sequence[int], params: SamplingParams, device: Any
) -> str:
    """The generated text for prompt ``ids`` (no streaming, no stop strings)."""
    new = list(generate_ids(model, ids, params, eos_ids=eos_ids(model, tokenizer), device=device))
    return str(tokenizer.decode(new, skip_special_tokens=True)).strip()


def sample_pairs(
    texts: Sequence[str], targets: Sequence[str] | None, n: int
) -> list[tuple[str, str]]:
    """``(prompt, reference)`` of the first ``n`` rows, for a generation sample table.

    Pairs give their prompt (or source) and response (or target); a plain text
    is cut in half: the model continues the first half, the second is the reference.
    """
    if targets is not None:
        return list(zip(texts[:n], targets[:n], strict=True))
    return [(t[: max(1, len(t) // 2)], t[max(1, len(t) // 2) :]) for t in texts[:n]]
