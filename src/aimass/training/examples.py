"""Token-level tasks (masked LM, causal LM, token classification, seq2seq) share one recipe.

Every dataset row becomes an *example*: a dict of integer lists (``input_ids``,
``labels``, and what the task needs besides). The recipe loads the model,
encodes every split once, and drives :func:`aimass.training.loop.fit` with
length-bucketed, dynamically padded batches and a per-token cross-entropy.
Validation reports the held-out loss and its perplexity (``exp(loss)``) plus
what the task's tracker adds (masked-token accuracy, entity F1, ...); the same
numbers are taken once *before* training (``initial``), so a report shows how
far training moved them.

A subclass says how to load the model, how to encode a split, which keys its
batches carry and what it tracks; it never touches the loop. With ``lora_rank``
(tasks that set ``supports_lora``: all four) the model stays frozen and
only LoRA adapters train (and a task's new head, :meth:`ExampleTask.adapted`);
they are merged into its weights when training ends.
With a privacy engine (tasks that set ``supports_privacy``: all four) the loop
runs DP-SGD over one example per dataset row (:meth:`ExampleTask.private_examples`),
each row's loss the mean over its tokens.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from aimass.errors import InvalidArgument
from aimass.models.lora import adapter_state_dict, add_adapters, merge_adapters
from aimass.models.text import bucketed_batches
from aimass.training.adversarial import adversary_for
from aimass.training.config import lora_settings
from aimass.training.example_parts import (
    IGNORE,
    Example,
    LabelAccuracy,
    Tracker,
    dedupe_tied,
    model_inputs,
    padding_id,
    perplexity,
    scratch_base,
)
from aimass.training.loop import fit, seed_everything
from aimass.training.tasks import Task, TrainInputs, TrainOutcome, tokenizer_files

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from aimass.data.tables import SplitData
    from aimass.training.distill import PositionDistillation

__all__ = [
    "IGNORE",
    "Example",
    "ExampleTask",
    "LabelAccuracy",
    "Tracker",
    "dedupe_tied",
    "model_inputs",
    "padding_id",
    "perplexity",
    "scratch_base",
]

EVAL_BATCH = 32
_PADDED_WITH_IGNORE = ("labels",)
_MASKED = {"input_ids": "attention_mask", "decoder_input_ids": "decoder_attention_mask"}


class ExampleTask(Task):
    """The shared recipe; subclasses implement ``load`` and ``encode``."""

    modes: ClassVar[tuple[str, ...]] = ("finetune",)
    keys: ClassVar[tuple[str, ...]] = ("input_ids", "labels")
    shift_labels: ClassVar[bool] = False  # causal LMs predict the *next* token
    # A run's teacher, set by ``distil`` on the run's copy (tasks that distil).
    distillation: PositionDistillation | None = None

    # -- what subclasses define -------------------------------------------------------

    def load(self, inputs: TrainInputs) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The model to train (from ``inputs.base_dir``) and its tokenizer."""
        raise NotImplementedError

    def encode(
        self, split: SplitData, tokenizer: PreTrainedTokenizerBase, max_length: int
    ) -> list[Example]:
        """One example per row (rows that leave nothing to learn may be skipped)."""
        raise NotImplementedError

    def task_config(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> dict[str, Any]:
        """What serving needs besides ``config.json`` (``aimass.json`` task_config)."""
        return {"task": self.name, "max_length": max_length}

    def tracker(self, tokenizer: PreTrainedTokenizerBase) -> Tracker:
        """A fresh tracker for one evaluation."""
        return Tracker()

    def finish(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, inputs: TrainInputs
    ) -> dict[str, Any]:
        """Extra results after training (e.g. generation samples), merged into metrics."""
        return {}

    def defaults(self, base_provenance: dict[str, Any]) -> dict[str, Any]:
        # Random weights learn with a far larger step than pretrained ones tolerate.
        lr = 5e-4 if scratch_base(base_provenance) else 5e-5
        return {"lr": lr, "batch_size": 16, "epochs": 3, "warmup_ratio": 0.06}

    def check_dataset(self, schema: Any, stats: dict[str, Any]) -> None:
        """The kind check (``check_kind``) is all most token tasks need."""

    # -- batches and losses --------------------------------------------------------

    def collate(
        self, examples: Sequence[Example], pad_id: int, device: Any, generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Pad every key to the batch's longest; attention masks for the id keys."""
        batch: dict[str, torch.Tensor] = {}
        for key in self.keys:
            rows = [e[key] for e in examples]
            width = max(len(r) for r in rows)
            fill = IGNORE if key in _PADDED_WITH_IGNORE else pad_id
            tensor = torch.full((len(rows), width), fill, dtype=torch.long)
            for i, row in enumerate(rows):
                tensor[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            batch[key] = tensor
            if key in _MASKED:
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for i, row in enumerate(rows):
                    mask[i, : len(row)] = 1
                batch[_MASKED[key]] = mask
        return {k: v.to(device) for k, v in batch.items()}

    def logits(self, model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Forward pass: (B, T, V) logits."""
        return model(**model_inputs(batch)).logits

    #: Whether LoRA adapts only the backbone (``model.base_model``), so that the
    #: task's head trains in full beside the adapters (a new tagging or MLM head).
    adapts_backbone: ClassVar[bool] = False

    def adapted(self, model: PreTrainedModel) -> torch.nn.Module:
        """The part of ``model`` LoRA adapts and freezes: the backbone for tasks that set
        ``adapts_backbone``, else the whole model."""
        part: torch.nn.Module = model.base_model if self.adapts_backbone else model
        return part

    #: What one private training example is, as the privacy record names it.
    privacy_unit: ClassVar[str] = "dataset row"

    def private_examples(self, examples: list[Example]) -> tuple[list[Example], int]:
        """The training examples DP-SGD may use, one per dataset row (its privacy unit),
        and how many rows gave up part of themselves for it.

        DP-SGD clips one gradient per example and its guarantee is per example, so a
        row encoded as several examples (a sentence's windows, a pair's two texts:
        examples that carry their ``row``) would count as several people: it keeps its
        first. Examples without a ``row`` are already one per row.
        """
        if not examples or "row" not in examples[0]:
            return examples, 0
        kept: dict[int, Example] = {}
        seen: dict[int, int] = {}
        for example in examples:
            row = example["row"][0]
            kept.setdefault(row, example)
            seen[row] = seen.get(row, 0) + 1
        return list(kept.values()), sum(1 for n in seen.values() if n > 1)

    # -- distillation (tasks that set supports_distillation) -------------------------

    def distil(
        self,
        inputs: TrainInputs,
        train: list[Example],
        tokenizer: PreTrainedTokenizerBase,
        max_length: int,
    ) -> list[Example]:
        """``train`` and the transfer set's examples, each with the teacher's targets."""
        raise NotImplementedError

    def targets(
        self,
        examples: Sequence[Example],
        labels: torch.Tensor,
        inputs: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The training targets of a batch of ``examples`` padded to ``labels``: the
        labels, or (when distilling) the teacher's distributions packed beside them
        (``inputs``: what the student reads of the batch, which a teacher that runs
        beside it reads too)."""
        if self.distillation is None:
            return labels
        return self.distillation.targets(examples, labels, inputs)

    def distilled(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        test: list[Example],
        tested: Tracker,
        inputs: TrainInputs,
    ) -> dict[str, Any]:
        """The ``distillation`` block of the metrics, given the tracker that saw the
        student's predictions on the ``test`` examples."""
        raise NotImplementedError

    def freeze_for_privacy(self, model: PreTrainedModel) -> None:
        """Freeze the weights of ``model`` DP-SGD cannot take a per-example gradient of
        (none by default; the token embeddings are the engine's choice)."""

    def loss_rows(
        self, logits: torch.Tensor, labels: torch.Tensor, *, smoothing: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row summed cross-entropy over labelled positions (B,), and their counts (B,);
        a distillation's packed (B, T, C + 1) targets go to its own loss. ``smoothing``
        is the training run's label smoothing (evaluation leaves it at 0)."""
        if labels.dim() == 3:
            assert self.distillation is not None
            return self.distillation.rows(logits, labels)
        if self.shift_labels:
            logits, labels = logits[:, :-1], labels[:, 1:]
        per_token = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            labels.reshape(-1),
            ignore_index=IGNORE,
            reduction="none",
            label_smoothing=smoothing,
        ).reshape(labels.shape)
        return per_token.sum(dim=1), (labels != IGNORE).sum(dim=1)

    def loss_sum(
        self, logits: torch.Tensor, labels: torch.Tensor, *, smoothing: float = 0.0
    ) -> tuple[torch.Tensor, int]:
        """Summed cross-entropy over labelled positions, and how many there are."""
        sums, counts = self.loss_rows(logits, labels, smoothing=smoothing)
        return sums.sum(), int(counts.sum())

    def held_out_seed(self, inputs: TrainInputs) -> int:
        """The seed of what ``collate`` draws for a held-out split (one per run, apart from
        the training batches')."""
        return inputs.config.seed + 1

    def eval_batches(
        self,
        examples: list[Example],
        tokenizer: PreTrainedTokenizerBase,
        *,
        seed: int,
        device: Any,
    ) -> Iterator[tuple[list[int], list[Example], dict[str, torch.Tensor]]]:
        """The held-out batches :meth:`score` reads — ``(indices, examples, batch)`` in
        fixed length-bucketed order, with what ``collate`` draws (masked-LM masks) seeded
        by ``seed`` — so that another model can be scored on exactly the same inputs."""
        generator = torch.Generator().manual_seed(seed)
        pad_id = padding_id(tokenizer)
        lengths = [len(e["input_ids"]) for e in examples]
        for idx in bucketed_batches(lengths, EVAL_BATCH, shuffle=False):
            chosen = [examples[i] for i in idx]
            yield idx, chosen, self.collate(chosen, pad_id, device, generator)

    @torch.inference_mode()
    def score(
        self,
        model: PreTrainedModel,
        examples: list[Example],
        tokenizer: PreTrainedTokenizerBase,
        *,
        seed: int,
        device: Any,
        tracker: Tracker | None = None,
    ) -> tuple[list[float], list[int]]:
        """Summed loss and labelled-token count of every example, in length-bucketed batches.

        Deterministic: the batches are fixed and ``seed`` seeds what ``collate``
        draws (masked-LM masks). ``tracker`` sees every batch.

        Returns:
            ``(loss_sums, token_counts)``, both indexed like ``examples``.
        """
        was_training = model.training
        model.eval()
        sums, counts = [0.0] * len(examples), [0] * len(examples)
        for idx, chosen, batch in self.eval_batches(examples, tokenizer, seed=seed, device=device):
            logits = self.logits(model, batch)
            row_sums, row_counts = self.loss_rows(logits, batch["labels"])
            for i, total, n in zip(idx, row_sums.tolist(), row_counts.tolist(), strict=True):
                sums[i], counts[i] = total, n
            if tracker is not None:
                tracker.update(chosen, batch, logits)
        model.train(was_training)
        return sums, counts

    def evaluate(
        self,
        model: PreTrainedModel,
        examples: list[Example],
        tokenizer: PreTrainedTokenizerBase,
        inputs: TrainInputs,
        tracker: Tracker | None = None,
    ) -> dict[str, Any]:
        """Held-out loss, perplexity and the tracker's numbers (deterministic); ``tracker``
        (a fresh one if not given) keeps what it saw, for a caller that reads it again."""
        if not examples:
            return {}
        tracker = tracker or self.tracker(tokenizer)
        sums, counts = self.score(
            model,
            examples,
            tokenizer,
            seed=self.held_out_seed(inputs),
            device=inputs.device,
            tracker=tracker,
        )
        count = sum(counts)
        loss = sum(sums) / max(count, 1)
        return {"loss": loss, "perplexity": perplexity(loss), "tokens": count, **tracker.result()}

    def restore(
        self,
        task_config: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
    ) -> None:
        """Set what :meth:`load` sets during training from a trained bundle's ``task_config``."""

    def for_bundle(
        self,
        task_config: dict[str, Any],
        tokenizer: PreTrainedTokenizerBase,
        model: PreTrainedModel,
    ) -> ExampleTask:
        """A private copy of the task set up as it was when ``model`` was trained, so that
        evaluation encodes, collates and scores exactly as training did."""
        task = copy.copy(self)
        task.restore(task_config, tokenizer, model)
        return task

    # -- the recipe ------------------------------------------------------------------

    def train(self, inputs: TrainInputs) -> TrainOutcome:
        # Tasks are registered singletons; a run keeps its own state on a copy.
        return copy.copy(self).run(inputs)

    def run(self, inputs: TrainInputs) -> TrainOutcome:
        """Train once (on a private copy of the task, see :meth:`train`)."""
        cfg = inputs.config
        assert cfg.batch_size is not None
        seed_everything(cfg.seed)
        model, tokenizer = self.load(inputs)
        lora = (
            lora_settings(cfg, model_type=str(model.config.model_type), family=self.families[0])
            if cfg.lora_rank
            else None
        )
        # Injected in place: the model keeps its class; only the adapters require grad.
        tuner = add_adapters(self.adapted(model), lora) if lora is not None else None
        # transformers declares PreTrainedModel.to through functools.wraps, which
        # typeshed types as an unbound function (it asks for ``self`` again).
        model.to(inputs.device)  # type: ignore[arg-type]
        context = int(getattr(model.config, "max_position_embeddings", cfg.max_length))
        max_length = min(cfg.max_length, context)
        splits = {
            name: self.encode(getattr(inputs, name), tokenizer, max_length)
            for name in ("train", "validation", "test")
        }
        train = splits["train"]
        if not train:
            raise InvalidArgument(f"no training row is usable for task {self.name!r}")
        if inputs.distillation is not None:  # tasks that set supports_distillation
            train = self.distil(inputs, train, tokenizer, max_length)
        pad_id = padding_id(tokenizer)
        generator = torch.Generator().manual_seed(cfg.seed)
        lengths = [len(e["input_ids"]) for e in train]

        def batches(epoch: int) -> list[list[int]]:
            return bucketed_batches(
                lengths, cfg.batch_size or 1, shuffle=True, seed=cfg.seed + epoch
            )

        def loss_fn(idx: list[int]) -> torch.Tensor:
            chosen = [train[i] for i in idx]
            batch = self.collate(chosen, pad_id, inputs.device, generator)
            logits = self.logits(model, batch)
            targets = self.targets(chosen, batch["labels"], model_inputs(batch))
            total, count = self.loss_sum(logits, targets, smoothing=cfg.label_smoothing)
            return total / max(count, 1)

        def evaluate() -> dict[str, Any]:
            return self.evaluate(model, splits["validation"], tokenizer, inputs)

        if not splits["validation"]:
            raise InvalidArgument(
                "the dataset has no usable validation rows; re-import it with a validation "
                "split fraction above 0"
            )
        initial = evaluate()
        started = time.perf_counter()
        cut = 0
        if inputs.privacy is not None:
            train, cut = self.private_examples(train)
            lengths = [len(e["input_ids"]) for e in train]
        if cfg.mode == "features":  # tasks that list it: a head on the frozen encoder
            from aimass.training.token_features import fit_head

            result = fit_head(self, model, train, splits["validation"], tokenizer, pad_id, inputs)
        elif inputs.privacy is not None:
            from aimass.training.token_private import fit_private_finetune

            result = fit_private_finetune(self, model, train, pad_id, generator, evaluate, inputs)
        else:
            result = fit(
                model,
                batches=batches,
                loss_fn=loss_fn,
                evaluate=evaluate,
                config=cfg,
                metric=self.metric,
                greater_is_better=self.greater_is_better,
                callbacks=inputs.callbacks,
                parallel=inputs.parallel,
                adversary=adversary_for(model.get_input_embeddings(), cfg),
            )
        seconds = time.perf_counter() - started
        tested = self.tracker(tokenizer)
        test = self.evaluate(model, splits["test"], tokenizer, inputs, tested)
        extra = self.finish(model, tokenizer, inputs)
        if inputs.distillation is not None:
            extra["distillation"] = self.distilled(model, tokenizer, splits["test"], tested, inputs)
        model.to("cpu").eval()  # type: ignore[arg-type]  # functools.wraps, as above
        task_config = self.task_config(tokenizer, max_length)
        adapters = adapter_state_dict(self.adapted(model)) if tuner is not None else None
        if lora is not None and adapters is not None:
            merge_adapters(tuner)  # served and exported like any other model
            task_config["lora"] = {
                **lora.to_dict(),
                "trained_parameters": sum(v.numel() for v in adapters.values()),
            }
        return TrainOutcome(
            state_dict=dedupe_tied(model.state_dict()),
            hf_config=json.loads(model.config.to_json_string(use_diff=False)),
            tokenizer_files=tokenizer_files(inputs.base_dir),
            task_config=task_config,
            architecture=str(model.config.model_type),
            family=self.families[0],
            metrics={
                "initial_validation": initial,
                "validation": result.best_metrics,
                "test": test,
                **extra,
                "training": {
                    **result.summary(seconds=seconds, train_rows=len(inputs.train)),
                    "train_examples": len(train),
                    "train_tokens": sum(lengths),
                    **({"dp_cut_rows": cut} if inputs.privacy is not None else {}),
                },
            },
            history=result.history,
            generation_config=_generation_config(model),
            adapters=adapters,
            privacy=inputs.privacy.summary() if inputs.privacy is not None else None,
        )


def _generation_config(model: PreTrainedModel) -> dict[str, Any] | None:
    config = getattr(model, "generation_config", None)
    if config is None or not getattr(model, "can_generate", lambda: False)():
        return None
    return json.loads(config.to_json_string(use_diff=True))
