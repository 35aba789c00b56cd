"""The ``train`` job: dataset version + base bundle → trained bundle → registered version.

Order matters for "a failed job leaves the registry unchanged": everything that
can fail (resolving inputs, training, writing the bundle) happens before the
one registry write at the end.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aimass._version import __version__
from aimass.artifacts.bundle import BundleWriter, canonical_json, verify_bundle
from aimass.artifacts.storage import private_dir
from aimass.data.tables import read_split
from aimass.entities import BaseModel, DatasetVersion, Lineage, ModelVersion
from aimass.errors import InvalidArgument
from aimass.jobs.distill import (
    check_distillation,
    find_teacher,
    soft_targets,
    unlabelled_dataset,
    version_of,
)
from aimass.jobs.runner import CheckpointMirror, JobContext, checkpoint_dir, pull_checkpoint
from aimass.models.device import resolve_device
from aimass.models.lora import ADAPTER_FILE
from aimass.privacy.dp import DPConfig, DPEngine
from aimass.refs import parse_ref, validate_name
from aimass.store import Store
from aimass.training.callbacks import CallbackList, TensorBoardLogger
from aimass.training.config import TrainConfig
from aimass.training.tasks import (
    TrainInputs,
    TrainOutcome,
    get_task,
    list_tasks,
    train_rows,
)

if TYPE_CHECKING:
    pass

__all__ = ["TrainSpec", "config_digest", "pin_refs", "resolve_inputs"]

log = logging.getLogger("aimass.jobs.train")


@dataclass(frozen=True)
class TrainSpec:
    """What to train: stored in the job record as its ``spec``.

    Attributes:
        dataset: ``NAME`` or ``NAME@VERSION`` of a dataset.
        base: ``NAME`` or ``NAME@VERSION`` of a base model; ``None`` takes the
            dataset's recommended recipe (``Workspace.with_recipe`` fills it in).
        model: Name to register the trained version under.
        config: Hyperparameters (``TrainConfig.to_dict()`` form).
        alias: Alias to point at the new version, if any.
        privacy: Differential privacy options (``DPConfig.to_dict()`` form), or
            ``None`` for ordinary training.
    """

    dataset: str
    base: str | None
    model: str
    config: dict[str, Any] = field(default_factory=dict)
    alias: str | None = None
    privacy: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        validate_name(self.model, kind="model")
        parse_ref(self.dataset, kind="dataset")
        if self.base is not None:
            parse_ref(self.base, kind="base model")
        if self.alias is not None:
            validate_name(self.alias, kind="alias")
        if self.privacy is not None:
            DPConfig.from_dict(self.privacy)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the job record."""
        return {
            "dataset": self.dataset,
            "base": self.base,
            "model": self.model,
            "config": self.config,
            "alias": self.alias,
            "privacy": self.privacy,
        }

    def dp_config(self, dataset: DatasetVersion) -> DPConfig | None:
        """The resolved DP options (delta checked against the training split), if any."""
        if self.privacy is None:
            return None
        return DPConfig.from_dict(self.privacy).resolved(int(dataset.splits.get("train", 0)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def resolve_inputs(
    store: Store, project: str, spec: TrainSpec
) -> tuple[DatasetVersion, BaseModel, TrainConfig]:
    """Look up the dataset and base versions and check that the task suits them."""
    if spec.base is None:
        raise InvalidArgument("the training spec names no base (Workspace.with_recipe picks one)")
    raw = TrainConfig.from_dict(spec.config)
    dataset = store.datasets.get(project, *version_of(spec.dataset, "dataset"))
    base = store.bases.get(project, *version_of(spec.base, "base model"))
    task = get_task(raw.task)
    config = raw.resolved(modes=task.modes, defaults=task.defaults(base.provenance))
    task.check_kind(dataset.schema)
    task.check_dataset(dataset.schema, dataset.stats)
    kind = getattr(dataset.schema, "kind", "text")
    task.check_options(config, kind=kind, private=spec.privacy is not None)
    _check_lora(task, config, spec)
    if config.probe_epochs and not task.supports_probe:
        tasks = ", ".join(t.name for t in list_tasks() if t.supports_probe)
        raise InvalidArgument(
            f"--probe-epochs {config.probe_epochs}: task {task.name!r} has no head to probe "
            f"(tasks that do: {tasks}); drop --probe-epochs",
            field="probe_epochs",
        )
    if spec.privacy is not None:
        if config.workers > 1:
            raise InvalidArgument(
                f"--workers {config.workers} cannot be combined with --dp: DP-SGD's privacy "
                "accounting assumes one process sampling the whole training split; drop "
                "--workers (or --dp)",
                field="workers",
            )
        if not task.supports_privacy:
            private = ", ".join(t.name for t in list_tasks() if t.supports_privacy)
            raise InvalidArgument(
                f"task {task.name!r} does not support differential privacy yet (tasks that "
                f"do: {private}); drop --dp"
            )
        if config.adversarial_epsilon:
            raise InvalidArgument(
                f"--adversarial-epsilon {config.adversarial_epsilon} cannot be combined with "
                "--dp: the second, adversarial pass over each batch would add gradients the "
                "privacy accountant does not count; drop one of the two",
                field="adversarial_epsilon",
            )
        if config.grad_accum > 1:
            # Each Poisson batch is one noisy private step; summing several before the
            # step would change the sampling rate the accountant assumes.
            raise InvalidArgument(
                f"gradient accumulation (grad_accum={config.grad_accum}) cannot be combined "
                "with differential privacy: under DP-SGD the Poisson-sampled batch is the "
                "privacy step; drop --grad-accum and set --batch-size to the batch you want",
                field="grad_accum",
            )
        dp = spec.dp_config(dataset)
        assert dp is not None
        # Fails before any job exists when the budget cannot cover the planned steps.
        DPEngine(dp).plan(num_examples=int(dataset.splits["train"]), phases=config.phases())
    if base.family not in task.families:
        raise InvalidArgument(
            f"task {task.name!r} needs a base of family {'/'.join(task.families)}; "
            f"{base.ref} is a {base.family} ({base.architecture})"
        )
    task.check_config(config, family=base.family)
    if config.teacher is not None:
        check_distillation(store, project, task, config, dataset, dp=spec.privacy is not None)
    return dataset, base, config


def pin_refs(store: Store, project: str, spec: TrainSpec) -> TrainSpec:
    """``spec`` with the teacher and the transfer set pinned to ``NAME@VERSION``, and a
    student whose task is not given set to its teacher's.

    Called when the job is submitted, so moving an alias (or importing a new
    dataset version) afterwards does not change what the queued job distils.
    """
    config = dict(spec.config)
    if config.get("teacher"):
        teacher = find_teacher(store, project, str(config["teacher"]))
        config["teacher"] = teacher.ref
        config.setdefault("task", teacher.task)
    if config.get("unlabelled"):
        config["unlabelled"] = unlabelled_dataset(store, project, str(config["unlabelled"])).ref
    return replace(spec, config=config) if config != spec.config else spec


def _check_lora(task: Any, config: TrainConfig, spec: TrainSpec) -> None:
    """Refuse LoRA where it does not apply, naming the flag, its value and the fix."""
    if not config.lora_rank:
        return
    if not task.supports_lora:
        tasks = ", ".join(t.name for t in list_tasks() if t.supports_lora)
        raise InvalidArgument(
            f"--lora-rank {config.lora_rank}: task {task.name!r} does not train LoRA adapters "
            f"(tasks that do: {tasks}); drop --lora-rank to fine-tune every weight",
            field="lora_rank",
        )
    if spec.privacy is not None and spec.privacy.get("train_embeddings"):
        raise InvalidArgument(
            f"--dp-train-embeddings with --lora-rank {config.lora_rank}: LoRA keeps the "
            "embeddings frozen and trains only the adapters; drop one of the two",
            field="train_embeddings",
        )


def config_digest(
    dataset: DatasetVersion,
    base: BaseModel,
    config: TrainConfig,
    privacy: DPConfig | None = None,
) -> str:
    """Identity of a training run's inputs: same digest, same model (given the seed)."""
    payload: dict[str, Any] = {
        "dataset": dataset.digest,
        "base": base.digest,
        "config": config.to_dict(),
    }
    if privacy is not None:
        payload["privacy"] = privacy.to_dict()
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def _code_version() -> str:
    import torch
    import transformers

    return (
        f"aimass {__version__}; torch {torch.__version__}; transformers {transformers.__version__}"
    )


def _write_bundle(
    ctx: JobContext, outcome: TrainOutcome, provenance: dict[str, Any]
) -> tuple[str, str]:
    with ctx.artifacts.staging() as stage:
        bundle = stage / "bundle"
        writer = BundleWriter(bundle)
        writer.add_json("config.json", outcome.hf_config)
        writer.add_tensors("model.safetensors", outcome.state_dict)
        if outcome.generation_config is not None:
            writer.add_json("generation_config.json", outcome.generation_config)
        for name, path in outcome.tokenizer_files.items():
            writer.add_file(name, path)
        if outcome.adapters is not None:
            writer.add_tensors(ADAPTER_FILE, outcome.adapters)
        manifest = writer.finish(
            kind="model",
            architecture=outcome.architecture,
            family=outcome.family,
            task=str(outcome.task_config.get("task")),
            task_config=outcome.task_config,
            provenance=provenance,
        )
        uri = ctx.artifacts.publish(bundle, f"bundles/{manifest.digest}")
    return manifest.digest, uri


def run_train_job(ctx: JobContext) -> dict[str, Any]:
    """Train, write the bundle, register the version (and alias); returns the result."""
    project = ctx.job.project
    spec = TrainSpec.from_dict(ctx.job.spec)
    dataset, base, config = resolve_inputs(ctx.store, project, spec)
    data_path = ctx.artifacts.resolve(dataset.uri)
    base_dir = ctx.artifacts.resolve(base.uri)
    run_dir = ctx.artifacts.path(f"runs/{ctx.job.id}")
    private_dir(run_dir / "tensorboard")
    pull_checkpoint(ctx.artifacts, ctx.job.id)  # resumed on another machine: fetch its epochs
    mirror = CheckpointMirror(ctx.artifacts, ctx.store, ctx.job.id)
    callbacks = CallbackList([*ctx.callbacks, TensorBoardLogger(run_dir / "tensorboard"), mirror])
    if ctx.settings.num_threads:
        import torch

        torch.set_num_threads(ctx.settings.num_threads)
    splits = {
        "train": train_rows(read_split(data_path, "train"), config),
        "validation": read_split(data_path, "validation"),
        "test": read_split(data_path, "test"),
    }
    inputs = TrainInputs(
        base_dir=base_dir,
        base_manifest=verify_bundle(base_dir),
        schema=dataset.schema,
        stats=dataset.stats,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        config=config,
        device=resolve_device(ctx.settings.device),
        callbacks=callbacks,
        workdir=run_dir,
        checkpoint_dir=checkpoint_dir(ctx.artifacts, ctx.job.id),
        checkpoint_keys=ctx.artifacts.write_keys,
        privacy=DPEngine(dp) if (dp := spec.dp_config(dataset)) is not None else None,
        distillation=(
            soft_targets(ctx, config, dataset, splits, callbacks, student_dir=base_dir)
            if config.teacher is not None
            else None
        ),
    )
    if config.workers > 1:
        # Ray is imported only here: one worker trains in this process, as it always did.
        from aimass.training.distributed import train_distributed

        outcome = train_distributed(inputs, data_path=data_path, settings=ctx.settings)
    else:
        outcome = get_task(config.task).train(inputs)
    lineage = Lineage(
        dataset=dataset.ref,
        dataset_digest=dataset.digest,
        base=base.ref,
        base_digest=base.digest,
        job_id=ctx.job.id,
        task=config.task,
        config=config.to_dict(),
        code_version=_code_version(),
    )
    provenance = {
        "dataset": dataset.ref,
        "dataset_digest": dataset.digest,
        "base": base.ref,
        "base_digest": base.digest,
        "job_id": ctx.job.id,
        "base_provenance": base.provenance,
    }
    if outcome.privacy is not None:
        provenance["privacy"] = outcome.privacy
    if inputs.distillation is not None:
        provenance["teacher"] = inputs.distillation.teacher
        provenance["teacher_digest"] = inputs.distillation.teacher_digest
    digest, uri = _write_bundle(ctx, outcome, provenance)
    metrics = {**outcome.metrics, "history": outcome.history}
    version: ModelVersion = ctx.store.registry.create_version(
        project,
        spec.model,
        task=config.task,
        digest=digest,
        uri=uri,
        metrics=metrics,
        lineage=lineage,
        config_digest=config_digest(dataset, base, config, spec.dp_config(dataset)),
        privacy=outcome.privacy,
    )
    if spec.alias:
        version = ctx.store.registry.set_alias(project, spec.model, spec.alias, version.version)
    return {
        "model": version.name,
        "version": version.version,
        "digest": digest,
        "aliases": list(version.aliases),
        "tensorboard": str(run_dir / "tensorboard"),
    }
