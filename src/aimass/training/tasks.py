"""Tasks registered by name: each is a recipe that drives the one training loop.

A task checks that a dataset suits it, builds the model from a base bundle,
hands :func:`aimass.training.loop.fit` its batches, loss and evaluation, and
returns a :class:`TrainOutcome` that the job runner turns into a bundle. New
tasks register with :func:`register_task`; they never copy the loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from aimass.errors import InvalidArgument

if TYPE_CHECKING:
    import torch

    from aimass.artifacts.bundle import Manifest
    from aimass.artifacts.envelope import MasterKeys
    from aimass.data.tables import SplitData
    from aimass.entities import DatasetSchema
    from aimass.training.callbacks import CallbackList
    from aimass.training.config import TrainConfig
    from aimass.training.distill import SoftTargets
    from aimass.training.parallel import DataParallel
    from aimass.training.private import PrivateTraining

__all__ = [
    "HEADLINE_METRICS",
    "PACK",
    "Task",
    "TaskOption",
    "TrainInputs",
    "TrainOutcome",
    "flag_option",
    "get_task",
    "headline_metric",
    "list_tasks",
    "packing",
    "register_task",
    "tokenizer_files",
    "train_rows",
]


@dataclass
class TrainInputs:
    """Everything a task needs for one run (no store, no artifact repository)."""

    base_dir: Path
    base_manifest: Manifest
    schema: DatasetSchema
    stats: dict[str, Any]
    train: SplitData
    validation: SplitData
    test: SplitData
    config: TrainConfig
    device: torch.device
    callbacks: CallbackList
    workdir: Path
    # Where fit saves epoch checkpoints and resumes from; None disables checkpoints.
    checkpoint_dir: Path | None = None
    # Master keys that encrypt those checkpoints; None writes them in plaintext.
    checkpoint_keys: MasterKeys | None = None
    privacy: PrivateTraining | None = None
    # This process's place in a data-parallel group (``workers`` > 1), handed to fit.
    parallel: DataParallel | None = None
    # The teacher's soft targets when the run distils one (``config.teacher``).
    distillation: SoftTargets | None = None


@dataclass
class TrainOutcome:
    """A trained model, ready to be written as a bundle.

    Attributes:
        state_dict: Weights, keyed as the Hugging Face class of ``hf_config`` expects.
        hf_config: The ``config.json`` content.
        tokenizer_files: Tokenizer files to copy into the bundle (name → path).
        task_config: Head/task settings serving needs (``aimass.json`` task_config).
        architecture: ``model_type`` of the model.
        family: ``encoder``, ``decoder`` or ``encoder-decoder``.
        metrics: ``{"validation": {...}, "test": {...}, "training": {...}}``.
        history: Validation metrics of every evaluation (each epoch, and every
            ``eval_steps`` steps), with its epoch and step.
        privacy: The privacy record of a differentially private run, else ``None``.
        generation_config: ``generation_config.json`` content (models that generate).
        adapters: LoRA adapter weights (and the head), saved beside the merged
            ``state_dict`` as ``lora_adapters.safetensors``; ``None`` without LoRA.
    """

    state_dict: dict[str, torch.Tensor]
    hf_config: dict[str, Any]
    tokenizer_files: dict[str, Path]
    task_config: dict[str, Any]
    architecture: str
    family: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    privacy: dict[str, Any] | None = None
    generation_config: dict[str, Any] | None = None
    adapters: dict[str, torch.Tensor] | None = None


class Task(ABC):
    """A trainable task. Subclasses set ``name`` and implement the two methods.

    Attributes:
        name: Registered name (``--task``).
        description: One line for listings.
        families: Base-model families the task trains on.
        kinds: Dataset kinds it accepts (``text``, ``tokens``, ``pairs``).
        modes: Training modes it supports; the first is the default.
        metric: Validation metric that selects the best evaluation's weights.
        greater_is_better: Direction of ``metric``.
        supports_lora: Whether ``lora_rank`` (LoRA adapters) applies to it.
        supports_probe: Whether ``probe_epochs`` (a linear probe before fine-tuning)
            applies to it.
        supports_distillation: Whether it learns from a teacher's soft targets
            (``config.teacher``).
        transfer_kinds: Dataset kinds a distillation's transfer set may be (empty:
            ``kinds``).
        options: The task options it takes (``config.options``, the CLI's
            ``--option KEY=VALUE``), typed for forms; any other is refused.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    supports_privacy: ClassVar[bool] = False
    supports_lora: ClassVar[bool] = False
    supports_probe: ClassVar[bool] = False
    supports_distillation: ClassVar[bool] = False
    transfer_kinds: ClassVar[tuple[str, ...]] = ()
    families: ClassVar[tuple[str, ...]] = ("encoder",)
    kinds: ClassVar[tuple[str, ...]] = ("text",)
    modes: ClassVar[tuple[str, ...]] = ("features", "finetune")
    metric: ClassVar[str] = "loss"
    greater_is_better: ClassVar[bool] = False
    options: ClassVar[tuple[TaskOption, ...]] = ()

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """The names of :attr:`options`, in order."""
        return tuple(option.name for option in cls.options)

    def defaults(self, base_provenance: dict[str, Any]) -> dict[str, Any]:
        """Hyperparameter defaults over the mode's, given the base (e.g. from scratch)."""
        return {}

    def check_kind(self, schema: DatasetSchema) -> None:
        """Refuse a dataset of the wrong kind, naming the kinds that fit."""
        kind = getattr(schema, "kind", "text")
        if kind not in self.kinds:
            raise InvalidArgument(
                f"task {self.name!r} needs a dataset of kind {'/'.join(self.kinds)}, but this "
                f"dataset is of kind {kind!r}; import one with 'aimass datasets import FILE "
                f"--kind {self.kinds[0]}'"
            )

    @abstractmethod
    def check_dataset(self, schema: DatasetSchema, stats: dict[str, Any]) -> None:
        """Raise InvalidArgument (naming the fix) when the dataset does not suit the task."""

    @abstractmethod
    def train(self, inputs: TrainInputs) -> TrainOutcome:
        """Train from ``inputs`` and return the outcome (weights left on CPU)."""

    def check_config(self, config: TrainConfig, *, family: str) -> None:
        """Refuse options that do not suit a base of ``family`` (this default accepts all)."""
        del config, family

    def check_options(self, config: TrainConfig, *, kind: str, private: bool) -> None:
        """Refuse task options it does not take (a subclass also checks their values
        against the dataset's ``kind`` and DP)."""
        del kind, private
        if not isinstance(config.options, dict):
            raise InvalidArgument(
                f"training option options={config.options!r}: use an object of task options, "
                'e.g. {"whole_word_mask": true} (the CLI\'s --option KEY=VALUE)',
                field="options",
            )
        unknown = sorted(set(config.options) - set(self.option_names()))
        if unknown:
            valid = ", ".join(self.option_names()) or "none"
            raise InvalidArgument(
                f"--option {unknown[0]}: task {self.name!r} has no such option (its options: "
                f"{valid}); drop it",
                field="options",
            )

    def check_base(self, manifest: Manifest) -> None:
        """Refuse a base model of the wrong family."""
        if manifest.family not in self.families:
            raise InvalidArgument(
                f"task {self.name!r} needs a base of family {'/'.join(self.families)}, "
                f"but the base is {manifest.family} ({manifest.architecture})"
            )


@dataclass(frozen=True)
class TaskOption:
    """One task option, described for the CLI's help and the console's form.

    Attributes:
        name: The key (``--option NAME=VALUE``).
        kind: ``flag`` (true or false, false when absent) or ``number``.
        default: The value when the option is absent.
        help: One line: what it does.
    """

    name: str
    kind: Literal["flag", "number"]
    default: bool | float
    help: str


PACK = TaskOption(
    "pack",
    "flag",
    False,
    "join a text dataset's rows end to end and cut them into blocks of max_length "
    "(no padding; refused with DP)",
)


def flag_option(config: TrainConfig, name: str) -> bool:
    """The task option ``name`` as given (false when absent); refuses anything but a bool."""
    value = config.options.get(name, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"--option {name}={value!r}: use true or false", field="options")
    return value


def packing(config: TrainConfig, *, private: bool) -> bool:
    """Whether the task option ``pack`` is on; refused with DP.

    DP-SGD's guarantee is per example (one clipped gradient each) and protects a
    dataset row only when an example is one row; a packed block joins several.
    """
    pack = flag_option(config, "pack")
    if pack and private:
        raise InvalidArgument(
            "--option pack=true with --dp: DP-SGD protects a dataset row by giving each "
            "example its own clipped gradient, and a packed block joins several rows; "
            "drop one of the two",
            field="options",
        )
    return pack


def train_rows(split: SplitData, config: TrainConfig) -> SplitData:
    """The training rows a run uses: all, or a seeded sample of ``max_train_rows``.

    The job and every data-parallel worker call this, so they train on the same rows.
    """
    if config.max_train_rows is None:
        return split
    return split.sample(config.max_train_rows, seed=config.seed)


_TASKS: dict[str, Task] = {}


def register_task(task: Task, *, force: bool = False) -> Task:
    """Register ``task`` under ``task.name`` (``force`` replaces)."""
    if task.name in _TASKS and not force:
        raise InvalidArgument(f"task {task.name!r} is registered already")
    _TASKS[task.name] = task
    return task


# Each task's headline metric, readable without importing the tasks (and torch): the
# CLI's remote mode shows progress with it. A test checks it against the tasks.
HEADLINE_METRICS = {
    "classification": "accuracy",
    "regression": "rmse",
    "token-classification": "f1",
}


def headline_metric(name: str) -> str:
    """The metric a task is judged by (``loss`` for the language-model tasks)."""
    return HEADLINE_METRICS.get(name, "loss")


def get_task(name: str) -> Task:
    """The task ``name``; the error lists the registered tasks."""
    _load_builtin_tasks()
    try:
        return _TASKS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown task {name!r}; tasks: {', '.join(sorted(_TASKS))}", task=name
        ) from None


def list_tasks() -> list[Task]:
    """Every registered task, by name."""
    _load_builtin_tasks()
    return [_TASKS[n] for n in sorted(_TASKS)]


def _load_builtin_tasks() -> None:
    # Built-in tasks import torch; they register on first use, not at import time.
    from aimass.training import (  # noqa: F401
        causal_lm,
        masked_lm,
        seq2seq,
        sequence_tasks,
        token_classification,
    )


def tokenizer_files(directory: Path) -> dict[str, Path]:
    """Tokenizer files present in a bundle directory (name → path)."""
    from aimass.artifacts.bundle import TOKENIZER_FILES

    return {n: directory / n for n in TOKENIZER_FILES if (directory / n).is_file()}
