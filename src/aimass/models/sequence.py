"""Sequence-level tasks on an encoder: classification and regression.

``SequenceModel`` = a Hugging Face encoder + pooling + a linear head::

    input_ids (B, T) ──encoder──▶ hidden states L × (B, T, H)
        ──pool──▶ features (B, K·H) ──dropout, linear──▶ outputs (B, C)

Pooling is ``mean`` (masked mean of the last ``feature_layers`` layers,
concatenated: the BERT paper's feature-based recipe, strongest for frozen
sentence encoders), ``cls`` (the first token) or ``pooler`` (the encoder's
pooler output, which makes the model identical to Hugging Face's
``*ForSequenceClassification``).

Weights are saved under the encoder's own prefix (``bert.``) plus
``classifier.``, so the exported bundle loads with ``AutoModel.from_pretrained``
(the encoder) and, with ``pooling="pooler"``, with
``AutoModelForSequenceClassification`` too.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from aimass.errors import InvalidArgument, UnsupportedModel

__all__ = ["POOLINGS", "SequenceHeadConfig", "SequenceModel"]

POOLINGS = ("mean", "cls", "pooler")
HEAD_PREFIX = "classifier."


@dataclass
class SequenceHeadConfig:
    """The head of a :class:`SequenceModel`; saved in ``aimass.json`` ``task_config``.

    Attributes:
        task: ``classification`` or ``regression``.
        num_outputs: Number of classes (classification) or 1 (regression).
        labels: Class names in output order (classification).
        pooling: ``mean``, ``cls`` or ``pooler`` (see the module docstring).
        feature_layers: How many of the last hidden layers are pooled and
            concatenated (``mean``/``cls`` only). 1 = the last layer.
        dropout: Dropout before the linear head, during training.
        target_mean: Regression targets are standardised with this mean ...
        target_std: ... and this standard deviation; predictions are mapped back.
    """

    task: str
    num_outputs: int
    labels: list[str] = field(default_factory=list)
    pooling: str = "mean"
    feature_layers: int = 1
    dropout: float = 0.1
    target_mean: float = 0.0
    target_std: float = 1.0

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise InvalidArgument(
                f"pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}",
                pooling=self.pooling,
            )
        if self.pooling == "pooler" and self.feature_layers != 1:
            raise InvalidArgument("pooling 'pooler' uses one layer: set feature_layers=1")
        if self.feature_layers < 1:
            raise InvalidArgument(f"feature_layers must be >= 1, got {self.feature_layers}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for ``aimass.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceHeadConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored, for old bundles)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class SequenceModel(nn.Module):
    """An encoder with a pooled linear head for sequence classification/regression."""

    def __init__(self, encoder: nn.Module, head: SequenceHeadConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.head_config = head
        hidden = int(encoder.config.hidden_size)
        layers = encoder.config.num_hidden_layers
        if head.feature_layers > layers + 1:
            raise InvalidArgument(
                f"feature_layers={head.feature_layers} but the encoder has {layers} layers"
            )
        if head.pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise UnsupportedModel(
                f"encoder {encoder.config.model_type!r} has no pooler; use pooling 'mean' or 'cls'"
            )
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = nn.Linear(hidden * head.feature_layers, head.num_outputs)
        # Set for per-example gradients (DP-SGD): see ``explicit_ids``.
        self.explicit_ids = False

    @property
    def feature_size(self) -> int:
        """Width of the pooled features fed to the head."""
        return int(self.classifier.in_features)

    def features(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled features (B, K·H) of a tokenised batch.

        ``position_ids`` (B, T) is optional; per-sample gradient hooks (DP-SGD) need it
        and ``token_type_ids`` given explicitly, so that every embedding lookup has the
        batch dimension instead of a broadcast (1, T) buffer. ``inputs_embeds``
        (B, T, H) replaces the word embeddings of ``input_ids`` (position and
        token-type embeddings are still added): integrated gradients interpolate there.
        """
        cfg = self.head_config
        extra = {
            name: value
            for name, value in (("token_type_ids", token_type_ids), ("position_ids", position_ids))
            if value is not None
        }
        if self.explicit_ids and input_ids is not None:
            extra = self._explicit_ids(input_ids, attention_mask, extra)
        out = self.encoder(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            output_hidden_states=cfg.feature_layers > 1,
            **extra,
        )
        if cfg.pooling == "pooler":
            return out.pooler_output  # (B, H)
        layers = (
            out.hidden_states[-cfg.feature_layers :]
            if cfg.feature_layers > 1
            else (out.last_hidden_state,)
        )
        if cfg.pooling == "cls":
            return torch.cat([h[:, 0] for h in layers], dim=-1)
        mask = attention_mask.unsqueeze(-1).to(layers[0].dtype)  # (B, T, 1)
        count = mask.sum(dim=1).clamp(min=1.0)  # (B, 1)
        return torch.cat([(h * mask).sum(dim=1) / count for h in layers], dim=-1)  # (B, K·H)

    def _explicit_ids(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, given: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Fill ``token_type_ids``/``position_ids`` (B, T) the encoder would broadcast.

        Opacus's per-example gradient hooks on transformers-5 BERT fail when these
        come from the model's (1, T) buffers, so under DP they are passed in with the
        batch dimension (contiguous: the ghost-clipping embedding sampler views them).
        """
        accepted = inspect.signature(self.encoder.forward).parameters
        out = dict(given)
        batch, width = input_ids.shape
        if "token_type_ids" in accepted and "token_type_ids" not in out:
            out["token_type_ids"] = torch.zeros_like(input_ids)
        if "position_ids" in accepted and "position_ids" not in out:
            padding_idx = getattr(getattr(self.encoder, "embeddings", None), "padding_idx", None)
            if padding_idx is None:
                positions = torch.arange(width, device=input_ids.device).repeat(batch, 1)
            else:  # RoBERTa family: positions count from padding_idx + 1, pads stay at it
                mask = attention_mask.long()
                positions = torch.cumsum(mask, dim=1) * mask + padding_idx
            out["position_ids"] = positions.contiguous()
        return out

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Outputs (B, C) from pooled features: logits or standardised values."""
        return self.classifier(self.dropout(features))

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        *,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Outputs (B, C) for a tokenised batch (or its word embeddings)."""
        return self.head(
            self.features(
                input_ids,
                attention_mask,
                token_type_ids,
                position_ids=position_ids,
                inputs_embeds=inputs_embeds,
            )
        )

    # -- Hugging Face-compatible weights ---------------------------------------

    @property
    def _prefix(self) -> str:
        return f"{self.encoder.base_model_prefix}."

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights keyed as Hugging Face's ``*ForSequenceClassification`` keys them."""
        state = {self._prefix + k: v for k, v in self.encoder.state_dict().items()}
        state.update({HEAD_PREFIX + k: v for k, v in self.classifier.state_dict().items()})
        return state

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`export_state_dict` (strict: every weight must be there)."""
        prefix = self._prefix
        encoder = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        head = {k[len(HEAD_PREFIX) :]: v for k, v in state.items() if k.startswith(HEAD_PREFIX)}
        missing, unexpected = self.encoder.load_state_dict(encoder, strict=False)
        # Buffers such as position_ids are rebuilt by the config; real weights are not.
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected or len(encoder) + len(head) != len(state):
            raise UnsupportedModel(
                f"weights do not match the model: missing {missing[:5]}, "
                f"unexpected {list(unexpected)[:5]}"
            )
        self.classifier.load_state_dict(head)

    def hf_config_updates(self) -> dict[str, Any]:
        """``config.json`` fields that make the export a Hugging Face classifier config."""
        cfg = self.head_config
        arch = type(self.encoder).__name__.removesuffix("Model") + "ForSequenceClassification"
        updates: dict[str, Any] = {"architectures": [arch], "num_labels": cfg.num_outputs}
        if cfg.task == "classification":
            updates["id2label"] = dict(enumerate(cfg.labels))
            updates["label2id"] = {label: i for i, label in enumerate(cfg.labels)}
            updates["problem_type"] = "single_label_classification"
        else:
            updates["problem_type"] = "regression"
        return updates
