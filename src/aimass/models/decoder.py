"""Llama-style decoders built from scratch (causal-LM pre-training and generation).

The same architecture as SmolLM2 (pre-norm RMSNorm, rotary positions, SwiGLU,
grouped-query attention, tied input/output embeddings), at three small sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aimass.errors import InvalidArgument
from aimass.models.scratch import ScratchConfig, register_architecture

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

__all__ = ["DecoderConfig"]


@register_architecture
@dataclass(frozen=True)
class DecoderConfig(ScratchConfig):
    """A Llama decoder (``LlamaForCausalLM``).

    Attributes:
        hidden_size: Width of every layer.
        num_layers: Transformer blocks.
        num_heads: Query heads per layer (``hidden_size`` must divide by it).
        num_kv_heads: Key/value heads (grouped-query attention; divides ``num_heads``).
        intermediate_size: Width of the SwiGLU feed-forward block.
        max_length: Context length in tokens (rotary positions up to it).
        dropout: Attention dropout while training.
    """

    architecture: ClassVar[str] = "llama"
    family: ClassVar[str] = "decoder"
    description: ClassVar[str] = "Llama-style decoder (causal LM, generation)"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {
            "hidden_size": 128,
            "num_layers": 2,
            "num_heads": 4,
            "num_kv_heads": 2,
            "intermediate_size": 384,
            "max_length": 256,
        },
        "mini": {
            "hidden_size": 256,
            "num_layers": 4,
            "num_heads": 4,
            "num_kv_heads": 2,
            "intermediate_size": 768,
            "max_length": 512,
        },
        "small": {
            "hidden_size": 512,
            "num_layers": 8,
            "num_heads": 8,
            "num_kv_heads": 4,
            "intermediate_size": 1536,
            "max_length": 1024,
        },
    }

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    dropout: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.num_heads % self.num_kv_heads or self.hidden_size % self.num_heads:
            raise InvalidArgument(
                f"llama sizes: num_heads ({self.num_heads}) must divide hidden_size "
                f"({self.hidden_size}) and be a multiple of num_kv_heads ({self.num_kv_heads})"
            )

    def hf_config(self, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_length,
            attention_dropout=self.dropout,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            architectures=["LlamaForCausalLM"],
        )
