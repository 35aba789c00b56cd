"""A tiny random Llama causal-LM directory whose tokenizer has no pad token.

Like a real GPT checkpoint imported from disk (SmolLM2, Gemma-3): ``LlamaForCausalLM``
weights, a fast tokenizer with ``<s>``/``</s>`` and no ``pad_token``. The vocabulary
holds the words of ``sentiment_rows``/``regression_rows``.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FILLER, NEGATIVE, POSITIVE

DECODER_VOCAB = ["<unk>", "<s>", "</s>", *POSITIVE, *NEGATIVE, *FILLER]


# The Llama settings a tiny Gemma-3 shares (sizes, special tokens). Its output layer is
# its own: Gemma scales the embeddings up, and tied to them a random model repeats the
# prompt's last token.
_GEMMA3_SHARED = (
    "vocab_size",
    "hidden_size",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "max_position_embeddings",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)


def make_tiny_decoder(directory: Path, *, seed: int = 0, architecture: str = "llama") -> Path:
    """Write the tiny decoder (2 blocks, H=32) and its tokenizer into ``directory``.

    ``architecture="gemma3"`` writes a Gemma-3 text decoder instead: 4 blocks whose
    attention alternates a 4-token sliding window and full attention.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    torch.manual_seed(seed)
    vocab = {word: i for i, word in enumerate(DECODER_VOCAB)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=None,
        architectures=["LlamaForCausalLM"],
    )
    directory.mkdir(parents=True, exist_ok=True)
    if architecture == "gemma3":
        gemma = Gemma3TextConfig(
            **{k: v for k, v in config.to_dict().items() if k in _GEMMA3_SHARED},
            num_hidden_layers=4,
            head_dim=16,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention"] * 2,
            tie_word_embeddings=False,
            architectures=["Gemma3ForCausalLM"],
        )
        Gemma3ForCausalLM(gemma).save_pretrained(str(directory), safe_serialization=True)
    else:
        LlamaForCausalLM(config).save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
    return directory
