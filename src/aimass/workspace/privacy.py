"""Privacy operations of the workspace: de-identification on import and the membership audit.

They compose lower layers — data (de-identification), serving (predictors),
training (a reference model), privacy (attack math) — so they live here, in
the local composition root, not in any one of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.refs import parse_ref

if TYPE_CHECKING:
    from aimass.data.deidentify import Deidentifier
    from aimass.entities import Attachment, DatasetVersion, ModelVersion
    from aimass.workspace import Workspace

__all__ = ["DeidentifyOptions", "audit_privacy", "build_deidentifier"]

AUDIT_KIND = "privacy-audit"
AUDIT_NAME = "membership-inference"


@dataclass(frozen=True)
class DeidentifyOptions:
    """De-identification on import.

    Attributes:
        mode: ``mask``, ``redact`` or ``pseudonymize`` (needs the project's key).
        fields: Extra fields to clean besides the text field.
        recognizers: Recognizer names (default: all built-in).
        ner_model: A registered NER model (``NAME@VERSION``) run besides the recognizers
            (Chinese names are found without one, by the built-in ``lac-zh``).
    """

    mode: str
    fields: tuple[str, ...] = ()
    recognizers: tuple[str, ...] | None = None
    ner_model: str | None = None

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any] | None) -> DeidentifyOptions | None:
        """Options from the wire/CLI fields (``mode``, ``fields``, ``recognizers``,
        ``ner_model``); ``None`` when not asked for."""
        if not fields:
            return None
        recognizers = fields.get("recognizers")
        return cls(
            mode=fields["mode"],
            fields=tuple(fields.get("fields") or ()),
            recognizers=tuple(recognizers) if recognizers else None,
            ner_model=fields.get("ner_model"),
        )


def build_deidentifier(ws: Workspace, options: DeidentifyOptions, *, project: str) -> Deidentifier:
    """A de-identifier with the project's key and, when named, its NER model loaded."""
    from aimass.data.deidentify import (
        DEFAULT_RECOGNIZERS,
        Deidentifier,
        ModelNerRecognizer,
        create_recognizer,
        load_project_key,
    )

    key = load_project_key(ws.settings.home, project) if options.mode == "pseudonymize" else None
    recognizers: list[Any] = [
        create_recognizer(n) for n in (options.recognizers or DEFAULT_RECOGNIZERS)
    ]
    if options.ner_model:
        model = ws.serving.load(options.ner_model, project=project)
        recognizers.append(ModelNerRecognizer(model, ref=options.ner_model))
    return Deidentifier(recognizers, mode=options.mode, key=key)


# -- membership-inference audit -------------------------------------------------------


def _losses(predictor: Any, texts: list[str], labels: list[Any]) -> np.ndarray:
    """Per-example loss of a sequence predictor (cross-entropy, or squared error)."""
    import torch
    import torch.nn.functional as F

    if not hasattr(predictor, "outputs") or predictor.task not in ("classification", "regression"):
        raise UnsupportedModel(
            "the privacy audit supports classification and regression models, "
            f"not {predictor.task!r}"
        )
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


def _reference_predictor(ws: Workspace, version: ModelVersion, dataset: DatasetVersion) -> Any:
    """A features-mode model trained on the validation split only: it saw no member and no
    non-member, so its loss measures how hard each example is in itself."""
    import torch

    from aimass.artifacts.bundle import BundleWriter, verify_bundle
    from aimass.data.tables import SplitData, read_split
    from aimass.serving.predictor import load_predictor
    from aimass.training.callbacks import CallbackList
    from aimass.training.config import TrainConfig
    from aimass.training.tasks import TrainInputs, get_task

    val = read_split(ws.artifacts.resolve(dataset.uri), "validation")
    if len(val) < 20:
        raise InvalidArgument(
            f"the calibrated attack trains a reference model on the validation split, which has "
            f"only {len(val)} rows; use --no-calibrated"
        )
    half = len(val) // 2
    base = ws.bases.get(version.lineage.base, project=version.project)
    config = TrainConfig(task=version.task, mode="features", seed=1).resolved()
    base_dir = ws.artifacts.resolve(base.uri)
    with ws.artifacts.staging() as stage:
        inputs = TrainInputs(
            base_dir=base_dir,
            base_manifest=verify_bundle(base_dir),
            schema=dataset.schema,
            stats=dataset.stats,
            train=SplitData(val.texts[:half], (val.labels or [])[:half], {}),
            validation=SplitData(val.texts[half:], (val.labels or [])[half:], {}),
            test=SplitData([], [], {}),
            config=config,
            device=torch.device("cpu") if ws.settings.device == "cpu" else _device(ws),
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
        return load_predictor(stage / "reference", device=ws.settings.device)


def _device(ws: Workspace) -> Any:
    from aimass.models.device import resolve_device

    return resolve_device(ws.settings.device)


def audit_privacy(
    ws: Workspace,
    ref: str,
    *,
    dataset: str,
    project: str,
    max_examples: int = 1000,
    calibrated: bool = True,
    seed: int = 0,
) -> tuple[dict[str, Any], Attachment]:
    """Attack ``ref`` with membership inference; store and attach the JSON report.

    Members are rows of the training split the model was trained on; non-members
    are test-split rows it never saw. Returns the report and the attachment.
    """
    from aimass.data.tables import read_split
    from aimass.privacy.audit import dp_advantage_bound, membership_inference

    if max_examples < 10:
        raise InvalidArgument(f"--max-examples must be at least 10, got {max_examples}")
    version = ws.models.get(ref, project=project)
    if not version.lineage.dataset:
        raise InvalidArgument(
            f"{version.ref} was imported, not trained here: its training data is unknown, and "
            "the membership-inference audit needs it to know the members"
        )
    data = ws.datasets.get(dataset, project=project)
    if data.digest != version.lineage.dataset_digest:
        raise InvalidArgument(
            f"{version.ref} was trained on {version.lineage.dataset}, not {data.ref}: the audit "
            f"needs the training data to know the members; use --dataset {version.lineage.dataset}"
        )
    path = ws.artifacts.resolve(data.uri)
    train, test = read_split(path, "train"), read_split(path, "test")
    n = min(max_examples, len(train), len(test))
    if n < 10 or train.labels is None or test.labels is None:
        raise InvalidArgument(
            f"{data.ref} needs at least 10 labelled train and test rows for an audit "
            f"(train {len(train)}, test {len(test)})"
        )
    members, member_labels = _sample(train, n, seed)
    non_members, non_labels = _sample(test, n, seed + 1)
    predictor = ws.serving.load(version.ref, project=project)
    target_m = _losses(predictor, members, member_labels)
    target_n = _losses(predictor, non_members, non_labels)
    reference: dict[str, np.ndarray] = {}
    if calibrated:
        ref_model = _reference_predictor(ws, version, data)
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
        "seed": seed,
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
    attachment = _attach(ws, version, report, project=project)
    return report, attachment


def _attach(
    ws: Workspace, version: ModelVersion, report: dict[str, Any], *, project: str
) -> Attachment:
    body = json.dumps(report, indent=2, sort_keys=True).encode()
    key = f"reports/privacy-audit/{hashlib.sha256(body).hexdigest()}.json"
    with ws.artifacts.staging() as stage:
        staged = stage / "report.json"
        staged.write_bytes(body)
        uri = ws.artifacts.publish(staged, key)
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
    return ws.store.registry.attach(
        project, parse_ref(version.ref), kind=AUDIT_KIND, name=AUDIT_NAME, uri=uri, summary=summary
    )
