"""Training configuration: every hyperparameter, with defaults per mode, saved in lineage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from aimass.errors import InvalidArgument

__all__ = ["MODES", "TrainConfig"]

MODES = ("features", "finetune")

# Mode defaults: a frozen encoder trains only a small head on cached features
# (fast, so many epochs and a large step size); fine-tuning moves the whole
# encoder (few epochs, small step size, warm-up).
_MODE_DEFAULTS: dict[str, dict[str, Any]] = {
    "features": {
        "epochs": 30,
        "lr": 2e-3,
        "batch_size": 64,
        "weight_decay": 1e-2,
        "warmup_ratio": 0.0,
        "pooling": "mean",
        "feature_layers": 4,
        "patience": 5,
    },
    "finetune": {
        "epochs": 3,
        "lr": 5e-5,
        "batch_size": 16,
        "weight_decay": 1e-2,
        "warmup_ratio": 0.06,
        "pooling": "mean",
        "feature_layers": 1,
        "patience": 0,
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run. ``None`` fields take the mode's default.

    Attributes:
        task: Registered task name (``classification``, ``regression``, ...).
        mode: ``features`` (frozen encoder + trained head) or ``finetune`` (all
            weights); ``None`` takes the task's first mode (language-model and
            token tasks train every weight, so they only have ``finetune``).
        epochs: Passes over the training split.
        lr: Peak learning rate (AdamW).
        batch_size: Examples per forward pass (per optimizer step with
            ``grad_accum`` 1).
        grad_accum: Forward passes whose gradients add up before one optimizer
            step: the effective batch is ``batch_size * grad_accum``.
        max_train_rows: Train on only the first N training rows (a seeded
            shuffle of the split); ``None`` uses them all.
        max_length: Longest tokenised input; longer inputs are truncated.
        weight_decay: AdamW weight decay (not applied to biases and norms).
        warmup_ratio: Fraction of steps with linear warm-up, then linear decay.
        grad_clip: Gradient norm clip (0 disables).
        pooling: ``mean``, ``cls`` or ``pooler`` for encoders, ``mean`` or ``last``
            (the last real token) for decoders (see ``aimass.models.sequence``).
        feature_layers: Last hidden layers pooled and concatenated (capped at the
            base's depth).
        layers: Hidden-state indices pooled and concatenated instead of the last
            ``feature_layers`` (0 = embeddings, i = block i, -1 = the output; e.g.
            ``[6]`` for one middle layer of a 12-block decoder, ``[-1, -4]``).
        dropout: Dropout before the head.
        patience: Stop after this many evaluations without improvement (0 = never).
        seed: Seeds weights init, shuffling and dropout: same seed, same model.
        options: Task-specific options (validated by the task).
    """

    task: str = "classification"
    mode: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    grad_accum: int = 1
    max_train_rows: int | None = None
    max_length: int = 128
    weight_decay: float | None = None
    warmup_ratio: float | None = None
    grad_clip: float = 1.0
    pooling: str | None = None
    feature_layers: int | None = None
    layers: list[int] | None = None
    dropout: float = 0.1
    patience: int | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def resolved(
        self, *, modes: tuple[str, ...] = MODES, defaults: dict[str, Any] | None = None
    ) -> TrainConfig:
        """A copy with every ``None`` filled in, validated.

        Args:
            modes: The modes the task supports; the first is the default.
            defaults: The task's defaults, over the mode's defaults.
        """
        mode = self.mode or modes[0]
        if mode not in modes:
            raise InvalidArgument(
                f"training mode {mode!r} is not one of {', '.join(modes)} for task {self.task!r}",
                mode=mode,
            )
        merged = {**_MODE_DEFAULTS[mode], **(defaults or {}), "mode": mode}
        filled = replace(self, **{k: v for k, v in merged.items() if getattr(self, k) is None})
        filled._validate()
        return filled

    def _validate(self) -> None:
        checks = [
            ("epochs", self.epochs is not None and 1 <= self.epochs <= 10_000),
            ("lr", self.lr is not None and 0 < self.lr < 1),
            ("batch_size", self.batch_size is not None and 1 <= self.batch_size <= 65_536),
            ("max_length", 8 <= self.max_length <= 1_000_000),
            ("weight_decay", self.weight_decay is not None and 0 <= self.weight_decay < 1),
            ("warmup_ratio", self.warmup_ratio is not None and 0 <= self.warmup_ratio < 1),
            ("grad_clip", self.grad_clip >= 0),
            ("dropout", 0 <= self.dropout < 1),
            ("patience", self.patience is not None and self.patience >= 0),
            ("grad_accum", 1 <= self.grad_accum <= 4096),
            ("max_train_rows", self.max_train_rows is None or self.max_train_rows >= 1),
            ("layers", self.layers is None or _int_list(self.layers)),
        ]
        for name, ok in checks:
            if not ok:
                raise InvalidArgument(
                    f"training option {name}={getattr(self, name)!r} is out of range", field=name
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for lineage and job specs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from plain data; unknown keys are an error naming the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(
                f"unknown training options {unknown}; valid: {', '.join(sorted(known))}"
            )
        return cls(**data)


def _int_list(value: Any) -> bool:
    """A non-empty list of distinct integers (layer indices)."""
    items = list(value) if isinstance(value, (list, tuple)) else []
    ints = all(isinstance(i, int) and not isinstance(i, bool) for i in items)
    return bool(items) and ints and len(set(items)) == len(items)
