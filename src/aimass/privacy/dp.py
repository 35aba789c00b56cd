"""Differentially private training (DP-SGD) with Opacus, as a facade over the caller's objects.

:class:`DPEngine` implements the training package's ``PrivateTraining`` hook:
``make_private(module, optimizer=..., ...)`` calibrates the noise for a target
epsilon, attaches Opacus's per-example gradient hooks to the module *without
wrapping it* (``wrap_model=False``: Hugging Face models keep their own
attribute lookups and state-dict keys), swaps the optimizer for a clipping and
noising one, replaces shuffled batches with Poisson-sampled ones, and — for
ghost clipping — hands back Opacus's own loss. The loop trains with what comes
back; nothing else changes.

The privacy unit is one training example. Only the trained weights are
covered: in ``features`` mode the frozen pretrained encoder never sees the
data's gradients, so the head alone is trained privately.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument, PrivacyBudgetExceeded
from aimass.privacy.accountant import (
    epsilon_spent,
    noise_for_epsilon,
    quiet_opacus,
    require_opacus,
)
from aimass.privacy.dp_config import CLIPPINGS, GRAD_SAMPLE_MODES, DPConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["CLIPPINGS", "GRAD_SAMPLE_MODES", "DPConfig", "DPEngine"]


def _trains_embeddings(module: nn.Module) -> bool:
    """Whether the token-embedding table of ``module`` is trained: the input embeddings
    of the first (sub)module that names them, else its largest ``nn.Embedding`` (a small
    vocabulary can have fewer rows than the position table)."""
    from torch import nn

    for part in module.modules():
        named = getattr(part, "get_input_embeddings", None)
        table = named() if callable(named) else None
        if isinstance(table, nn.Embedding):
            return bool(table.weight.requires_grad)
    tables = [m for m in module.modules() if isinstance(m, nn.Embedding)]
    if not tables:
        return False
    return max(tables, key=lambda m: m.num_embeddings).weight.requires_grad


def tied_trainable(module: nn.Module) -> list[str]:
    """The trained weights of ``module`` that more than one layer holds (tied weights,
    e.g. a language model's output layer and its token embeddings), by their first name.

    Ghost clipping bounds each layer's share of an example's gradient on its own, so
    a tied weight's per-example norm would be read from one layer only; Opacus
    refuses it. Per-example gradients (``hooks``) sum both layers' shares exactly.
    """
    holders: dict[int, list[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        if param.requires_grad:
            holders.setdefault(id(param), []).append(name)
    return [names[0] for names in holders.values() if len(names) > 1]


def _forget_activations(module: nn.Module) -> None:
    """Drop what Opacus's hooks captured for a step that never ran its backward pass.

    ``cleanup`` removes the hooks' per-parameter state but not these per-module
    captures; a phase that ends on a refused step would hand them to the next.
    """
    for sub in module.modules():
        for name in ("activations", "max_batch_len"):
            if hasattr(sub, name):
                delattr(sub, name)


class _Criterion:
    """An ``nn.Module``-like loss with a ``reduction`` attribute, as ghost clipping wants."""

    def __init__(self, loss: Callable[..., torch.Tensor]) -> None:
        self.loss = loss
        self.reduction = "mean"

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs, targets, reduction=self.reduction)


class _PoissonBatches:
    """Index batches from Opacus's Poisson sampler; each example joins with probability q."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for (indices,) in self.loader:
            yield indices


class _BudgetGuard:
    """Refuses the step that would take the run past its planned (in-budget) steps.

    Checked in the loss of each step, before its backward pass and optimizer
    step, so the budget is never spent first and reported afterwards.
    """

    def __init__(self, max_steps: int, target_epsilon: float, *, where: str = "") -> None:
        self.max_steps = max_steps
        self.target_epsilon = target_epsilon
        self.where = where
        self.steps = 0

    def before_step(self) -> None:
        if self.steps >= self.max_steps:
            raise PrivacyBudgetExceeded(
                f"step {self.steps + 1}{self.where} would spend more than the target epsilon "
                f"{self.target_epsilon}: the budget allows {self.max_steps} steps{self.where}; "
                "training stops here and nothing is registered",
                steps=self.steps,
                max_steps=self.max_steps,
            )
        self.steps += 1


@dataclass
class _Run:
    """What ``make_private`` hands back (the training package's ``PrivateRun``)."""

    optimizer: Any
    batches: Callable[[int], _PoissonBatches]
    loss: Callable[[torch.Tensor, torch.Tensor], Any]


@dataclass
class _Record:
    """The plan of a run and, per phase made private so far, what was clipped and noised."""

    noise_multiplier: float = 0.0
    planned_steps: int = 0
    num_examples: int = 0
    unit: str = "training example"
    phases: list[dict[str, Any]] = field(default_factory=list)


class DPEngine:
    """DP-SGD for one training run (the ``PrivateTraining`` the training recipe calls).

    Args:
        config: The user's request; ``delta`` is resolved against the training split.
    """

    def __init__(self, config: DPConfig) -> None:
        require_opacus()
        self.config = config
        self._engine: Any = None
        self._schedule: list[dict[str, Any]] = []
        self._examples: Any = None
        self._record = _Record()

    @property
    def train_embeddings(self) -> bool:
        """Whether fine-tuning trains the token embeddings too (``DPConfig.train_embeddings``)."""
        return self.config.train_embeddings

    def check_module(self, module: nn.Module) -> None:
        """Raise ``UnsupportedModel`` listing every layer DP-SGD cannot train, with alternatives."""
        from aimass.privacy.validate import require_supported

        require_supported(module)

    def plan(self, *, num_examples: int, phases: Sequence[tuple[int, int]]) -> dict[str, Any]:
        """The noise and each phase's sampling rate and steps; raises before training when
        the run would overspend.

        Args:
            num_examples: Training examples (the privacy unit).
            phases: ``(batch size, epochs)`` of each private phase of the run, in order
                (e.g. a linear probe, then fine-tuning). One noise multiplier covers them
                all, calibrated so that their composition stays within the budget.
        """
        config = self.config.resolved(num_examples)
        assert config.delta is not None
        schedule = []
        for batch_size, epochs in phases:
            steps_per_epoch = math.ceil(num_examples / min(batch_size, num_examples))
            schedule.append((1.0 / steps_per_epoch, steps_per_epoch * epochs))
        steps = sum(s for _q, s in schedule)
        if config.noise_multiplier is None:
            sigma = noise_for_epsilon(
                target_epsilon=config.target_epsilon,
                delta=config.delta,
                schedule=tuple(schedule),
                accountant=config.accountant,
            )
        else:
            sigma = config.noise_multiplier
            planned = epsilon_spent(
                noise_multiplier=sigma,
                schedule=tuple(schedule),
                delta=config.delta,
                accountant=config.accountant,
            )
            if planned > config.target_epsilon:
                rates = ", ".join(f"{s} at sampling rate {q:.4g}" for q, s in schedule)
                raise PrivacyBudgetExceeded(
                    f"noise multiplier {sigma} for the planned steps ({rates}) would spend "
                    f"epsilon {planned:.3f}, over the target {config.target_epsilon}; raise the "
                    "noise, train fewer epochs, or leave the noise multiplier out so aimass "
                    "calibrates it",
                    planned_epsilon=planned,
                )
        return {
            "noise_multiplier": sigma,
            "steps": steps,
            "phases": [{"sample_rate": q, "steps": s} for q, s in schedule],
        }

    @contextmanager
    def make_private(
        self,
        module: nn.Module,
        *,
        optimizer: torch.optim.Optimizer,
        num_examples: int,
        phases: Sequence[tuple[int, int]],
        phase: int,
        loss: Callable[..., torch.Tensor],
        finetune: bool,
        unit: str = "training example",
    ) -> Iterator[_Run]:
        """Wrap the caller's training objects for DP-SGD; hooks are removed on exit.

        Phase 0 plans the whole run (``phases``, see :meth:`plan`) and starts its one
        accountant; each later phase trains at the same noise and adds its steps to
        that accountant, so :meth:`summary` reports the run's composed epsilon.
        """
        import torch
        from opacus import PrivacyEngine

        if phase == 0:
            plan = self.plan(num_examples=num_examples, phases=phases)
            with quiet_opacus():
                self._engine = PrivacyEngine(accountant=self.config.accountant)
            self._record = _Record(
                noise_multiplier=plan["noise_multiplier"],
                planned_steps=int(plan["steps"]),
                num_examples=num_examples,
                unit=unit,
            )
            self._schedule = plan["phases"]
            # One dataset object for every phase: Opacus ties its accounting to it.
            self._examples = torch.utils.data.TensorDataset(torch.arange(num_examples))
        assert self._engine is not None, "phase 0 plans the run and comes first"
        planned = self._schedule[phase]
        tied = tied_trainable(module)
        flat = self.config.clipping == "flat"
        ghost_ok = finetune and not tied and flat
        mode = self.config.grad_sample_mode or ("ghost" if ghost_ok else "hooks")
        if mode == "ghost" and tied:
            raise InvalidArgument(
                f"grad_sample_mode 'ghost' cannot train the tied weights {tied[:3]} (one "
                "weight held by two layers, e.g. an output layer tied to the token "
                "embeddings): ghost clipping would bound each layer's share on its own; "
                "drop --grad-sample-mode ghost (the default is then hooks), or drop "
                "--dp-train-embeddings",
                field="grad_sample_mode",
            )
        batch_size = min(phases[phase][0], num_examples)
        loader = torch.utils.data.DataLoader(self._examples, batch_size=batch_size)
        criterion = _Criterion(loss)
        bound, tensors = self._clipping_bound(optimizer)
        with quiet_opacus():
            module.train()
            wrapped = self._engine.make_private(
                module=module,
                optimizer=optimizer,
                criterion=criterion,
                data_loader=loader,
                noise_multiplier=self._record.noise_multiplier,
                max_grad_norm=bound,
                clipping="flat" if flat else "per_layer",
                poisson_sampling=True,
                grad_sample_mode=mode,
                wrap_model=False,
            )
        if mode == "ghost":
            hooks, dp_optimizer, dp_loss, dp_loader = wrapped
        else:
            hooks, dp_optimizer, dp_loader = wrapped
            dp_loss = criterion
        where = f" of phase {phase + 1} of {len(phases)}" if len(phases) > 1 else ""
        guard = _BudgetGuard(int(planned["steps"]), self.config.target_epsilon, where=where)
        self._record.phases.append(
            {
                "sample_rate": planned["sample_rate"],
                "planned_steps": int(planned["steps"]),
                "expected_batch_size": dp_optimizer.expected_batch_size,
                "grad_sample_mode": mode,
                "clipping": self.config.clipping,
                "clipped_tensors": tensors,
                "trained_embeddings": _trains_embeddings(module),
                # What gets clipped and noised: with LoRA, the adapters and the head only.
                "trained_parameters": sum(
                    p.numel() for p in module.parameters() if p.requires_grad
                ),
            }
        )
        batches = _PoissonBatches(dp_loader)

        def guarded_loss(outputs: torch.Tensor, targets: torch.Tensor) -> Any:
            # Called before backward and the optimizer step: the step that would
            # overspend is refused before its noise is drawn or accounted.
            guard.before_step()
            return dp_loss(outputs, targets)

        def next_batches(epoch: int) -> _PoissonBatches:
            return batches

        run = _Run(optimizer=dp_optimizer, batches=next_batches, loss=guarded_loss)
        try:
            with quiet_opacus():
                yield run
        finally:
            hooks.cleanup()
            _forget_activations(module)

    def _clipping_bound(self, optimizer: torch.optim.Optimizer) -> tuple[float | list[float], int]:
        """Opacus's ``max_grad_norm`` for the configured clipping, and the trained tensors.

        Per-layer: ``C / sqrt(K)`` for each of the ``K`` tensors the optimizer trains,
        so that the bounds' Euclidean norm — the sensitivity Opacus scales the noise
        by — is ``C``, the same as flat clipping's.
        """
        from opacus.optimizers.utils import params

        tensors = len(params(optimizer))
        bound = self.config.max_grad_norm
        if self.config.clipping == "flat":
            return bound, tensors
        return [bound / math.sqrt(tensors)] * tensors, tensors

    def steps_taken(self) -> int:
        """Optimizer steps the accountant has recorded."""
        if self._engine is None:
            return 0
        return sum(steps for _sigma, _q, steps in self._engine.accountant.history)

    def summary(self) -> dict[str, Any]:
        """The privacy record stored with the model version."""
        config = self.config.resolved(self._record.num_examples)
        assert config.delta is not None
        steps = self.steps_taken()
        spent = 0.0
        if self._engine is not None and steps:
            with quiet_opacus():
                spent = float(self._engine.accountant.get_epsilon(delta=config.delta))
        if spent > config.target_epsilon:
            raise PrivacyBudgetExceeded(
                f"the run spent epsilon {spent:.3f}, over the target {config.target_epsilon}; "
                "nothing is registered",
                epsilon=spent,
            )
        # The last phase is the run proper (a probe, when there is one, comes first).
        last = self._record.phases[-1] if self._record.phases else {}
        earlier = {"phases": self._record.phases} if len(self._record.phases) > 1 else {}
        return {
            "mechanism": "DP-SGD (Poisson-subsampled Gaussian, per-example clipping)",
            "library": f"opacus {require_opacus().__version__}",
            "epsilon": round(spent, 4),
            "target_epsilon": config.target_epsilon,
            "delta": config.delta,
            "noise_multiplier": round(self._record.noise_multiplier, 6),
            "max_grad_norm": config.max_grad_norm,
            "sample_rate": last.get("sample_rate", 0.0),
            "expected_batch_size": last.get("expected_batch_size", 0),
            "steps": steps,
            "planned_steps": self._record.planned_steps,
            "accountant": config.accountant,
            "grad_sample_mode": last.get("grad_sample_mode", ""),
            "clipping": last.get("clipping", "flat"),
            "clipped_tensors": last.get("clipped_tensors", 0),
            "trained_embeddings": last.get("trained_embeddings", False),
            "trained_parameters": last.get("trained_parameters", 0),
            "privacy_unit": self._record.unit,
            "training_examples": self._record.num_examples,
            "secure_rng": False,
            **earlier,
        }
