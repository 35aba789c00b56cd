"""A tiny random Llama causal-LM directory whose tokenizer has no pad token.

Like a real GPT checkpoint imported from disk (SmolLM2, Gemma-3): ``LlamaForCausalLM``
weights, a fast tokenizer with ``<s>``/``</s>`` and no ``pad_token``. The vocabulary
holds the words of ``sentiment_rows``/``regression_rows``.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FILLER, NEGATIVE, POSITIVE

DECODER_VOCAB = ["<unk>", "<s>", "</s>", *POSITIVE, *NEGATIVE, *FILLER]


def make_tiny_decoder(directory: Path, *, seed: int = 0) -> Path:
    """Write the tiny decoder (2 blocks, H=32) and its tokenizer into ``directory``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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
    LlamaForCausalLM(config).save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
    return directory
