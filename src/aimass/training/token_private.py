"""DP-SGD for the token-level tasks: one driver for a whole model (fine-tuning) and
for a tagging head on cached features (:mod:`aimass.training.token_features`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from aimass.training.examples import model_inputs
from aimass.training.loop import FitResult, fit, param_groups

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from aimass.training.examples import Example, ExampleTask
    from aimass.training.tasks import TrainInputs

__all__ = ["fit_dp", "fit_private_finetune"]


def fit_private_finetune(
    task: ExampleTask,
    model: PreTrainedModel,
    train: list[Example],
    pad_id: int,
    generator: torch.Generator,
    evaluate: Callable[[], dict[str, Any]],
    inputs: TrainInputs,
) -> FitResult:
    """DP-SGD over ``train`` (one example per row): Poisson-sampled batches, each row's
    gradient clipped and the sum noised by the engine, every weight but the token
    embeddings trained (unless the engine trains them too).

    A row's loss is the mean over its labelled tokens, so a long sentence weighs
    no more than a short one in its clipped gradient.
    """
    from aimass.models.sequence import explicit_ids

    engine = inputs.privacy
    assert engine is not None
    if not engine.train_embeddings:
        # The vocabulary x hidden table: the costliest per-example norm under DP
        # and the most noised coordinates, for little gain.
        model.get_input_embeddings().requires_grad_(False)
    task.freeze_for_privacy(model)

    def forward(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = [train[i] for i in rows]
        batch = task.collate(chosen, pad_id, inputs.device, generator)
        ids = explicit_ids(model, batch["input_ids"], batch["attention_mask"], {})
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}, **ids).logits
        return logits, task.targets(chosen, batch["labels"], model_inputs(batch))

    return fit_dp(task, model, len(train), forward, evaluate, inputs, finetune=True)


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
    decay = cfg.layer_lr_decay if finetune else 1.0  # a head alone has no layers
    optimizer = torch.optim.AdamW(param_groups(module, cfg.weight_decay or 0.0, decay), lr=cfg.lr)

    def row_loss(
        logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        sums, counts = task.loss_rows(logits, labels, smoothing=cfg.label_smoothing)
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
