"""Adversarial training on the token embeddings: the fast gradient method (FGM).

Miyato et al. (2017, "Adversarial training methods for semi-supervised text
classification") train each batch twice: on its tokens' embeddings, then on those
embeddings moved a step of length ``epsilon`` in the direction that raises the
loss fastest (the loss's gradient with respect to them, L2-normalised); the two
gradients add up before the optimizer step. Applied to BERT-like encoders with
the step normalised over the whole batch, it is the "FGM" of many Chinese
text-classification and NER recipes.

The step moves the embedding layer's *output* (a forward hook), not its weight
table: it works where the table is frozen (LoRA adapters) and leaves every weight
as it was. Importing this module does not import torch (the training config
validates ``adversarial_epsilon`` through it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument
from aimass.training.distill_options import number

if TYPE_CHECKING:
    from torch import Tensor, nn

    from aimass.training.config import TrainConfig

__all__ = ["ADVERSARIAL_TASKS", "EmbeddingAdversary", "adversary_for", "validate_adversarial"]

ADVERSARIAL_TASKS = ("classification", "regression", "token-classification")


def validate_adversarial(config: TrainConfig) -> None:
    """Refuse an ``adversarial_epsilon`` that is out of range or has nothing to perturb,
    naming the value and the fix."""
    value = config.adversarial_epsilon
    if not (number(value) and 0 <= value <= 1000):
        raise InvalidArgument(
            f"--adversarial-epsilon {value!r} is out of range: use a number in [0, 1000], "
            "e.g. 1.0 (0 = off)",
            field="adversarial_epsilon",
        )
    if not value:
        return
    fix = "drop --adversarial-epsilon"
    if config.task not in ADVERSARIAL_TASKS:
        why = (
            f"task {config.task!r} does not train adversarially (tasks that do: "
            f"{', '.join(ADVERSARIAL_TASKS)})"
        )
    elif config.mode != "finetune":
        why = f"mode {config.mode!r} trains a head on frozen features: no embeddings move"
        fix = f"add --mode finetune or {fix}"
    else:
        return
    raise InvalidArgument(
        f"--adversarial-epsilon {value}: {why}; {fix}", field="adversarial_epsilon"
    )


def adversary_for(embeddings: nn.Module, config: TrainConfig) -> EmbeddingAdversary | None:
    """The adversary a resolved config asks for on this embedding layer (None: off)."""
    epsilon = config.adversarial_epsilon
    return EmbeddingAdversary(embeddings, epsilon) if epsilon else None


class EmbeddingAdversary:
    """Trains each batch a second time on adversarially moved token embeddings.

    ``with adversary.watch(): loss(batch).backward()`` keeps the gradient of the loss
    with respect to the embedding layer's output; ``with adversary.attack():
    loss(batch).backward()`` then runs the same batch with that output moved by
    ``epsilon * g / ||g||`` (the norm over the whole batch) and adds its gradient to
    the first. Outside the two blocks the layer is untouched.
    """

    def __init__(self, embeddings: nn.Module, epsilon: float) -> None:
        self.embeddings = embeddings
        self.epsilon = float(epsilon)
        self._grad: Tensor | None = None

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Keep the gradient that reaches the embedding output during this block."""
        self._grad = None

        def keep(module: nn.Module, args: Any, output: Tensor) -> Tensor:
            if not output.requires_grad:  # a frozen table gives a leaf without grad
                output.requires_grad_(True)
            output.register_hook(self._store)
            return output

        handle = self.embeddings.register_forward_hook(keep)
        try:
            yield
        finally:
            handle.remove()

    def _store(self, grad: Tensor) -> None:
        self._grad = grad.detach()

    @contextmanager
    def attack(self) -> Iterator[None]:
        """Move the embedding output by the normalised gradient :meth:`watch` kept."""
        grad, self._grad = self._grad, None
        if grad is None:
            raise RuntimeError("EmbeddingAdversary.attack() needs a backward pass in watch()")
        norm = float(grad.norm())
        # A zero (or overflowed) gradient has no direction: the batch runs again as it was.
        delta = grad * (self.epsilon / norm) if norm > 0 and math.isfinite(norm) else None

        def move(module: nn.Module, args: Any, output: Tensor) -> Tensor:
            if delta is None:
                return output
            if delta.shape != output.shape:
                raise RuntimeError(
                    f"the adversarial pass embedded {tuple(output.shape)}, the first pass "
                    f"{tuple(delta.shape)}: the batch must be the same both times"
                )
            return output + delta

        handle = self.embeddings.register_forward_hook(move)
        try:
            yield
        finally:
            handle.remove()
