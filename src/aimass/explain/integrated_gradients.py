"""Integrated gradients on the word embeddings (Sundararajan et al. 2017), via Captum.

For a text with word embeddings ``x`` (T, H) and a baseline ``x'`` — the
embeddings of the same sequence with every non-special token replaced by
[PAD] ([CLS]/[SEP] kept) — the attribution of token ``t`` is::

    IG_t = sum_h (x - x')_th · ∫_0^1 ∂f(x' + α (x - x')) / ∂x_th dα

where ``f`` is the target class's logit (classification) or the predicted
value (regression); for a NER tagger, the sum of an entity's tag logits
(:mod:`aimass.explain.entities`). Completeness: ``sum_t IG_t = f(x) - f(x')``; the integral
is approximated (Gauss-Legendre, ``n_steps`` points) and the remainder is
reported as ``convergence_delta``. Special tokens equal their baseline, so
their attribution is exactly 0.

We attribute to ``inputs_embeds`` with Captum's ``IntegratedGradients`` rather
than hooking the embedding layer with ``LayerIntegratedGradients``: the result
is the same (both interpolate only the word embeddings; position and
token-type embeddings are added inside the model), but no hook is put on the
shared model, so explanations can run while other threads predict with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aimass.errors import InvalidArgument
from aimass.explain.base import (
    Explainer,
    ExplainTarget,
    Explanation,
    register_explainer,
    resolve_target,
)
from aimass.explain.entities import integrate_entities
from aimass.explain.words import (
    baseline_note,
    encode_with_offsets,
    pad_baseline,
    token_scores,
    token_words,
)

__all__ = ["IntegratedGradients"]

MAX_STEPS = 1000


class IntegratedGradients(Explainer):
    """Signed per-token attributions to the target logit (or value), with a convergence delta."""

    name = "integrated-gradients"
    description = (
        "integrated gradients on the word embeddings against a [PAD] baseline; scores sum to "
        "f(text) - f(baseline) up to the reported convergence delta"
    )
    tasks = ("classification", "regression", "token-classification", "masked-lm", "causal-lm")

    def settings(
        self, *, n_steps: int = 50, internal_batch_size: int = 16, **options: Any
    ) -> dict[str, Any]:
        """``n_steps`` trades time for a smaller convergence delta; ``internal_batch_size``
        bounds memory (interpolation points evaluated per forward pass)."""
        super().settings(**options)
        if not 1 <= int(n_steps) <= MAX_STEPS:
            raise InvalidArgument(f"n_steps must be between 1 and {MAX_STEPS}, got {n_steps}")
        if int(internal_batch_size) < 1:
            raise InvalidArgument(f"internal_batch_size must be >= 1, got {internal_batch_size}")
        return {"n_steps": int(n_steps), "internal_batch_size": int(internal_batch_size)}

    def explain_one(
        self,
        target: ExplainTarget,
        text: str,
        label: str | None,
        *,
        n_steps: int,
        internal_batch_size: int,
    ) -> Explanation:
        import torch
        from captum.attr import IntegratedGradients as CaptumIG

        if target.tagger is not None:
            return integrate_entities(
                target,
                text,
                label,
                method=self.name,
                n_steps=n_steps,
                internal_batch_size=internal_batch_size,
            )
        network = target.network
        assert network is not None
        encoded = encode_with_offsets(network, text)
        ids = encoded.batch["input_ids"]  # (1, T)
        mask = encoded.batch["attention_mask"]
        types = encoded.batch.get("token_type_ids")
        model = network.model
        special = torch.tensor(encoded.special, device=ids.device).unsqueeze(0)
        pad_id = network.tokenizer.pad_token_id
        baseline_ids = pad_baseline(ids, special, pad_id)

        def forward(embeds: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = model(
                input_ids=None,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                inputs_embeds=embeds,
            ).float()  # (B, C)
            return out * network.value_scale + network.value_shift

        with torch.no_grad():
            embedding = model.encoder.get_input_embeddings()
            x = embedding(ids).detach()  # (1, T, H)
            x0 = embedding(baseline_ids).detach()
            outputs = forward(torch.cat([x, x0]), mask.repeat(2, 1), _twice(types))
        index, name = resolve_target(target, label, outputs[0].cpu().numpy())
        with torch.enable_grad():
            attributions, delta = CaptumIG(forward).attribute(
                x,
                baselines=x0,
                target=index,
                additional_forward_args=(mask, types),
                n_steps=n_steps,
                internal_batch_size=internal_batch_size,
                return_convergence_delta=True,
            )
        per_token = attributions.sum(dim=-1)[0].detach().float().cpu().numpy()  # (T,)
        tokens = token_scores(encoded, per_token.tolist())
        f_x, f_0 = float(outputs[0, index]), float(outputs[1, index])
        return Explanation(
            method=self.name,
            text=text,
            target=name,
            target_index=index,
            output="value" if target.task == "regression" else "logit",
            words=token_words(text, tokens),
            tokens=tokens,
            truncated=encoded.truncated,
            details={
                "n_steps": n_steps,
                "integration": "gausslegendre",
                "baseline": baseline_note(pad_id),
                "output_at_input": f_x,
                "output_at_baseline": f_0,
                "attribution_sum": float(np.sum(per_token)),
                "convergence_delta": float(delta.reshape(-1)[0]),
            },
        )


def _twice(tensor: Any) -> Any:
    return None if tensor is None else tensor.repeat(2, 1)


register_explainer(IntegratedGradients())
