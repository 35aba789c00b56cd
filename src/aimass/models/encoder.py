"""BERT-style encoders built from scratch (masked-LM pre-training, NER, classification).

Sizes follow the compact BERTs of Turc et al. 2019 ("Well-Read Students Learn
Better"): ``tiny`` = L2/H128, ``mini`` = L4/H256, ``small`` = L4/H512.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aimass.models.scratch import ScratchConfig, register_architecture

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

__all__ = ["EncoderConfig"]


@register_architecture
@dataclass(frozen=True)
class EncoderConfig(ScratchConfig):
    """A BERT encoder (``BertModel``; ``BertForMaskedLM`` when pre-trained).

    Attributes:
        hidden_size: Width of every layer (H).
        num_layers: Transformer layers (L).
        num_heads: Attention heads per layer (``hidden_size`` must divide by it).
        intermediate_size: Width of the feed-forward block (4·H in BERT).
        max_length: Position embeddings: the longest input in tokens.
        dropout: Dropout on hidden states and attention while training.
    """

    architecture: ClassVar[str] = "bert"
    family: ClassVar[str] = "encoder"
    description: ClassVar[str] = "BERT-style encoder (masked LM, NER, classification)"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"hidden_size": 128, "num_layers": 2, "num_heads": 2, "intermediate_size": 512},
        "mini": {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "intermediate_size": 1024},
        "small": {"hidden_size": 512, "num_layers": 4, "num_heads": 8, "intermediate_size": 2048},
    }

    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 512

    def hf_config(self, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
        from transformers import BertConfig

        return BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_length,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            pad_token_id=tokenizer.pad_token_id,
            architectures=["BertModel"],
        )
