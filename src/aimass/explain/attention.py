"""Attention rollout (Abnar & Zuidema 2020): how much each input token flows into the output.

Per layer ``l`` the attention probabilities are averaged over heads, the
residual connection is modelled by mixing in the identity and rows are
renormalised::

    Â_l = normalise_rows(0.5 · mean_heads(A_l) + 0.5 · I)        (T, T)
    R   = Â_L · Â_{L-1} · … · Â_1                                  (T, T), rows sum to 1

Row ``i`` of ``R`` says how much of position ``i``'s final representation
comes from each input token. The model's pooled feature decides which rows
matter: the [CLS] row for ``cls``/``pooler`` pooling, the last token's row for
``last`` pooling (decoders), the mean of all rows for ``mean`` pooling.
Scores are non-negative, sum to 1 over the tokens and are the same for every
class (attention does not know the target).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.explain.base import (
    Explainer,
    ExplainTarget,
    Explanation,
    register_explainer,
    resolve_target,
)
from aimass.explain.words import encode_with_offsets, token_scores, token_words

if TYPE_CHECKING:
    import torch

__all__ = ["AttentionRollout", "attention_rollout"]


def attention_rollout(attentions: torch.Tensor, *, residual: float = 0.5) -> torch.Tensor:
    """Roll attention out through the layers.

    Args:
        attentions: (L, heads, T, T) attention probabilities, first layer first.
        residual: Weight of the identity (the skip connection) in each layer.

    Returns:
        (T, T) row-stochastic matrix: row ``i`` is the input-token mix of position ``i``.
    """
    import torch

    if attentions.dim() != 4 or attentions.shape[-1] != attentions.shape[-2]:
        raise InvalidArgument(
            f"attentions must be (layers, heads, T, T), got {tuple(attentions.shape)}"
        )
    length = attentions.shape[-1]
    eye = torch.eye(length, dtype=attentions.dtype, device=attentions.device)
    rollout = eye
    for layer in attentions.mean(dim=1):  # (T, T) per layer
        mixed = (1.0 - residual) * layer + residual * eye
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    return rollout


class AttentionRollout(Explainer):
    """Class-agnostic attention flow from each token into the pooled representation."""

    name = "attention"
    description = (
        "attention rollout over all layers (heads averaged, residual 0.5); scores sum to 1"
    )

    def check(self, target: ExplainTarget) -> None:
        super().check(target)
        assert target.network is not None
        if target.network.attentions is None:
            raise UnsupportedModel(
                f"explainer 'attention' needs attention probabilities, which {target.name} "
                "does not expose; use 'integrated-gradients' or 'occlusion'"
            )

    def settings(self, *, residual: float = 0.5, **options: Any) -> dict[str, Any]:
        """``residual`` is the identity's weight in each layer (the skip connection)."""
        super().settings(**options)
        if not 0.0 <= float(residual) < 1.0:
            raise InvalidArgument(f"residual must be in [0, 1), got {residual}")
        return {"residual": float(residual)}

    def explain_one(
        self, target: ExplainTarget, text: str, label: str | None, *, residual: float
    ) -> Explanation:
        import torch

        network = target.network
        assert network is not None
        assert network.attentions is not None
        encoded = encode_with_offsets(network, text)
        with torch.no_grad():
            layers = network.attentions(encoded.batch)  # L × (1, heads, T, T)
            outputs = network.model(**encoded.batch).float()[0]
        index, name = resolve_target(target, label, outputs.cpu().numpy())
        stacked = torch.stack([a[0].float() for a in layers])  # (L, heads, T, T)
        rollout = attention_rollout(stacked, residual=residual)
        pooling = network.model.head_config.pooling
        per_token = _pooled_row(rollout, pooling)  # (T,)
        tokens = token_scores(encoded, per_token.cpu().tolist())
        return Explanation(
            method=self.name,
            text=text,
            target=name,
            target_index=index,
            output="attention",
            words=token_words(text, tokens),
            tokens=tokens,
            truncated=encoded.truncated,
            details={
                "layers": len(layers),
                "residual": residual,
                "pooling": pooling,
                "rows": _ROWS.get(pooling, "mean of all rows"),
                "special_tokens_share": float(sum(t.score for t in tokens if t.special)),
                "class_agnostic": True,
            },
        )


# The rollout row of the token a pooling reads (one unpadded text: the last row is its last).
_ROWS = {"cls": "[CLS] row", "pooler": "[CLS] row", "last": "last token's row"}


def _pooled_row(rollout: torch.Tensor, pooling: str) -> torch.Tensor:
    """(T,) input-token mix of the pooled feature, from the (T, T) rollout."""
    if pooling in ("cls", "pooler"):
        return rollout[0]
    if pooling == "last":
        return rollout[-1]
    return rollout.mean(dim=0)


register_explainer(AttentionRollout())
