"""The two sequence tasks: single-label classification and scalar regression.

Both train with :class:`aimass.training.sequence.SequenceTask`'s recipe (an
encoder or a decoder, ``features`` or ``finetune`` mode); each defines its
head, targets, loss and metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aimass.errors import InvalidArgument
from aimass.metrics import classification_metrics, regression_metrics
from aimass.models.sequence import SequenceHeadConfig
from aimass.training.sequence import SequenceTask
from aimass.training.sequence_parts import feature_layers
from aimass.training.tasks import TrainInputs, register_task

__all__ = ["ClassificationTask", "RegressionTask"]


class ClassificationTask(SequenceTask):
    """Single-label classification with cross-entropy; labels are class names."""

    name = "classification"
    description = "single-label text classification (cross-entropy)"
    supports_distillation = True
    metric = "accuracy"
    greater_is_better = True

    def check_dataset(self, schema: Any, stats: dict[str, Any]) -> None:
        if schema.label_type not in ("string", "integer"):
            raise InvalidArgument(
                f"classification needs class labels (strings or integers); this dataset's labels "
                f"are {schema.label_type or 'absent'}"
                + ("; use --task regression" if schema.label_type == "float" else "")
            )
        if len(stats.get("classes", [])) < 2:
            raise InvalidArgument("classification needs at least 2 classes in the dataset")

    def head_config(self, inputs: TrainInputs) -> SequenceHeadConfig:
        cfg = inputs.config
        classes = list(inputs.stats["classes"])
        return SequenceHeadConfig(
            task=self.name,
            num_outputs=len(classes),
            labels=classes,
            pooling=str(cfg.pooling),
            feature_layers=feature_layers(inputs),
            layers=list(cfg.layers or []),
            family=inputs.base_manifest.family,
            dropout=cfg.dropout,
        )

    def targets(self, labels: Sequence[Any], head: SequenceHeadConfig) -> torch.Tensor:
        index = {label: i for i, label in enumerate(head.labels)}
        return torch.tensor([index[str(label)] for label in labels], dtype=torch.long)

    def loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, reduction=reduction)

    def metrics(
        self, outputs: torch.Tensor, targets: torch.Tensor, head: SequenceHeadConfig
    ) -> dict[str, Any]:
        result = classification_metrics(
            targets.numpy(), outputs.argmax(dim=-1).numpy(), head.labels
        )
        result["loss"] = float(F.cross_entropy(outputs, targets)) if len(targets) else 0.0
        return result


class RegressionTask(SequenceTask):
    """Scalar regression with MSE on standardised targets."""

    name = "regression"
    description = "scalar regression (mean squared error)"
    supports_distillation = True
    metric = "rmse"
    greater_is_better = False

    def check_dataset(self, schema: Any, stats: dict[str, Any]) -> None:
        if schema.label_type not in ("integer", "float"):
            raise InvalidArgument(
                f"regression needs numeric labels; this dataset's labels are "
                f"{schema.label_type or 'absent'}"
                + ("; use --task classification" if schema.label_type == "string" else "")
            )

    def head_config(self, inputs: TrainInputs) -> SequenceHeadConfig:
        cfg = inputs.config
        values = np.asarray(inputs.train.labels, dtype=np.float64)
        std = float(values.std()) if len(values) else 1.0
        return SequenceHeadConfig(
            task=self.name,
            num_outputs=1,
            pooling=str(cfg.pooling),
            feature_layers=feature_layers(inputs),
            layers=list(cfg.layers or []),
            family=inputs.base_manifest.family,
            dropout=cfg.dropout,
            target_mean=float(values.mean()) if len(values) else 0.0,
            target_std=std if std > 0 else 1.0,
        )

    def targets(self, labels: Sequence[Any], head: SequenceHeadConfig) -> torch.Tensor:
        values = torch.tensor([float(v) for v in labels], dtype=torch.float32)
        return (values - head.target_mean) / head.target_std

    def loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        return F.mse_loss(outputs.squeeze(-1), targets, reduction=reduction)

    def metrics(
        self, outputs: torch.Tensor, targets: torch.Tensor, head: SequenceHeadConfig
    ) -> dict[str, Any]:
        scale = head.target_std
        pred = outputs.squeeze(-1).numpy() * scale + head.target_mean
        true = targets.numpy() * scale + head.target_mean
        result = regression_metrics(true, pred)
        result["loss"] = float(F.mse_loss(outputs.squeeze(-1), targets)) if len(targets) else 0.0
        return result


register_task(ClassificationTask())
register_task(RegressionTask())
