"""Training configuration: every hyperparameter, with defaults per mode, saved in lineage."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument
from aimass.models.layers import TRAINABLE
from aimass.training.adversarial import validate_adversarial
from aimass.training.distill_options import (
    DISTILL_DEFAULTS,
    DISTILL_FIELDS,
    PIPELINE_TEACHER,
    number,
    pipeline_teacher,
    validate_distillation,
    whole,
)

if TYPE_CHECKING:
    from aimass.models.lora import LoraSettings

__all__ = [
    "MODES",
    "PIPELINE_TEACHER",
    "TrainConfig",
    "lora_settings",
    "pipeline_teacher",
]

MODES = ("features", "finetune")

# Options left out of a config's plain data at the value that means "off" (to_dict).
_OFF: dict[str, Any] = {
    "workers": 1,
    "trainable": "all",
    "eval_steps": 0,
    "layer_lr_decay": 1.0,
    "label_smoothing": 0.0,
    "adversarial_epsilon": 0.0,
}

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


# LoRA trains a few low-rank matrices that start at zero: it needs a step size
# about ten times a full fine-tune's (the LoRA paper uses 2e-4 to 5e-4).
_LORA_DEFAULTS: dict[str, Any] = {"lr": 5e-4}

# A linear probe trains a freshly initialised head on fixed features: a head's step.
_PROBE_LR = 1e-2
_SEQUENCE = ("classification", "regression")


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
        eval_steps: Also evaluate on the validation split every N optimizer steps
            within an epoch (0 = after each epoch only); the best evaluation's
            weights are kept, and ``patience`` counts these evaluations too.
        seed: Seeds weights init, shuffling and dropout: same seed, same model.
        options: Task-specific options (validated by the task).
        lora_rank: Rank of LoRA adapters (``finetune`` mode only; 0 = off): the
            backbone stays frozen and only the adapters and the head train (see
            ``aimass.models.lora``).
        lora_alpha: LoRA scale numerator (the update is scaled by alpha / rank);
            ``None`` = twice the rank.
        lora_dropout: Dropout on the adapters' input.
        lora_targets: Names of the adapted linear layers; ``None`` = the base's
            defaults (``query``/``value`` for BERT-like encoders, ``q_proj``/``v_proj``
            for decoders).
        workers: Data-parallel training processes (Ray Train, ``aimass train
            --workers N``); 1 trains in this process without Ray. ``batch_size``
            stays the global batch: each worker computes ``1/N`` of every batch and
            the gradients are averaged, so the steps, the learning-rate schedule and
            (up to rounding) the model are those of one worker.
        teacher: Distillation: ``NAME@REF`` of a registered classifier, regressor or
            tagger, or ``pipeline:NAME@REF`` of a pipeline (an ensemble, routing...), whose
            soft targets (values; a tagger's, per position) the student (this run) learns
            from; pinned to ``NAME@VERSION`` when the job is submitted (a config without
            a ``task`` then takes the teacher's). ``None`` trains on the labels alone.
        temperature: Distillation of a classifier or a tagger: softmax temperature of both teacher
            and student in the soft-target term (default 2.0; higher = softer targets).
            Regression has none.
        distill_alpha: Distillation: weight of the soft-target term against the
            hard-label loss on labelled rows (default 0.5); rows of the transfer set
            have no label and take the soft term alone.
        unlabelled: Distillation: ``NAME`` or ``NAME@VERSION`` of an extra dataset
            (every split, labels ignored) that the teacher labels with soft targets.
        match_hidden: Distillation with intermediate-layer matching (patient knowledge
            distillation, Sun et al. 2019): weight of a term that pulls each student
            layer's pooled, L2-normalised hidden state towards the teacher layer it maps
            to (student layer ``i`` of ``n`` ↔ teacher layer ``round(i·m/n)`` of ``m``).
            Needs a teacher model (not a pipeline) of the student's hidden size and
            ``finetune`` mode. ``None`` (or 0) leaves it off.
        sequence_beams: Sequence-level distillation (Kim and Rush 2016) of a seq2seq
            model, or of a causal LM on prompt/response pairs: before the student
            trains, the teacher writes an output for every training source or prompt
            and every one of the transfer set with a beam of this width (1: greedy),
            and the student learns those outputs as its targets instead of the
            references (the word-level term, ``distill_alpha``, then reads them too).
            0 leaves it off.
        probe_epochs: ``finetune`` mode: first train the head alone on the frozen
            backbone's features for this many epochs (a linear probe), then fine-tune
            from it (LP-FT, Kumar et al. 2022). Under DP both phases are private and
            share one budget. 0 = off.
        probe_lr: The probe's step size (default 1e-2, a head's step, not a backbone's).
        trainable: ``finetune`` mode of a classifier or regressor: which backbone
            weights train besides the head: ``all``; ``biases`` (every bias, BitFit,
            Ben Zaken et al. 2022); ``top-N`` (the last N layers and what follows them;
            the embeddings and the layers below are frozen). Fewer weights mean less
            DP noise in all and faster steps.
        layer_lr_decay: ``finetune`` mode: layer-wise learning-rate decay. The head
            and what follows the layers train at ``lr``, the top layer at ``lr`` times
            this, each layer below at this times the one above, the embeddings last
            (e.g. 0.8 on a 4-layer base: 0.8, 0.64, 0.51, 0.41, then 0.33 for the
            embeddings). 1 (the default) gives every weight the same step size.
        label_smoothing: Label smoothing of the training loss (Szegedy et al. 2016;
            the Hugging Face Trainer's ``label_smoothing_factor``): the target of each
            labelled row or token is ``1 - s`` on its class plus ``s / C`` spread over
            all ``C`` classes (a language model's: over its vocabulary). Validation and
            test losses stay plain cross-entropy. 0 (the default) is off; regression
            and distillation (whose soft targets are already smooth) refuse it.
        adversarial_epsilon: ``finetune`` mode of a classifier, regressor or tagger: a batch
            trains again on its token embeddings moved this far (L2, over the batch)
            along the loss's gradient (FGM, :mod:`aimass.training.adversarial`). 0: off.
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
    eval_steps: int = 0
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    lora_rank: int = 0
    lora_alpha: float | None = None
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None
    workers: int = 1
    teacher: str | None = None
    temperature: float | None = None
    distill_alpha: float | None = None
    unlabelled: str | None = None
    match_hidden: float | None = None
    sequence_beams: int = 0
    probe_epochs: int = 0
    probe_lr: float | None = None
    trainable: str = "all"
    layer_lr_decay: float = 1.0
    label_smoothing: float = 0.0
    adversarial_epsilon: float = 0.0

    def resolved(
        self, *, modes: tuple[str, ...] = MODES, defaults: dict[str, Any] | None = None
    ) -> TrainConfig:
        """A copy with every ``None`` filled in, validated.

        Args:
            modes: The modes the task supports; the first is the default.
            defaults: The task's fine-tuning defaults, over the mode's (features mode
                takes the mode's alone).
        """
        # Adapters, a choice of backbone weights or moved embeddings only make sense when
        # the backbone trains: LoRA, --trainable and --adversarial-epsilon imply finetune.
        adapts = self.lora_rank or self.trainable != "all" or self.adversarial_epsilon
        implied = "finetune" if adapts and "finetune" in modes else modes[0]
        mode = self.mode or implied
        if mode not in modes:
            raise InvalidArgument(
                f"training mode {mode!r} is not one of {', '.join(modes)} for task {self.task!r}",
                mode=mode,
            )
        lora = _LORA_DEFAULTS if self.lora_rank else {}
        # A task's defaults are for fine-tuning its model; in features mode every task
        # trains a head alone, whose step size and epochs are the mode's.
        tuned = (defaults or {}) if mode == "finetune" else {}
        # LoRA's step size wins over a task's full-fine-tune one (e.g. causal-LM's 3e-5).
        merged = {**_MODE_DEFAULTS[mode], **tuned, **lora, "mode": mode}
        if self.pooling == "pooler":  # the pooler output is one vector, not a layer each
            merged["feature_layers"] = 1
        filled = replace(self, **{k: v for k, v in merged.items() if getattr(self, k) is None})
        if filled.teacher is not None:
            # A regressor's teacher says a value, not probabilities: no temperature.
            default_temperature = (
                None if self.task == "regression" else DISTILL_DEFAULTS["temperature"]
            )
            filled = replace(
                filled,
                temperature=default_temperature
                if filled.temperature is None
                else filled.temperature,
                distill_alpha=DISTILL_DEFAULTS["distill_alpha"]
                if filled.distill_alpha is None
                else filled.distill_alpha,
            )
        filled._validate()
        filled._validate_lora()
        validate_distillation(filled)
        filled._validate_probe()
        filled._validate_trainable()
        filled._validate_layer_decay()
        filled._validate_label_smoothing()
        validate_adversarial(filled)
        if filled.probe_epochs and filled.probe_lr is None:
            filled = replace(filled, probe_lr=_PROBE_LR)
        if filled.lora_rank and filled.lora_alpha is None:
            filled = replace(filled, lora_alpha=float(2 * filled.lora_rank))
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
            ("eval_steps", whole(self.eval_steps) and self.eval_steps >= 0),
            ("grad_accum", 1 <= self.grad_accum <= 4096),
            ("max_train_rows", self.max_train_rows is None or self.max_train_rows >= 1),
            ("layers", self.layers is None or _int_list(self.layers)),
        ]
        for name, ok in checks:
            if not ok:
                raise InvalidArgument(
                    f"training option {name}={getattr(self, name)!r} is out of range", field=name
                )
        workers = self.workers
        if not whole(workers) or not 1 <= workers <= 64:
            raise InvalidArgument(
                f"--workers {workers!r} is out of range: use a whole number of training "
                "processes from 1 to 64 (1 trains in this process, without Ray)",
                field="workers",
            )

    def _validate_lora(self) -> None:
        checks = [
            ("lora_rank", 0 <= self.lora_rank <= 4096, "--lora-rank must be in 0..4096"),
            (
                "lora_alpha",
                self.lora_alpha is None or self.lora_alpha > 0,
                "--lora-alpha must be positive (e.g. twice the rank)",
            ),
            ("lora_dropout", 0 <= self.lora_dropout < 1, "--lora-dropout must be in [0, 1)"),
            (
                "lora_targets",
                self.lora_targets is None or _name_list(self.lora_targets),
                "--lora-targets must be comma-separated layer names, e.g. q_proj,v_proj",
            ),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise InvalidArgument(f"{rule}, got {getattr(self, name)!r}", field=name)
        if self.lora_rank and self.mode != "finetune":
            # A frozen backbone in features mode has nothing for adapters to adapt.
            raise InvalidArgument(
                f"--lora-rank {self.lora_rank} needs --mode finetune (the mode is "
                f"{self.mode!r}, which freezes the whole backbone); add --mode finetune or "
                "drop --lora-rank",
                field="lora_rank",
            )
        unused = [n for n in ("lora_alpha", "lora_targets") if getattr(self, n) is not None]
        if unused and not self.lora_rank:
            flags = ", ".join("--" + n.replace("_", "-") for n in unused)
            raise InvalidArgument(
                f"{flags} set without --lora-rank: LoRA is off; add --lora-rank (e.g. 8)",
                field=unused[0],
            )

    def _validate_probe(self) -> None:
        epochs, lr = self.probe_epochs, self.probe_lr
        if not whole(epochs) or not 0 <= epochs <= 10_000:
            raise InvalidArgument(
                f"--probe-epochs {epochs!r} is out of range: use 0 (no probe) to 10000",
                field="probe_epochs",
            )
        if lr is not None and not (number(lr) and 0 < lr < 1):
            raise InvalidArgument(f"--probe-lr {lr!r} must be in (0, 1)", field="probe_lr")
        if lr is not None and not epochs:
            raise InvalidArgument(
                "--probe-lr set without --probe-epochs: there is no probe; add --probe-epochs "
                "(e.g. 5) or drop --probe-lr",
                field="probe_lr",
            )
        if epochs and self.mode != "finetune":
            raise InvalidArgument(
                f"--probe-epochs {epochs} needs --mode finetune: a linear probe is the head "
                f"trained before fine-tuning, and mode {self.mode!r} trains only the head "
                "already; drop --probe-epochs",
                field="probe_epochs",
            )
        if epochs and self.match_hidden:
            raise InvalidArgument(
                f"--probe-epochs {epochs} with --match-hidden: the probe trains the head on "
                "frozen features, where no hidden state can move towards the teacher's; drop "
                "one of the two",
                field="probe_epochs",
            )

    def _validate_trainable(self) -> None:
        value = self.trainable
        if not isinstance(value, str) or not TRAINABLE.fullmatch(value):
            raise InvalidArgument(
                f"--trainable {value!r}: use all, biases or top-N (the last N layers, e.g. top-2)",
                field="trainable",
            )
        clash = [
            why
            for why, on in (
                (f"mode {self.mode!r} trains the head alone", self.mode != "finetune"),
                (f"task {self.task!r} trains every weight", self.task not in _SEQUENCE),
                ("--lora-rank chooses the trained weights itself", bool(self.lora_rank)),
            )
            if on
        ]
        if value != "all" and clash:
            raise InvalidArgument(
                f"--trainable {value} is for fine-tuning a classifier or regressor, but "
                f"{clash[0]}; drop --trainable",
                field="trainable",
            )

    def _validate_layer_decay(self) -> None:
        value = self.layer_lr_decay
        if not (number(value) and 0 < value <= 1):
            raise InvalidArgument(
                f"--layer-lr-decay {value!r} is out of range: use a number in (0, 1], e.g. "
                "0.8 (1 = the same step size for every layer)",
                field="layer_lr_decay",
            )
        if value != 1 and self.mode != "finetune":
            raise InvalidArgument(
                f"--layer-lr-decay {value} needs --mode finetune: mode {self.mode!r} trains "
                "the head alone, which has no layers to decay over; add --mode finetune or "
                "drop --layer-lr-decay",
                field="layer_lr_decay",
            )

    def _validate_label_smoothing(self) -> None:
        value = self.label_smoothing
        if not (number(value) and 0 <= value < 1):
            raise InvalidArgument(
                f"--label-smoothing {value!r} is out of range: use a number in [0, 1), e.g. "
                "0.1 (0 = off)",
                field="label_smoothing",
            )
        why = None
        if self.task == "regression":
            why = "task 'regression' predicts values, with no classes to smooth over"
        elif self.teacher is not None:
            why = "a teacher's soft targets already replace the one-hot labels in part (--alpha)"
        if value and why:
            raise InvalidArgument(
                f"--label-smoothing {value}: {why}; drop --label-smoothing",
                field="label_smoothing",
            )

    def phases(self) -> list[tuple[int, int]]:
        """``(batch size, epochs)`` of each training phase in order: the probe, then the run."""
        assert self.batch_size is not None  # a resolved config
        assert self.epochs is not None
        probe = [(self.batch_size, self.probe_epochs)] if self.probe_epochs else []
        return [*probe, (self.batch_size, self.epochs)]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for lineage and job specs).

        Without LoRA the ``lora_*`` fields are left out, ``workers`` with one
        worker, the distillation fields without a teacher, and the others at the
        value that means "off" (``probe_epochs``, ``trainable``, ``eval_steps``,
        ``layer_lr_decay``, ``label_smoothing``, ``adversarial_epsilon``), so a
        run's config digest stays what it was before they existed (``--reuse``
        still finds it).
        """
        data = asdict(self)
        if self.teacher is None:
            for name in ("teacher", *DISTILL_FIELDS, "sequence_beams"):
                data.pop(name)
        else:
            for name in ("match_hidden", "sequence_beams"):
                if not data[name]:
                    data.pop(name)
        if not self.lora_rank:
            for name in ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets"):
                data.pop(name)
        if not self.probe_epochs:
            data.pop("probe_epochs")
            data.pop("probe_lr")
        for name, off in _OFF.items():
            if data[name] == off:
                data.pop(name)
        return data

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


def _name_list(value: Any) -> bool:
    """A non-empty list of distinct non-empty strings (layer names)."""
    items = list(value) if isinstance(value, (list, tuple)) else []
    names = all(isinstance(i, str) and i.strip() for i in items)
    return bool(items) and names and len(set(items)) == len(items)


def _int_list(value: Any) -> bool:
    """A non-empty list of distinct integers (layer indices)."""
    items = list(value) if isinstance(value, (list, tuple)) else []
    ints = all(whole(i) for i in items)
    return bool(items) and ints and len(set(items)) == len(items)


def lora_settings(config: TrainConfig, *, model_type: str, family: str) -> LoraSettings:
    """The adapters a resolved config asks for, with the base's default targets."""
    from aimass.models.lora import LoraSettings, default_targets

    assert config.lora_alpha is not None  # a resolved config
    targets = config.lora_targets or default_targets(model_type=model_type, family=family)
    return LoraSettings(
        rank=config.lora_rank,
        alpha=config.lora_alpha,
        dropout=config.lora_dropout,
        targets=tuple(targets),
    )
