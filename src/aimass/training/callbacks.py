"""Callbacks: how progress, metrics and cancellation cross the training loop.

The loop knows nothing about terminals, TensorBoard or the job store; it calls
these hooks. A callback may raise :class:`~aimass.errors.Cancelled` from
``on_step_end`` to stop training within one step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aimass.errors import Cancelled

__all__ = [
    "Callback",
    "CallbackList",
    "CancelCallback",
    "LoopState",
    "RichProgress",
    "TensorBoardLogger",
]


@dataclass
class LoopState:
    """What the loop knows, handed to every hook."""

    phase: str = "train"
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    total_steps: int = 0
    loss: float = math.nan
    lr: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    # Epochs already done by an earlier attempt whose checkpoint this run resumed.
    resumed_from: int = 0

    @property
    def progress(self) -> float:
        """Fraction of training steps done."""
        return self.step / self.total_steps if self.total_steps else 0.0


class Callback:
    """Base class: override the hooks you need."""

    def on_phase(self, name: str, total: int) -> None:
        """A preparatory phase (e.g. ``encoding features``) of ``total`` items starts."""

    def on_phase_advance(self, done: int) -> None:
        """``done`` more items of the current phase are finished."""

    def on_train_start(self, state: LoopState) -> None:
        """The optimisation loop starts."""

    def on_step_end(self, state: LoopState) -> None:
        """One optimizer step is done (``state.loss`` is that step's loss)."""

    def on_eval(self, state: LoopState, metrics: dict[str, Any]) -> None:
        """Validation metrics after an epoch."""

    def on_checkpoint(self, state: LoopState, epoch: int) -> None:
        """A checkpoint after ``epoch`` epochs was saved."""

    def on_train_end(self, state: LoopState) -> None:
        """Training finished (also after an error or cancellation)."""


class CallbackList(Callback):
    """Fans every hook out to a list of callbacks."""

    def __init__(self, callbacks: Sequence[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_phase(self, name: str, total: int) -> None:
        for cb in self.callbacks:
            cb.on_phase(name, total)

    def on_phase_advance(self, done: int) -> None:
        for cb in self.callbacks:
            cb.on_phase_advance(done)

    def on_train_start(self, state: LoopState) -> None:
        for cb in self.callbacks:
            cb.on_train_start(state)

    def on_step_end(self, state: LoopState) -> None:
        for cb in self.callbacks:
            cb.on_step_end(state)

    def on_eval(self, state: LoopState, metrics: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_eval(state, metrics)

    def on_checkpoint(self, state: LoopState, epoch: int) -> None:
        for cb in self.callbacks:
            cb.on_checkpoint(state, epoch)

    def on_train_end(self, state: LoopState) -> None:
        for cb in self.callbacks:
            cb.on_train_end(state)


class CancelCallback(Callback):
    """Raises :class:`Cancelled` once ``should_stop()`` says so (checked every step)."""

    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop

    def on_phase_advance(self, done: int) -> None:
        if self.should_stop():
            raise Cancelled("training was cancelled")

    def on_step_end(self, state: LoopState) -> None:
        if self.should_stop():
            raise Cancelled(f"training was cancelled at step {state.step}")


class RichProgress(Callback):
    """A rich progress bar with the live (smoothed) loss and the last validation score
    (``metric``: its name, or names of which the first one evaluated is shown)."""

    def __init__(self, *, metric: str | tuple[str, ...] = "", console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.metrics = (metric,) if isinstance(metric, str) else metric
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: Any = None
        self._smoothed = math.nan
        self._last_eval = ""

    def on_phase(self, name: str, total: int) -> None:
        self.progress.start()
        self._task = self.progress.add_task(name, total=total, info="")

    def on_phase_advance(self, done: int) -> None:
        self.progress.advance(self._task, done)

    def on_train_start(self, state: LoopState) -> None:
        self.progress.start()
        self._task = self.progress.add_task("training", total=state.total_steps, info="")

    def on_step_end(self, state: LoopState) -> None:
        if math.isfinite(state.loss):
            beta = 0.9
            prev = self._smoothed
            self._smoothed = (
                state.loss if math.isnan(prev) else beta * prev + (1 - beta) * state.loss
            )
        self._show(state)

    def on_eval(self, state: LoopState, metrics: dict[str, Any]) -> None:
        shown = next((name for name in self.metrics if name in metrics), None)
        if shown is not None:
            self._last_eval = f" val {shown} {metrics[shown]:.4f}"
            # Redraw now: after the last epoch no further step would show the final score.
            if self._task is not None:
                self._show(state)

    def _show(self, state: LoopState) -> None:
        info = f"epoch {state.epoch + 1}/{state.epochs} loss {self._smoothed:.4f}{self._last_eval}"
        self.progress.update(self._task, completed=state.step, info=info)

    def on_train_end(self, state: LoopState) -> None:
        self.progress.stop()


class TensorBoardLogger(Callback):
    """Writes train loss, learning rate and validation metrics as TensorBoard events."""

    def __init__(self, log_dir: Path, *, every: int = 10) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))
        self.every = every

    def on_step_end(self, state: LoopState) -> None:
        if state.step % self.every == 0 and math.isfinite(state.loss):
            self.writer.add_scalar("train/loss", state.loss, state.step)
            self.writer.add_scalar("train/lr", state.lr, state.step)

    def on_eval(self, state: LoopState, metrics: dict[str, Any]) -> None:
        for name, value in metrics.items():
            if isinstance(value, int | float):
                self.writer.add_scalar(f"validation/{name}", value, state.step)
        self.writer.flush()

    def on_train_end(self, state: LoopState) -> None:
        self.writer.close()
