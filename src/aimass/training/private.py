"""The hook through which differentially private training plugs into the one loop.

``training`` does not import ``aimass.privacy`` (they are siblings in the layer
graph). A task recipe that finds a :class:`PrivateTraining` engine in its
:class:`~aimass.training.tasks.TrainInputs` hands it the objects it would train
with — module, optimizer, the size of the training split, the loss — and trains
with what comes back, Opacus facade style (``make_private`` returns wrapped
objects). The jobs layer builds the engine from ``aimass.privacy`` and fills the
slot; the loop itself never changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from aimass.training.loop import Batches

__all__ = ["LossFunction", "PrivateRun", "PrivateTraining"]

# (outputs, targets, *, reduction="mean"|"none") -> loss
LossFunction = Callable[..., "torch.Tensor"]


class PrivateRun(Protocol):
    """What a private engine hands back: train with these instead of your own.

    Attributes:
        optimizer: Clips per-example gradients and adds noise before each step.
        batches: ``epoch -> index batches`` drawn by Poisson sampling (sizes vary).
        loss: Loss to call on ``(outputs, targets)``; ghost clipping returns an
            object whose ``backward()`` runs its two backward passes. It refuses
            (``PrivacyBudgetExceeded``) the step that would overspend the budget.
    """

    @property
    def optimizer(self) -> torch.optim.Optimizer: ...

    @property
    def batches(self) -> Callable[[int], Batches]: ...

    @property
    def loss(self) -> Callable[[torch.Tensor, torch.Tensor], Any]: ...


class PrivateTraining(Protocol):
    """A differential-privacy engine (implemented by ``aimass.privacy.DPEngine``).

    Attributes:
        train_embeddings: Whether fine-tuning trains the token embeddings too
            (otherwise the recipe freezes them before ``make_private``).
    """

    @property
    def train_embeddings(self) -> bool: ...

    def check_module(self, module: nn.Module) -> None:
        """Raise ``UnsupportedModel`` (with reasons and alternatives) before any training."""

    def make_private(
        self,
        module: nn.Module,
        *,
        optimizer: torch.optim.Optimizer,
        num_examples: int,
        phases: Sequence[tuple[int, int]],
        phase: int,
        loss: LossFunction,
        finetune: bool,
        unit: str = "training example",
    ) -> AbstractContextManager[PrivateRun]:
        """Wrap the training objects for phase ``phase`` of ``phases``; the context
        removes the hooks afterwards.

        ``phases`` lists ``(batch size, epochs)`` of every private phase of the run in
        order (a linear probe, then fine-tuning): phase 0 calibrates one noise for
        all of them, and one accountant counts every phase's steps. ``unit`` names
        what one example is (the privacy unit), for the record.
        """

    def summary(self) -> dict[str, Any]:
        """The privacy record of the finished run (spent epsilon, delta, noise, ...)."""
