"""The training loop: one function, read top to bottom (nanoGPT style).

Tasks do not fork it. A task hands ``fit`` its batches, a function that turns
a batch into a loss, and a function that evaluates on the validation split;
differential privacy, distillation and new tasks plug in through those and
through the optimizer, never by copying the loop.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import nn

from aimass.errors import InvalidArgument
from aimass.models.layers import LAYOUTS, layer_depths
from aimass.training.callbacks import CallbackList, LoopState
from aimass.training.checkpoint import Checkpointer
from aimass.training.config import TrainConfig

if TYPE_CHECKING:
    from aimass.training.adversarial import EmbeddingAdversary
    from aimass.training.parallel import DataParallel

__all__ = ["Batches", "FitResult", "fit", "lr_multiplier", "param_groups", "seed_everything"]


class Batches(Protocol):
    """One epoch's batches: sized and iterable (a list, or a lazy Poisson sampler)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class FitResult:
    """What training produced besides the weights (which are left in the model).

    ``train_seconds`` counts optimisation steps only (no evaluation), so
    ``samples / train_seconds`` is the training throughput.
    """

    best_metrics: dict[str, Any]
    best_epoch: int
    history: list[dict[str, Any]]
    steps: int
    stopped_early: bool
    train_seconds: float
    samples: int

    def summary(self, *, seconds: float, train_rows: int) -> dict[str, Any]:
        """The ``training`` block of a version's metrics (``seconds`` includes evaluation)."""
        return {
            "seconds": round(seconds, 3),
            "steps": self.steps,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "train_rows": train_rows,
            "train_seconds": round(self.train_seconds, 3),
            "samples_per_second": round(self.samples / max(self.train_seconds, 1e-9), 2),
        }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_multiplier(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to zero at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    remaining = max(total - warmup, 1)
    return max(0.0, (total - step) / remaining)


def param_groups(
    module: nn.Module, weight_decay: float, layer_decay: float = 1.0
) -> list[dict[str, Any]]:
    """AdamW groups: decay weights, not biases or normalisation parameters.

    With ``layer_decay`` below 1, each group also carries an ``lr_scale`` that
    ``fit`` multiplies the step size by: 1 for the head and what follows the layer
    stack, ``layer_decay`` for the top layer, its square for the one below, and so
    on down to the embeddings (layer-wise learning-rate decay, Howard and Ruder
    2018; Sun et al. 2019): the layers nearest the input, whose features are the
    most general, move least.
    """
    depths, layers = ({}, 0) if layer_decay == 1.0 else _depths(module, layer_decay)
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        decays = not (param.ndim < 2 or "norm" in name.lower())
        scale = layer_decay ** (layers + 1 - depths[id(param)]) if depths else 1.0
        groups.setdefault((decays, scale), []).append(param)
    if not depths:
        return [
            {"params": groups.get((True, 1.0), []), "weight_decay": weight_decay},
            {"params": groups.get((False, 1.0), []), "weight_decay": 0.0},
        ]
    return [
        {"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
        for (decays, scale), params in sorted(groups.items(), key=lambda kv: -kv[0][1])
    ]


def _depths(module: nn.Module, layer_decay: float) -> tuple[dict[int, int], int]:
    found = layer_depths(module)
    if found is None:
        raise InvalidArgument(
            f"--layer-lr-decay {layer_decay} needs a model whose layers aimass can find "
            f"({LAYOUTS}); a {type(module).__name__} is neither: drop --layer-lr-decay",
            field="layer_lr_decay",
        )
    return found


def _grouped(batches: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive groups of ``size`` batches (the last may be shorter); batches may be lazy."""
    group: list[Any] = []
    for batch in batches:
        group.append(batch)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _improved(value: float, best: float | None, greater_is_better: bool) -> bool:
    if best is None:
        return True
    return value > best if greater_is_better else value < best


def _backward(
    loss_fn: Callable[[Any], torch.Tensor],
    batch: Any,
    scale: float,
    adversary: EmbeddingAdversary | None,
) -> float:
    """Backward pass of one micro-batch's loss times ``scale`` (and, with an
    ``adversary``, of the same batch on its perturbed embeddings); the first loss."""
    with adversary.watch() if adversary is not None else nullcontext():
        loss = loss_fn(batch) * scale
        loss.backward()
    if adversary is not None:
        with adversary.attack():
            (loss_fn(batch) * scale).backward()
    return float(loss.detach())


def fit(
    module: nn.Module,
    *,
    batches: Callable[[int], Batches],
    loss_fn: Callable[[Any], torch.Tensor],
    evaluate: Callable[[], dict[str, Any]],
    config: TrainConfig,
    metric: str,
    greater_is_better: bool,
    callbacks: CallbackList,
    optimizer: torch.optim.Optimizer | None = None,
    batch_size_of: Callable[[Any], int] = len,
    checkpoint: Checkpointer | None = None,
    parallel: DataParallel | None = None,
    start_metrics: dict[str, Any] | None = None,
    adversary: EmbeddingAdversary | None = None,
) -> FitResult:
    """Train ``module`` and leave the best validation weights in it.

    Args:
        module: The parameters being trained (the head alone in features mode).
        batches: ``epoch -> batches`` (re-shuffled per epoch by the caller); with
            ``config.grad_accum`` > 1, that many consecutive batches make one step.
        loss_fn: ``batch -> scalar loss``; the forward pass lives here.
        evaluate: Validation metrics of the current weights, called after every
            epoch and, with ``config.eval_steps``, every that many steps within one.
        config: A resolved :class:`TrainConfig`.
        metric: The validation metric that selects the best weights.
        greater_is_better: Direction of ``metric``.
        callbacks: Progress, logging, cancellation.
        optimizer: Defaults to AdamW over ``param_groups(module)``.
        batch_size_of: Examples in a batch (for the throughput figure).
        checkpoint: Save model, optimizer, loop and RNG state after every epoch,
            and continue from the newest checkpoint there when one exists.
        parallel: Run as one rank of a data-parallel group: each rank computes
            its share of every batch and the gradients are averaged; only rank 0
            evaluates (its score is broadcast) and saves checkpoints. Every rank
            resumes from the same checkpoint.
        start_metrics: Validation metrics of the weights ``module`` starts with (a
            linear probe's, before fine-tuning): an epoch must beat them to replace
            those weights as the best, and ``best_epoch`` 0 means none did.
        adversary: Train every batch a second time on its embeddings moved against
            the model (FGM); the two gradients add up, the step loss is the first's.
    """
    assert config.epochs is not None
    assert config.lr is not None
    optimizer = optimizer or torch.optim.AdamW(
        param_groups(module, config.weight_decay or 0.0, config.layer_lr_decay), lr=config.lr
    )
    trainable = [p for group in optimizer.param_groups for p in group["params"]]
    accum = config.grad_accum
    micro_per_epoch = len(batches(0))
    if micro_per_epoch == 0:
        raise InvalidArgument("the training split is empty; nothing to train on")
    steps_per_epoch = math.ceil(micro_per_epoch / accum)
    total = steps_per_epoch * config.epochs
    warmup = int(total * (config.warmup_ratio or 0.0))
    state = LoopState(epochs=config.epochs, total_steps=total)
    if start_metrics is not None:
        state.best = {**start_metrics, "epoch": 0}
    best_value: float | None = None
    # Only rank 0 evaluates: other ranks' start metrics (a probe's) lack the score.
    if start_metrics is not None and metric in start_metrics:
        best_value = float(start_metrics[metric])
    stale = 0
    stopped_early = False
    train_seconds = 0.0
    samples = 0
    start_epoch = 0
    resumed = checkpoint.load() if checkpoint is not None else None
    if resumed is not None:
        # 0. resume: weights, optimizer moments, counters and RNGs as they were saved
        module.load_state_dict(resumed.model)
        optimizer.load_state_dict(resumed.optimizer)
        loop = resumed.loop
        state.step, state.history, state.best = loop["step"], loop["history"], loop["best"]
        best_value, stale, stopped_early = loop["best_value"], loop["stale"], loop["stopped"]
        train_seconds, samples = loop["train_seconds"], loop["samples"]
        start_epoch = state.resumed_from = resumed.epoch
        resumed.restore_rng()
    if parallel is not None:
        parallel.broadcast_module(module)  # every rank starts from rank 0's weights
        if start_metrics is not None and resumed is None:  # and from rank 0's score to beat
            value = parallel.broadcast_value(
                math.nan if best_value is None else best_value, device=trainable[0].device
            )
            best_value = value if math.isfinite(value) else None
    # The weights kept if no epoch beats them: the start (after rank 0's broadcast).
    best_weights = resumed.best if resumed is not None else _snapshot(module)
    chief = parallel is None or parallel.chief

    def validate(epoch: int) -> None:
        """6-7. Evaluate on the validation split, keep the best weights, count patience."""
        nonlocal best_value, best_weights, stale, stopped_early
        module.eval()
        metrics = evaluate() if chief else {}
        value = float(metrics[metric]) if chief else math.nan
        if parallel is not None:  # rank 0's score decides for every rank
            value = parallel.broadcast_value(value, device=trainable[0].device)
        state.history.append({"epoch": epoch + 1, "step": state.step, **metrics})
        callbacks.on_eval(state, metrics)
        if _improved(value, best_value, greater_is_better) and math.isfinite(value):
            best_value, stale = value, 0
            best_weights = _snapshot(module)
            state.best = {"epoch": epoch + 1, "step": state.step, **metrics}
        else:
            stale += 1
            stopped_early = bool(config.patience and stale >= config.patience)

    callbacks.on_train_start(state)
    try:
        for epoch in range(start_epoch, config.epochs):
            if stopped_early:
                break
            state.epoch = epoch
            module.train()
            started = time.perf_counter()
            epoch_end = steps_per_epoch * (epoch + 1)
            for group_batches in _grouped(batches(epoch), accum):
                # 1. learning rate for this step (warm-up, then linear decay)
                state.lr = config.lr * lr_multiplier(state.step, total, warmup)
                for group in optimizer.param_groups:
                    group["lr"] = state.lr * group.get("lr_scale", 1.0)
                # 2-3. forward pass, loss and backward pass per micro-batch; the
                # gradients add up, so each loss is scaled by the group's size
                step_loss = 0.0
                for batch in group_batches:
                    samples += batch_size_of(batch)
                    share, weight = batch, 1.0
                    if parallel is not None:
                        # this rank's share, weighted so that the averaged gradient is
                        # the whole batch's mean (shares may differ by one example)
                        share = parallel.shard(batch)
                        weight = batch_size_of(share) * parallel.world_size / batch_size_of(batch)
                        if not batch_size_of(share):
                            continue
                    scale = weight / len(group_batches)
                    step_loss += _backward(loss_fn, share, scale, adversary)
                if parallel is not None:
                    step_loss = parallel.average_gradients(trainable, step_loss)
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                # 4. optimizer step, then clear gradients (set_to_none frees memory)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                # 5. report: progress bar, TensorBoard, job heartbeat; may cancel
                state.step += 1
                state.loss = step_loss
                callbacks.on_step_end(state)
                # 6-7 within the epoch, every eval_steps steps (the epoch's end has its own)
                every = config.eval_steps
                if every and state.step % every == 0 and state.step < epoch_end:
                    paused = time.perf_counter()
                    validate(epoch)
                    started += time.perf_counter() - paused  # evaluation is not training time
                    if stopped_early:
                        break
                    module.train()
            train_seconds += time.perf_counter() - started
            # 6-7. evaluate, keep the best weights, stop when patience runs out
            if not stopped_early:
                validate(epoch)
            # 8. checkpoint: a crash from here on resumes at the next epoch
            if checkpoint is not None and chief:
                checkpoint.save(
                    epoch=epoch + 1,
                    model=module.state_dict(),
                    best=best_weights,
                    optimizer=optimizer,
                    loop={
                        "step": state.step,
                        "history": state.history,
                        "best": state.best,
                        "best_value": best_value,
                        "stale": stale,
                        "stopped": stopped_early,
                        "train_seconds": train_seconds,
                        "samples": samples,
                    },
                )
                callbacks.on_checkpoint(state, epoch + 1)
    finally:
        callbacks.on_train_end(state)
    module.load_state_dict(best_weights)
    module.eval()
    return FitResult(
        best_metrics=dict(state.best),
        best_epoch=int(state.best.get("epoch", 0)),
        history=state.history,
        steps=state.step,
        stopped_early=stopped_early,
        train_seconds=train_seconds,
        samples=samples,
    )
