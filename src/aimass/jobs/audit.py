"""The ``audit-privacy`` job: a membership-inference attack on a model version.

Members are rows of the training split the version was trained on; non-members
are test-split rows it never saw. The attack's report (loss-threshold attack,
and with ``calibrated`` one calibrated by a reference model trained on the
validation split only) is published under ``reports/privacy-audit/`` and
attached to the version (``kind="privacy-audit"``). A job, like evaluation: the
calibrated attack trains a model, and a server runs it on its job workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.jobs.evaluate import dataset_of
from aimass.refs import parse_ref

if TYPE_CHECKING:
    from aimass.artifacts.storage import ArtifactStore
    from aimass.entities import Attachment, DatasetVersion, Job, ModelVersion
    from aimass.jobs.runner import JobContext
    from aimass.store import Store

__all__ = [
    "AUDIT_KIND",
    "AUDIT_PRIVACY",
    "AuditSpec",
    "resolve_audit",
    "run_audit_job",
    "submit_audit",
]

log = logging.getLogger("aimass.jobs.audit")
AUDIT_PRIVACY = "audit-privacy"
"""The job kind."""
AUDIT_KIND = "privacy-audit"
"""The kind of the attachment the job leaves on the version."""
AUDIT_NAME = "membership-inference"
MIN_EXAMPLES = 10


@dataclass(frozen=True)
class AuditSpec:
    """What to attack: stored in the job record as its ``spec``.

    Attributes:
        model: ``NAME@VERSION`` (an alias is resolved when the job is submitted).
        dataset: The dataset the version was trained on (``NAME`` or ``NAME@VERSION``).
        max_examples: Members (and as many non-members) to attack, at least 10.
        calibrated: Also run the reference-model calibrated attack.
        seed: Seed of the member and non-member samples.
    """

    model: str
    dataset: str
    max_examples: int = 1000
    calibrated: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the job record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuditSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)


def resolve_audit(
    store: Store, project: str, spec: AuditSpec
) -> tuple[ModelVersion, DatasetVersion]:
    """The version and its training dataset, checked to fit an audit (before anything loads)."""
    if spec.max_examples < MIN_EXAMPLES:
        raise InvalidArgument(
            f"--max-examples must be at least {MIN_EXAMPLES}, got {spec.max_examples}"
        )
    version = store.registry.get_version(project, parse_ref(spec.model, kind="model"))
    if version.task not in ("classification", "regression"):
        raise UnsupportedModel(
            "the privacy audit supports classification and regression models, "
            f"not {version.task!r} ({version.ref})"
        )
    if not version.lineage.dataset:
        raise InvalidArgument(
            f"{version.ref} was imported, not trained here: its training data is unknown, and "
            "the membership-inference audit needs it to know the members"
        )
    data = dataset_of(store, project, spec.dataset)
    if data.digest != version.lineage.dataset_digest:
        raise InvalidArgument(
            f"{version.ref} was trained on {version.lineage.dataset}, not {data.ref}: the audit "
            f"needs the training data to know the members; use --dataset {version.lineage.dataset}"
        )
    if min(data.splits.get("train", 0), data.splits.get("test", 0)) < MIN_EXAMPLES:
        raise InvalidArgument(
            f"{data.ref} needs at least {MIN_EXAMPLES} labelled train and test rows for an "
            f"audit (splits: {', '.join(f'{k} {v}' for k, v in data.splits.items())})"
        )
    return version, data


def submit_audit(store: Store, project: str, spec: AuditSpec) -> Job:
    """Check ``spec`` and queue an ``audit-privacy`` job, the version and dataset pinned."""
    version, data = resolve_audit(store, project, spec)
    pinned = AuditSpec(**{**spec.to_dict(), "model": version.ref, "dataset": data.ref})
    return store.jobs.create(project, AUDIT_PRIVACY, pinned.to_dict())


def run_audit_job(ctx: JobContext) -> dict[str, Any]:
    """Attack the version, publish and attach the report; the result holds the report."""
    from aimass.data.tables import read_split
    from aimass.privacy.audit import dp_advantage_bound, membership_inference
    from aimass.serving.predictor import load_predictor

    project = ctx.job.project
    spec = AuditSpec.from_dict(ctx.job.spec)
    version, data = resolve_audit(ctx.store, project, spec)
    path = ctx.artifacts.resolve(data.uri)
    train, test = read_split(path, "train"), read_split(path, "test")
    if train.labels is None or test.labels is None:
        raise InvalidArgument(f"{data.ref} is unlabelled; the audit needs the true labels")
    n = min(spec.max_examples, len(train), len(test))
    members, member_labels = _sample(train, n, spec.seed)
    non_members, non_labels = _sample(test, n, spec.seed + 1)
    predictor = load_predictor(ctx.artifacts.resolve(version.uri), device=ctx.settings.device)
    target_m = _losses(predictor, members, member_labels)
    target_n = _losses(predictor, non_members, non_labels)
    reference: dict[str, np.ndarray] = {}
    if spec.calibrated:
        ref_model = _reference_predictor(ctx, version, data)
        reference = {
            "member_reference": _losses(ref_model, members, member_labels),
            "non_member_reference": _losses(ref_model, non_members, non_labels),
        }
    result = membership_inference(target_m, target_n, **reference)
    privacy = version.privacy or {}
    report: dict[str, Any] = {
        "kind": AUDIT_KIND,
        "model": version.ref,
        "digest": version.digest,
        "dataset": data.ref,
        "members_split": "train",
        "non_members_split": "test",
        "seed": spec.seed,
        **result.to_dict(),
        "mean_loss": {"members": float(target_m.mean()), "non_members": float(target_n.mean())},
        "epsilon": privacy.get("epsilon"),
        "delta": privacy.get("delta"),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if privacy:
        report["dp_advantage_bound"] = round(
            dp_advantage_bound(float(privacy["epsilon"]), float(privacy["delta"])), 4
        )
    attachment = _attach(ctx.store, ctx.artifacts, version, report, project=project)
    log.info("privacy audit attached", extra={"model": version.ref, "uri": attachment.uri})
    return {
        "model": version.name,
        "version": version.version,
        "attachment": attachment.name,
        "report": report,
    }


def _losses(predictor: Any, texts: list[str], labels: list[Any]) -> np.ndarray:
    """Per-example loss of a sequence predictor (cross-entropy, or squared error)."""
    import torch
    import torch.nn.functional as F

    outputs = predictor.outputs(texts)
    head = predictor.head
    if head.task == "regression":
        target = (torch.tensor([float(v) for v in labels]) - head.target_mean) / head.target_std
        return ((outputs.squeeze(-1) - target) ** 2).numpy()
    index = {label: i for i, label in enumerate(head.labels)}
    target = torch.tensor([index[str(v)] for v in labels])
    return F.cross_entropy(outputs, target, reduction="none").numpy()


def _sample(split: Any, n: int, seed: int) -> tuple[list[str], list[Any]]:
    rng = np.random.Generator(np.random.PCG64(seed))
    picked = sorted(rng.choice(len(split), size=n, replace=False).tolist())
    return [split.texts[i] for i in picked], [split.labels[i] for i in picked]


def _reference_predictor(ctx: JobContext, version: ModelVersion, dataset: DatasetVersion) -> Any:
    """A features-mode model trained on the validation split only: it saw no member and no
    non-member, so its loss measures how hard each example is in itself."""
    from aimass.artifacts.bundle import BundleWriter, verify_bundle
    from aimass.data.tables import SplitData, read_split
    from aimass.models.device import resolve_device
    from aimass.serving.predictor import load_predictor
    from aimass.training.callbacks import CallbackList
    from aimass.training.config import TrainConfig
    from aimass.training.tasks import TrainInputs, get_task

    val = read_split(ctx.artifacts.resolve(dataset.uri), "validation")
    if len(val) < 20:
        raise InvalidArgument(
            f"the calibrated attack trains a reference model on the validation split, which has "
            f"only {len(val)} rows; use --no-calibrated"
        )
    if not version.lineage.base:
        raise InvalidArgument(
            f"{version.ref} names no base to train the reference model from; use --no-calibrated"
        )
    half = len(val) // 2
    base_ref = parse_ref(version.lineage.base, kind="base model")
    base = ctx.store.bases.get(version.project, base_ref.name, base_ref.version)
    config = TrainConfig(task=version.task, mode="features", seed=1).resolved()
    base_dir = ctx.artifacts.resolve(base.uri)
    with ctx.artifacts.staging() as stage:
        inputs = TrainInputs(
            base_dir=base_dir,
            base_manifest=verify_bundle(base_dir),
            schema=dataset.schema,
            stats=dataset.stats,
            train=SplitData(val.texts[:half], (val.labels or [])[:half], {}),
            validation=SplitData(val.texts[half:], (val.labels or [])[half:], {}),
            test=SplitData([], [], {}),
            config=config,
            device=resolve_device(ctx.settings.device),
            callbacks=CallbackList(),
            workdir=stage,
        )
        outcome = get_task(version.task).train(inputs)
        writer = BundleWriter(stage / "reference")
        writer.add_json("config.json", outcome.hf_config)
        writer.add_tensors("model.safetensors", outcome.state_dict)
        for name, path in outcome.tokenizer_files.items():
            writer.add_file(name, path)
        writer.finish(
            kind="model",
            architecture=outcome.architecture,
            family=outcome.family,
            task=version.task,
            task_config=outcome.task_config,
            provenance={"purpose": "privacy-audit reference model"},
        )
        return load_predictor(stage / "reference", device=ctx.settings.device)


def _attach(
    store: Store,
    artifacts: ArtifactStore,
    version: ModelVersion,
    report: dict[str, Any],
    *,
    project: str,
) -> Attachment:
    body = json.dumps(report, indent=2, sort_keys=True).encode()
    key = f"reports/privacy-audit/{hashlib.sha256(body).hexdigest()}.json"
    with artifacts.staging() as stage:
        staged = stage / "report.json"
        staged.write_bytes(body)
        uri = artifacts.publish(staged, key)
    attacks = report["attacks"]
    summary: dict[str, Any] = {
        "auc": attacks["loss_threshold"]["auc"],
        "tpr_at_1pct_fpr": attacks["loss_threshold"]["tpr_at_1pct_fpr"],
    }
    if "calibrated" in attacks:
        summary["calibrated_auc"] = attacks["calibrated"]["auc"]
        summary["calibrated_tpr_at_1pct_fpr"] = attacks["calibrated"]["tpr_at_1pct_fpr"]
    summary["members"] = report["members"]
    summary["epsilon"] = report["epsilon"]
    return store.registry.attach(
        project, parse_ref(version.ref), kind=AUDIT_KIND, name=AUDIT_NAME, uri=uri, summary=summary
    )
