"""The parts of the sequence recipe that need no task: batched inference, frozen
features and their scale, the adapters' weights, checkpoints.

:mod:`aimass.training.sequence` trains with them; both of its modes and the
linear probe before fine-tuning read the frozen backbone through
:func:`encode_frozen`.
"""

from __future__ import annotations

import hashlib
import json

import torch
import torch.nn.functional as F

from aimass.models.lora import adapter_state_dict
from aimass.models.sequence import SequenceModel
from aimass.models.text import Encoded, bucketed_batches, collate
from aimass.training.checkpoint import Checkpointer
from aimass.training.config import TrainConfig
from aimass.training.private import LossFunction
from aimass.training.tasks import TrainInputs

__all__ = [
    "INFERENCE_BATCH",
    "adapter_weights",
    "checkpointer",
    "encode_frozen",
    "feature_layers",
    "feature_scale",
    "model_outputs",
    "shuffled_batches",
    "training_loss",
]

INFERENCE_BATCH = 64


def checkpointer(inputs: TrainInputs) -> Checkpointer | None:
    """Checkpoints for this run, fingerprinted by its configuration, base and data."""
    if inputs.checkpoint_dir is None:
        return None
    identity = {
        "config": inputs.config.to_dict(),
        "base": inputs.base_manifest.digest,
        "rows": [len(inputs.train), len(inputs.validation), len(inputs.test)],
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return Checkpointer(inputs.checkpoint_dir, fingerprint=digest, keys=inputs.checkpoint_keys)


def feature_layers(inputs: TrainInputs) -> int:
    """Requested layers to pool, capped at the encoder's depth (small encoders have few)."""
    from aimass.models.hf import read_config

    depth = int(read_config(inputs.base_dir).num_hidden_layers)
    return max(1, min(int(inputs.config.feature_layers or 1), depth))


def adapter_weights(model: SequenceModel) -> dict[str, torch.Tensor]:
    """Adapters and head, keyed as ``model.safetensors`` keys weights (``model.…lora_A.weight``)."""
    prefix = f"{model.encoder.base_model_prefix}."
    state = {prefix + k: v for k, v in adapter_state_dict(model.encoder).items()}
    head = model.backbone.head_prefix
    for name, value in model.classifier.state_dict().items():
        state[head + name] = value.detach().cpu().clone()
    return state


def feature_scale(model: SequenceModel, train: torch.Tensor, *, private: bool) -> torch.Tensor:
    """Per-dimension divisor (K·H,) of frozen features: their RMS, or ones.

    Only for backbones that ask for it (decoders, see ``Backbone.scale_features``);
    no centring, so the scale folds into a head without a bias. Never under DP: the
    RMS of the private training rows would reach the released weights un-noised.
    """
    if private or not model.backbone.scale_features or not len(train):
        return torch.ones(train.shape[-1], device=train.device)
    return train.pow(2).mean(dim=0).sqrt().clamp(min=1e-6)


@torch.inference_mode()
def model_outputs(
    model: SequenceModel, encoded: Encoded, device: torch.device | str
) -> torch.Tensor:
    """Model outputs (N, C) in the original order."""
    out = torch.empty((len(encoded), model.head_config.num_outputs))
    for idx in bucketed_batches(encoded.lengths, INFERENCE_BATCH, shuffle=False):
        out[idx] = model(**collate(encoded, idx, device)).float().cpu()
    return out


def encode_frozen(
    model: SequenceModel, splits: dict[str, Encoded], inputs: TrainInputs
) -> dict[str, torch.Tensor]:
    """Freeze the backbone and encode each split's pooled features (N, K·H) once."""
    model.encoder.requires_grad_(False)
    model.encoder.eval()
    inputs.callbacks.on_phase("encoding features", sum(len(e) for e in splits.values()))
    return {name: _features(model, enc, inputs) for name, enc in splits.items()}


@torch.inference_mode()
def _features(model: SequenceModel, encoded: Encoded, inputs: TrainInputs) -> torch.Tensor:
    feats = torch.empty((len(encoded), model.feature_size), device=inputs.device)
    for idx in bucketed_batches(encoded.lengths, INFERENCE_BATCH, shuffle=False):
        feats[idx] = model.features(**collate(encoded, idx, inputs.device)).float()
        inputs.callbacks.on_phase_advance(len(idx))
    return feats


def shuffled_batches(n: int, config: TrainConfig, epoch: int) -> list[torch.Tensor]:
    """Index batches of ``n`` cached rows, shuffled per epoch from the run's seed."""
    assert config.batch_size is not None  # a resolved config
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + epoch))
    return list(perm.split(config.batch_size))


def training_loss(task_loss: LossFunction, config: TrainConfig) -> LossFunction:
    """The task's loss, or with ``config.label_smoothing`` a cross-entropy with that label
    smoothing (TrainConfig allows it for classification alone, not regression). Only
    training reads it: validation and test losses stay the task's plain ones."""
    smoothing = config.label_smoothing
    if not smoothing:
        return task_loss

    def loss(
        outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        return F.cross_entropy(outputs, targets, reduction=reduction, label_smoothing=smoothing)

    return loss
