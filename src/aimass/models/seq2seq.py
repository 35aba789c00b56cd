"""BART-style encoder-decoders built from scratch (summarisers, translators on own data).

A denoising-autoencoder architecture (Lewis et al. 2019) at three small sizes;
``aimass train --task seq2seq`` trains it on ``source``/``target`` pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from aimass.models.scratch import ScratchConfig, register_architecture

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

__all__ = ["Seq2SeqConfig"]


@register_architecture
@dataclass(frozen=True)
class Seq2SeqConfig(ScratchConfig):
    """A BART encoder-decoder (``BartForConditionalGeneration``).

    Attributes:
        hidden_size: Width of every layer (``d_model``).
        encoder_layers: Encoder blocks.
        decoder_layers: Decoder blocks.
        num_heads: Attention heads in both stacks.
        intermediate_size: Feed-forward width in both stacks.
        max_length: Longest source and target, in tokens.
        dropout: Dropout while training.
    """

    architecture: ClassVar[str] = "bart"
    family: ClassVar[str] = "encoder-decoder"
    description: ClassVar[str] = "BART-style encoder-decoder (sequence to sequence)"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {
            "hidden_size": 128,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "num_heads": 4,
            "intermediate_size": 512,
        },
        "mini": {
            "hidden_size": 256,
            "encoder_layers": 3,
            "decoder_layers": 3,
            "num_heads": 4,
            "intermediate_size": 1024,
            "max_length": 256,
        },
        "small": {
            "hidden_size": 512,
            "encoder_layers": 6,
            "decoder_layers": 6,
            "num_heads": 8,
            "intermediate_size": 2048,
            "max_length": 512,
        },
    }

    hidden_size: int = 128
    encoder_layers: int = 2
    decoder_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512

    def hf_config(self, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
        from transformers import BartConfig

        return BartConfig(
            vocab_size=len(tokenizer),
            d_model=self.hidden_size,
            encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers,
            encoder_attention_heads=self.num_heads,
            decoder_attention_heads=self.num_heads,
            encoder_ffn_dim=self.intermediate_size,
            decoder_ffn_dim=self.intermediate_size,
            max_position_embeddings=self.max_length,
            dropout=self.dropout,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.bos_token_id,
            forced_eos_token_id=None,
            architectures=["BartForConditionalGeneration"],
        )
