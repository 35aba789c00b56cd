"""Sequence-level tasks on a pretrained backbone: classification and regression.

``SequenceModel`` = a Hugging Face backbone (an encoder, or a decoder used as a
feature extractor) + pooling + a linear head::

    input_ids (B, T) ──backbone──▶ hidden states (L+1) × (B, T, H)
        ──pool the chosen layers──▶ features (B, K·H) ──dropout, linear──▶ outputs (B, C)

Pooling is ``mean`` (masked mean of the chosen layers, concatenated: the BERT
paper's feature-based recipe, strongest for frozen sentence encoders), ``cls``
(the first token), ``pooler`` (the encoder's pooler output, which makes the
model identical to Hugging Face's ``*ForSequenceClassification``) or ``last``
(the last non-padding token: in a causal decoder the only position that has
seen the whole input). Which poolings a family allows, and how its weights are
named, is its :class:`Backbone` (a registry keyed by family).

Weights are saved under the backbone's own prefix (``bert.``, ``model.``) plus
the family's head prefix (``classifier.`` for encoders, ``score.`` for
decoders), so the exported bundle loads with ``AutoModel.from_pretrained`` (the
backbone) and, with ``pooling="pooler"`` (encoders) or ``pooling="last"`` on the
last layer (decoders), with ``AutoModelForSequenceClassification`` too. Only
then does ``config.json`` name that class in ``architectures``; otherwise it
names the bare backbone, and its ``aimass_head`` field records the pooling and
the hidden states the head reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from aimass.errors import InvalidArgument, UnsupportedModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "POOLINGS",
    "Backbone",
    "SequenceHeadConfig",
    "SequenceModel",
    "explicit_ids",
    "get_backbone",
    "pool",
    "register_backbone",
]

POOLINGS = ("mean", "cls", "pooler", "last")


@dataclass(frozen=True)
class Backbone:
    """How one model family carries a sequence head.

    Attributes:
        family: ``encoder`` or ``decoder`` (the base bundle's family).
        poolings: Poolings that make sense for it; the first is the default.
        head_prefix: Key prefix of the head weights in the export (Hugging Face's).
        head_bias: Whether the linear head has a bias (Hugging Face decoders' has not).
        token_types: Whether the backbone takes ``token_type_ids``.
        causal: Position ids follow the attention mask (any padding side works).
        scale_features: A frozen backbone's features are scaled to unit RMS per
            dimension while the head trains (then folded into its weights): a
            decoder's residual stream has no final LayerNorm per layer, and its
            dimensions differ in scale by orders of magnitude.
    """

    family: str
    poolings: tuple[str, ...]
    head_prefix: str
    head_bias: bool = True
    token_types: bool = True
    causal: bool = False
    scale_features: bool = False


_BACKBONES: dict[str, Backbone] = {}


def register_backbone(backbone: Backbone) -> Backbone:
    """Let sequence heads sit on models of ``backbone.family``."""
    _BACKBONES[backbone.family] = backbone
    return backbone


def get_backbone(family: str) -> Backbone:
    """The :class:`Backbone` of ``family``; the error lists the families that have one."""
    try:
        return _BACKBONES[family]
    except KeyError:
        raise UnsupportedModel(
            f"sequence classification/regression has no backbone for family {family!r}; "
            f"families: {', '.join(sorted(_BACKBONES))}",
            family=family,
        ) from None


register_backbone(
    Backbone("encoder", poolings=("mean", "cls", "pooler"), head_prefix="classifier.")
)
register_backbone(
    Backbone(
        "decoder",
        poolings=("mean", "last"),
        head_prefix="score.",
        head_bias=False,
        token_types=False,
        causal=True,
        scale_features=True,
    )
)


@dataclass
class SequenceHeadConfig:
    """The head of a :class:`SequenceModel`; saved in ``aimass.json`` ``task_config``.

    Attributes:
        task: ``classification`` or ``regression``.
        num_outputs: Number of classes (classification) or 1 (regression).
        labels: Class names in output order (classification).
        pooling: ``mean``, ``cls``, ``pooler`` or ``last`` (see the module
            docstring; the family's :class:`Backbone` says which apply).
        feature_layers: How many of the last hidden layers are pooled and
            concatenated (``mean``/``cls``/``last``). 1 = the last layer.
        layers: Hidden-state indices pooled and concatenated instead, in order
            (0 = the embeddings, i = block i, negative from the end: -1 = the
            final output); empty = the last ``feature_layers``.
        family: Backbone family (``encoder`` or ``decoder``).
        dropout: Dropout before the linear head, during training.
        target_mean: Regression targets are standardised with this mean ...
        target_std: ... and this standard deviation; predictions are mapped back.
    """

    task: str
    num_outputs: int
    labels: list[str] = field(default_factory=list)
    pooling: str = "mean"
    feature_layers: int = 1
    layers: list[int] = field(default_factory=list)
    family: str = "encoder"
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
        backbone = get_backbone(self.family)
        if self.pooling not in backbone.poolings:
            raise InvalidArgument(
                f"pooling {self.pooling!r} does not suit a {self.family} base; use "
                f"{' or '.join(backbone.poolings)}"
                + ("" if backbone.family == "encoder" else " (no [CLS] token or pooler here)"),
                pooling=self.pooling,
            )
        if self.layers and self.pooling == "pooler":
            raise InvalidArgument("pooling 'pooler' uses the pooler output: drop layers")

    def layer_indices(self, depth: int) -> list[int]:
        """Hidden-state indices (0..depth) pooled, for a backbone of ``depth`` blocks."""
        chosen = self.layers or list(range(-self.feature_layers, 0))
        for index in chosen:
            if not -(depth + 1) <= index <= depth:
                raise InvalidArgument(
                    f"layer {index} is out of range: the base has hidden states 0..{depth} "
                    f"(or -{depth + 1}..-1 from the end)",
                    layer=index,
                )
        return [i % (depth + 1) for i in chosen]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for ``aimass.json``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceHeadConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored, for old bundles)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class SequenceModel(nn.Module):
    """A backbone (encoder or decoder) with a pooled linear head, for classification/regression.

    The backbone is the bare Hugging Face model (``BertModel``, ``LlamaModel``, ...)
    and stays in ``self.encoder`` whatever its family: explainers and DP reach it there.
    """

    def __init__(self, encoder: PreTrainedModel, head: SequenceHeadConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.head_config = head
        self.backbone = get_backbone(head.family)
        hidden = int(encoder.config.hidden_size)
        self.layer_indices = head.layer_indices(int(encoder.config.num_hidden_layers))
        if head.pooling == "pooler" and getattr(encoder, "pooler", None) is None:
            raise UnsupportedModel(
                f"encoder {encoder.config.model_type!r} has no pooler; use pooling 'mean' or 'cls'"
            )
        width = 1 if head.pooling == "pooler" else len(self.layer_indices)
        self.dropout = nn.Dropout(head.dropout)
        self.classifier = nn.Linear(hidden * width, head.num_outputs, bias=self.backbone.head_bias)
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
        out = self._encode(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            hidden_states=not self._final_only,
        )
        return self._pooled(out, attention_mask)

    @property
    def _final_only(self) -> bool:
        """Whether the head reads the last layer alone (no other layer's states needed)."""
        return self.layer_indices == [int(self.encoder.config.num_hidden_layers)]

    def _encode(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None,
        *,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        hidden_states: bool,
    ) -> Any:
        """The backbone's output for a batch (every layer's states with ``hidden_states``)."""
        if not self.backbone.token_types:
            token_type_ids = None
        if self.backbone.causal and position_ids is None:
            # Count positions over real tokens only, so left- and right-padded rows
            # see the same positions (pads take a harmless clamped one).
            position_ids = (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)
        extra = {
            name: value
            for name, value in (("token_type_ids", token_type_ids), ("position_ids", position_ids))
            if value is not None
        }
        if self.explicit_ids and input_ids is not None:
            extra = self._explicit_ids(input_ids, attention_mask, extra)
        return self.encoder(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            output_hidden_states=hidden_states,
            **extra,
        )

    def _pooled(self, out: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head's features (B, K·H) from the backbone's output."""
        cfg = self.head_config
        if cfg.pooling == "pooler":
            return out.pooler_output  # (B, H)
        layers = (
            (out.last_hidden_state,)
            if self._final_only
            else tuple(out.hidden_states[i] for i in self.layer_indices)
        )
        return torch.cat([pool(cfg.pooling, h, attention_mask) for h in layers], dim=-1)  # (B, K·H)

    def forward_with_layers(
        self,
        layers: Sequence[int],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Outputs (B, C) and the mean-pooled hidden states of ``layers`` (B, L·H), from
        one pass and concatenated: distillation's intermediate-layer matching compares
        these with the teacher's (``layers`` index ``hidden_states``: 0 = embeddings)."""
        out = self._encode(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids=None,
            inputs_embeds=None,
            hidden_states=True,
        )
        states = [pool("mean", out.hidden_states[i], attention_mask) for i in layers]
        return torch.cat([self.head(self._pooled(out, attention_mask)), *states], dim=-1)

    def _explicit_ids(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, given: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return explicit_ids(self.encoder, input_ids, attention_mask, given)

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
        head_prefix = self.backbone.head_prefix
        state = {self._prefix + k: v for k, v in self.encoder.state_dict().items()}
        state.update({head_prefix + k: v for k, v in self.classifier.state_dict().items()})
        return state

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`export_state_dict` (strict: every weight must be there)."""
        prefix, head_prefix = self._prefix, self.backbone.head_prefix
        encoder = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        head = {k[len(head_prefix) :]: v for k, v in state.items() if k.startswith(head_prefix)}
        missing, unexpected = self.encoder.load_state_dict(encoder, strict=False)
        # Buffers such as position_ids are rebuilt by the config; real weights are not.
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected or len(encoder) + len(head) != len(state):
            raise UnsupportedModel(
                f"weights do not match the model: missing {missing[:5]}, "
                f"unexpected {list(unexpected)[:5]}"
            )
        self.classifier.load_state_dict(head)

    @property
    def matches_hf_head(self) -> bool:
        """Whether Hugging Face's ``*ForSequenceClassification`` computes these outputs.

        True for an encoder pooled through its pooler, and for a decoder that pools the
        last real token of the final layer alone; any other pooling has no such class.
        """
        cfg = self.head_config
        if self.backbone.family == "encoder":
            return cfg.pooling == "pooler"
        final = [int(self.encoder.config.num_hidden_layers)]
        return cfg.pooling == "last" and self.layer_indices == final

    def head_description(self) -> dict[str, Any]:
        """How the head reads the backbone, as ``config.json`` records it (``aimass_head``)."""
        cfg = self.head_config
        described: dict[str, Any] = {
            "pooling": cfg.pooling,
            "hidden_states": [] if cfg.pooling == "pooler" else self.layer_indices,
            "weights": f"{self.backbone.head_prefix}weight"
            + (f", {self.backbone.head_prefix}bias" if self.backbone.head_bias else ""),
            "hf_class_matches": self.matches_hf_head,
        }
        if cfg.task == "regression":
            described["target_mean"] = cfg.target_mean
            described["target_std"] = cfg.target_std
        return described

    def hf_config_updates(self, *, pad_token_id: int = 0) -> dict[str, Any]:
        """``config.json`` fields that make the export a Hugging Face classifier config.

        ``pad_token_id`` is the id inputs are padded with, recorded for decoders whose
        config has none.
        """
        cfg = self.head_config
        bare = type(self.encoder).__name__
        # Claim the Hugging Face classifier class only when its head is this one: else
        # AutoModelForSequenceClassification loads every weight and silently scores
        # differently (BERT's pools through the pooler, not a mean). ``aimass_head``
        # says how to reproduce the scores with the bare model (docs/registry.md).
        arch = bare.removesuffix("Model") + "ForSequenceClassification"
        updates: dict[str, Any] = {
            "architectures": [arch if self.matches_hf_head else bare],
            "num_labels": cfg.num_outputs,
            "aimass_head": self.head_description(),
        }
        if self.backbone.causal and self.encoder.config.pad_token_id is None:
            # Hugging Face's decoder classifiers find the last real token by pad_token_id.
            updates["pad_token_id"] = pad_token_id
        if cfg.task == "classification":
            updates["id2label"] = dict(enumerate(cfg.labels))
            updates["label2id"] = {label: i for i, label in enumerate(cfg.labels)}
            updates["problem_type"] = "single_label_classification"
        else:
            updates["problem_type"] = "regression"
        return updates


def explicit_ids(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    given: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """``given`` plus the ``token_type_ids``/``position_ids`` (B, T) that ``model`` (a bare
    encoder or one with a head) would otherwise broadcast from its (1, T) buffers.

    Opacus's per-example gradient hooks on transformers-5 BERT fail when these come
    from the model's buffers, so under DP they are passed in with the batch dimension
    (contiguous: the ghost-clipping embedding sampler views them).
    """
    accepted = inspect.signature(model.forward).parameters
    out = dict(given)
    batch, width = input_ids.shape
    if "token_type_ids" in accepted and "token_type_ids" not in out:
        out["token_type_ids"] = torch.zeros_like(input_ids)
    if "position_ids" in accepted and "position_ids" not in out:
        base = getattr(model, "base_model", model)
        padding_idx = getattr(getattr(base, "embeddings", None), "padding_idx", None)
        if padding_idx is None:
            positions = torch.arange(width, device=input_ids.device).repeat(batch, 1)
        else:  # RoBERTa family: positions count from padding_idx + 1, pads stay at it
            mask = attention_mask.long()
            positions = torch.cumsum(mask, dim=1) * mask + padding_idx
        out["position_ids"] = positions.contiguous()
    return out


def pool(pooling: str, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """One layer's (B, T, H) hidden states → (B, H) by ``mean``, ``cls`` or ``last``.

    ``last`` takes each row's last real token wherever the padding is (left or right).
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)  # (T,)
        last = (attention_mask.long() * positions).argmax(dim=1)  # (B,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    count = mask.sum(dim=1).clamp(min=1.0)  # (B, 1)
    return (hidden * mask).sum(dim=1) / count
