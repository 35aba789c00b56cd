"""DP-SGD for the token-level tasks: one driver for a whole model (fine-tuning) and
for a tagging head on cached features (:mod:`aimass.training.token_features`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from aimass.training.loop import FitResult, fit, param_groups

if TYPE_CHECKING:
    from aimass.training.examples import ExampleTask
    from aimass.training.tasks import TrainInputs

__all__ = ["fit_dp"]


def fit_dp(
    task: ExampleTask,
    module: torch.nn.Module,
    num_examples: int,
    forward: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor]],
    evaluate: Callable[[], dict[str, Any]],
    inputs: TrainInputs,
    *,
    finetune: bool,
) -> FitResult:
    """DP-SGD on ``module``'s trainable weights: Poisson batches of example indices,
    ``forward(rows) -> (logits, labels)``, each example's loss the mean over its
    labelled tokens (a long sentence weighs no more than a short one in its clipped
    gradient), the clipped sum noised by the engine. ``finetune`` picks the
    engine's default clipping (ghost for fine-tuning, per-example gradients for a
    head alone)."""
    engine = inputs.privacy
    assert engine is not None
    cfg = inputs.config
    assert cfg.lr is not None
    engine.check_module(module)
    optimizer = torch.optim.AdamW(param_groups(module, cfg.weight_decay or 0.0), lr=cfg.lr)

    def row_loss(
        logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        sums, counts = task.loss_rows(logits, labels)
        per_row = sums / counts.clamp(min=1)
        return per_row if reduction == "none" else per_row.mean()

    private = engine.make_private(
        module,
        optimizer=optimizer,
        num_examples=num_examples,
        phases=cfg.phases(),
        phase=0,
        loss=row_loss,
        finetune=finetune,
        unit=task.privacy_unit,
    )
    with private as run:

        def loss_fn(idx: Sequence[int] | torch.Tensor) -> Any:
            rows = idx.tolist() if isinstance(idx, torch.Tensor) else list(idx)
            return run.loss(*forward(rows))

        return fit(
            module,
            batches=run.batches,
            loss_fn=loss_fn,
            evaluate=evaluate,
            # Per-example clipping in the private optimizer replaces global clipping.
            config=dataclasses.replace(cfg, grad_clip=0.0),
            metric=task.metric,
            greater_is_better=task.greater_is_better,
            callbacks=inputs.callbacks,
            optimizer=run.optimizer,
        )
