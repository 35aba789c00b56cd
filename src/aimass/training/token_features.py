"""``features`` mode for token classification: a frozen encoder, a tagging head trained
on its cached hidden states.

The encoder reads every training and validation window once; its last hidden
layer (what the model's own head reads, after dropout) is kept per token, in
half precision, and the head (``model.classifier``, one linear layer) trains on
those vectors for many cheap epochs. The encoder's weights never change, so the
bundle is an ordinary token-classification model: the served forward pass is the
one evaluated on the test split.

With a privacy engine only the head is clipped and noised (per-example gradients,
one example per sentence): a few thousand weights instead of millions, which is
what lets private NER learn on a few thousand sentences.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from aimass.errors import InvalidArgument
from aimass.models.sequence import explicit_ids
from aimass.models.text import bucketed_batches
from aimass.training.examples import EVAL_BATCH, IGNORE, Example, perplexity
from aimass.training.loop import FitResult, fit
from aimass.training.token_private import fit_dp

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from aimass.training.examples import ExampleTask
    from aimass.training.tasks import TrainInputs

__all__ = ["fit_head"]


def _head(model: PreTrainedModel) -> nn.Module:
    head = getattr(model, "classifier", None)
    if not isinstance(head, nn.Module):
        raise InvalidArgument(
            f"--mode features needs a token-classification model with a linear head "
            f"('classifier'); {type(model).__name__} has none: use --mode finetune",
            field="mode",
        )
    return head


@torch.inference_mode()
def hidden_states(
    task: ExampleTask, model: PreTrainedModel, examples: list[Example], pad_id: int, device: Any
) -> list[torch.Tensor]:
    """The encoder's last hidden layer of every example, (tokens, hidden) in fp16."""
    encoder = model.base_model
    generator = torch.Generator().manual_seed(0)  # token tasks draw nothing when collating
    out: list[torch.Tensor] = [torch.empty(0)] * len(examples)
    lengths = [len(e["input_ids"]) for e in examples]
    for idx in bucketed_batches(lengths, EVAL_BATCH, shuffle=False):
        batch = task.collate([examples[i] for i in idx], pad_id, device, generator)
        mask = batch["attention_mask"]
        ids = explicit_ids(encoder, batch["input_ids"], mask, {})
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=mask, **ids)[0]
        for row, i in enumerate(idx):
            out[i] = hidden[row, : lengths[i]].to("cpu", torch.float16)
    return out


def _padded(
    features: list[torch.Tensor], examples: list[Example], idx: list[int], device: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(features[i].shape[0] for i in idx)
    hidden = features[idx[0]].shape[1]
    x = torch.zeros((len(idx), width, hidden), dtype=torch.float32)
    y = torch.full((len(idx), width), IGNORE, dtype=torch.long)
    for row, i in enumerate(idx):
        n = features[i].shape[0]
        x[row, :n] = features[i].float()
        y[row, :n] = torch.tensor(examples[i]["labels"], dtype=torch.long)
    return x.to(device), y.to(device)


def fit_head(
    task: ExampleTask,
    model: PreTrainedModel,
    train: list[Example],
    validation: list[Example],
    tokenizer: PreTrainedTokenizerBase,
    pad_id: int,
    inputs: TrainInputs,
) -> FitResult:
    """Train ``model``'s tagging head on its frozen encoder's cached hidden states
    (privately with ``inputs.privacy``); the best validation weights stay in the head."""
    cfg = inputs.config
    if cfg.layers is not None:
        raise InvalidArgument(
            "--layers picks pooled layers of a sequence classifier; a tagging head in "
            "features mode reads the last layer, as the served model does: drop --layers",
            field="layers",
        )
    head = _head(model)
    model.requires_grad_(False)
    head.requires_grad_(True)
    model.eval()
    dropout = float(getattr(getattr(model, "dropout", None), "p", 0.0))
    cached = {
        "train": hidden_states(task, model, train, pad_id, inputs.device),
        "validation": hidden_states(task, model, validation, pad_id, inputs.device),
    }
    lengths = [len(e["input_ids"]) for e in train]
    val_lengths = [len(e["input_ids"]) for e in validation]

    def logits_of(features: torch.Tensor) -> torch.Tensor:
        return head(F.dropout(features, dropout, training=head.training))

    def evaluate() -> dict[str, Any]:
        was_training = head.training
        head.eval()
        tracker = task.tracker(tokenizer)
        total, count = 0.0, 0
        with torch.inference_mode():
            for idx in bucketed_batches(val_lengths, EVAL_BATCH, shuffle=False):
                x, y = _padded(cached["validation"], validation, idx, inputs.device)
                logits = logits_of(x)
                sums, counts = task.loss_rows(logits, y)
                total, count = total + float(sums.sum()), count + int(counts.sum())
                tracker.update([validation[i] for i in idx], {"labels": y}, logits)
        head.train(was_training)
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": perplexity(loss), "tokens": count, **tracker.result()}

    common: dict[str, Any] = {
        "evaluate": evaluate,
        "metric": task.metric,
        "greater_is_better": task.greater_is_better,
        "callbacks": inputs.callbacks,
    }
    if inputs.privacy is None:

        def loss_fn(idx: list[int]) -> torch.Tensor:
            x, y = _padded(cached["train"], train, idx, inputs.device)
            targets = task.targets([train[i] for i in idx], y)
            sums, counts = task.loss_rows(logits_of(x), targets, smoothing=cfg.label_smoothing)
            return sums.sum() / counts.sum().clamp(min=1)

        def batches(epoch: int) -> list[list[int]]:
            return bucketed_batches(
                lengths, cfg.batch_size or 1, shuffle=True, seed=cfg.seed + epoch
            )

        return fit(
            head,
            batches=batches,
            loss_fn=loss_fn,
            config=cfg,
            parallel=inputs.parallel,
            **common,
        )

    def forward(rows: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = _padded(cached["train"], train, rows, inputs.device)
        return logits_of(x), task.targets([train[i] for i in rows], y)

    # DP-SGD on the head alone: per-example gradients of a few thousand weights.
    return fit_dp(task, head, len(train), forward, evaluate, inputs, finetune=False)
