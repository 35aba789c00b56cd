"""Sequence classification and regression on an encoder or a decoder, in two modes.

``features``: the pretrained backbone is frozen; it encodes every split once
(features cached in memory), and only the head trains, for many cheap epochs.
A decoder (a GPT) serves as the feature extractor just as an encoder does; its
pooling is ``mean`` or ``last`` (see :mod:`aimass.models.sequence`).
``finetune``: every weight trains on length-bucketed, dynamically padded batches;
with ``lora_rank`` the backbone stays frozen and only LoRA adapters (merged into
the weights when training ends, kept as a file beside them) and the head train.
With ``probe_epochs`` a linear probe (the head on frozen features, as in
``features`` mode) comes first, and fine-tuning starts from its head (LP-FT).
Both go through the same :func:`aimass.training.loop.fit`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from aimass.errors import InvalidArgument
from aimass.models.hf import load_pretrained, load_tokenizer
from aimass.models.layers import restrict_trainable
from aimass.models.lora import add_adapters, merge_adapters
from aimass.models.sequence import SequenceHeadConfig, SequenceModel, get_backbone
from aimass.models.text import Encoded, bucketed_batches, collate, encode_texts
from aimass.training.adversarial import EmbeddingAdversary, adversary_for
from aimass.training.config import TrainConfig, lora_settings
from aimass.training.distill import distillation_report, pack_targets, student_loss
from aimass.training.loop import Batches, FitResult, fit, param_groups, seed_everything
from aimass.training.sequence_parts import (
    adapter_weights,
    checkpointer,
    encode_frozen,
    feature_scale,
    model_outputs,
    shuffled_batches,
    training_loss,
)
from aimass.training.tasks import (
    Task,
    TrainInputs,
    TrainOutcome,
    tokenizer_files,
)

__all__ = ["SequenceTask"]


class SequenceTask(Task):
    """Shared recipe of classification and regression (:mod:`aimass.training.sequence_tasks`);
    subclasses define targets, loss and metrics."""

    supports_privacy = True
    supports_lora = True
    supports_probe = True
    families = ("encoder", "decoder")

    # -- what subclasses define --------------------------------------------------

    def head_config(self, inputs: TrainInputs) -> SequenceHeadConfig:
        raise NotImplementedError

    def targets(self, labels: Sequence[Any], head: SequenceHeadConfig) -> torch.Tensor:
        raise NotImplementedError

    def loss(
        self, outputs: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
    ) -> torch.Tensor:
        """The training loss; ``reduction="none"`` gives one value per example."""
        raise NotImplementedError

    def metrics(
        self, outputs: torch.Tensor, targets: torch.Tensor, head: SequenceHeadConfig
    ) -> dict[str, Any]:
        raise NotImplementedError

    def check_config(self, config: TrainConfig, *, family: str) -> None:
        """The pooling must suit the base's family (``cls``/``pooler`` need an encoder)."""
        poolings = get_backbone(family).poolings
        if config.pooling not in poolings:
            raise InvalidArgument(
                f"pooling {config.pooling!r} does not suit {family} bases; use "
                f"{' or '.join(poolings)} (e.g. --pooling {poolings[-1]})",
                field="pooling",
            )

    # -- the recipe --------------------------------------------------------------

    def train(self, inputs: TrainInputs) -> TrainOutcome:
        cfg = inputs.config
        if not len(inputs.validation):
            raise InvalidArgument(
                "the dataset has no validation rows; re-import it with validation split "
                "fractions above 0 (or a split field with 'validation' rows)"
            )
        seed_everything(cfg.seed)
        tokenizer = load_tokenizer(inputs.base_dir)
        encoder = load_pretrained(inputs.base_dir, family="backbone")
        head = self.head_config(inputs)
        model = SequenceModel(encoder, head).to(inputs.device)
        max_length = min(cfg.max_length, int(encoder.config.max_position_embeddings))
        soft = inputs.distillation
        # A distilled student also trains on the transfer set, after the labelled rows.
        texts = {n: getattr(inputs, n).texts for n in ("train", "validation", "test")}
        texts["train"] = texts["train"] + (soft.transfer_texts if soft is not None else [])
        splits = {
            name: encode_texts(tokenizer, rows, max_length=max_length)
            for name, rows in texts.items()
        }
        targets = {
            name: self.targets(getattr(inputs, name).labels or [], head).to(inputs.device)
            for name in ("train", "validation", "test")
        }
        # A regressor's outputs and targets are standardised; the teacher's values join them.
        scale = (head.target_mean, head.target_std)
        if soft is not None:
            packed = pack_targets(soft, targets["train"], scale=scale)
            targets["train"] = packed.to(inputs.device)
        lora = (
            lora_settings(cfg, model_type=str(encoder.config.model_type), family=head.family)
            if cfg.lora_rank
            else None
        )
        # Injected in place: model.encoder keeps its class; only the adapters require grad.
        tuner = add_adapters(model.encoder, lora) if lora is not None else None
        started = time.perf_counter()
        probe = None
        if cfg.mode == "features":
            result, test_outputs = self._train_features(model, splits, targets, inputs)
        else:
            probe = self._probe(model, splits, targets, inputs) if cfg.probe_epochs else None
            result, test_outputs = self._train_finetune(model, splits, targets, inputs, probe)
        seconds = time.perf_counter() - started
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        distilled = None
        if soft is not None:
            distilled = distillation_report(
                soft,
                # Logits, or values in the labels' units (a classifier's scale is (0, 1)).
                student_test=test_outputs * scale[1] + scale[0],
                test_labels=targets["test"].cpu() * scale[1] + scale[0],
                train_rows=len(inputs.train),
                # Timed as the teacher is: tokenise, then batches of 64 sorted by length.
                student=lambda t: model_outputs(
                    model, encode_texts(tokenizer, t, max_length=max_length), inputs.device
                ),
                test_texts=inputs.test.texts,
            )
        adapters = adapter_weights(model.to("cpu")) if tuner is not None else None
        if tuner is not None:
            merge_adapters(tuner)  # served, explained and exported like any other model
        task_config = {**head.to_dict(), "max_length": max_length}
        if lora is not None and adapters is not None:
            task_config["lora"] = {
                **lora.to_dict(),
                "trained_parameters": sum(v.numel() for v in adapters.values()),
            }
        model.to("cpu").eval()
        test = self.metrics(test_outputs, targets["test"].cpu(), head) if len(inputs.test) else {}
        hf_config = copy.deepcopy(encoder.config)
        hf_config.update(model.hf_config_updates(pad_token_id=splits["train"].pad_id))
        return TrainOutcome(
            state_dict=model.export_state_dict(),
            hf_config=json.loads(hf_config.to_json_string(use_diff=False)),
            tokenizer_files=tokenizer_files(inputs.base_dir),
            task_config=task_config,
            architecture=str(encoder.config.model_type),
            family=head.family,
            metrics={
                "validation": result.best_metrics,
                "test": test,
                "training": {
                    **result.summary(seconds=seconds, train_rows=len(inputs.train)),
                    "trainable": cfg.trainable,
                    "trained_parameters": trained,
                    **({"probe": probe} if probe is not None else {}),
                },
                **({"distillation": distilled} if distilled is not None else {}),
            },
            history=result.history,
            privacy=inputs.privacy.summary() if inputs.privacy is not None else None,
            adapters=adapters,
        )

    def _fit(
        self,
        module: torch.nn.Module,
        *,
        config: TrainConfig,
        phase: int,
        batches: Callable[[int], Batches],
        forward: Callable[[Any], torch.Tensor],
        targets: torch.Tensor,
        evaluate: Callable[[], dict[str, Any]],
        inputs: TrainInputs,
        finetune: bool,
        start_metrics: dict[str, Any] | None = None,
        adversary: EmbeddingAdversary | None = None,
    ) -> FitResult:
        """Run the loop for one phase of ``inputs.config.phases()`` (the probe, then the
        run), through the privacy engine when the inputs carry one.
        """
        assert config.lr is not None  # a resolved config
        # The head alone (features mode, a probe) has no layers to decay over.
        decay = config.layer_lr_decay if finetune else 1.0
        optimizer = torch.optim.AdamW(
            param_groups(module, config.weight_decay or 0.0, decay), lr=config.lr
        )
        train_loss = student_loss(training_loss(self.loss, config), inputs.distillation, config)
        phases = inputs.config.phases()
        # The probe is cheap and runs again on resume; checkpoints belong to the run.
        last = phase == len(phases) - 1
        if inputs.privacy is None:
            return fit(
                module,
                batches=batches,
                loss_fn=lambda idx: train_loss(forward(idx), targets[idx]),
                evaluate=evaluate,
                config=config,
                metric=self.metric,
                greater_is_better=self.greater_is_better,
                callbacks=inputs.callbacks,
                optimizer=optimizer,
                checkpoint=checkpointer(inputs) if last else None,
                parallel=inputs.parallel,
                start_metrics=start_metrics,
                adversary=adversary,
            )
        # jobs refuse adversarial training under DP: its second pass is not accounted for.
        assert adversary is None
        # No checkpoints under DP: resuming would need the accountant's state too, and
        # an epsilon counted from a resumed run without it would be understated.
        engine = inputs.privacy
        engine.check_module(module)
        private = engine.make_private(
            module,
            optimizer=optimizer,
            num_examples=len(targets),
            phases=phases,
            phase=phase,
            loss=train_loss,
            finetune=finetune,
        )
        with private as run:
            return fit(
                module,
                batches=run.batches,
                loss_fn=lambda idx: run.loss(forward(idx), targets[idx]),
                evaluate=evaluate,
                # Per-example clipping in the private optimizer replaces global clipping.
                config=dataclasses.replace(config, grad_clip=0.0),
                metric=self.metric,
                greater_is_better=self.greater_is_better,
                callbacks=inputs.callbacks,
                optimizer=run.optimizer,
                start_metrics=start_metrics,
            )

    def _fit_head(
        self,
        model: SequenceModel,
        feats: dict[str, torch.Tensor],
        targets: dict[str, torch.Tensor],
        inputs: TrainInputs,
        *,
        config: TrainConfig,
    ) -> FitResult:
        """Train the head alone on frozen features (phase 0: nothing trains before it)."""
        scale = feature_scale(model, feats["train"], private=inputs.privacy is not None)
        train, validation = feats["train"] / scale, feats["validation"] / scale
        head = torch.nn.Sequential(model.dropout, model.classifier)

        def evaluate() -> dict[str, Any]:
            with torch.inference_mode():
                outputs = model.classifier(validation)
            return self.metrics(outputs.cpu(), targets["validation"].cpu(), model.head_config)

        result = self._fit(
            head,
            config=config,
            phase=0,
            batches=lambda epoch: shuffled_batches(len(train), config, epoch),
            forward=lambda idx: head(train[idx]),
            targets=targets["train"],
            evaluate=evaluate,
            inputs=inputs,
            finetune=False,
        )
        with torch.no_grad():  # fold the scale in: W (x / s) = (W / s) x
            model.classifier.weight.div_(scale)
        return result

    def _train_features(
        self,
        model: SequenceModel,
        splits: dict[str, Encoded],
        targets: dict[str, torch.Tensor],
        inputs: TrainInputs,
    ) -> tuple[FitResult, torch.Tensor]:
        """``features`` mode: the head on the frozen backbone's features, for many epochs."""
        feats = encode_frozen(model, splits, inputs)
        result = self._fit_head(model, feats, targets, inputs, config=inputs.config)
        with torch.inference_mode():
            test_outputs = model.classifier(feats["test"]).float().cpu()
        return result, test_outputs

    def _probe(
        self,
        model: SequenceModel,
        splits: dict[str, Encoded],
        targets: dict[str, torch.Tensor],
        inputs: TrainInputs,
    ) -> dict[str, Any]:
        """LP-FT's first phase: the head alone on frozen features, before fine-tuning.

        A fine-tune that starts from a random head spends its first steps on the head
        while the backbone's features drift (Kumar et al. 2022). The weights that were
        trainable before the probe (every weight, or the adapters) are trainable again
        afterwards.
        """
        cfg = inputs.config
        trainable = [p for p in model.encoder.parameters() if p.requires_grad]
        feats = encode_frozen(model, {n: splits[n] for n in ("train", "validation")}, inputs)
        config = dataclasses.replace(
            cfg, epochs=cfg.probe_epochs, lr=cfg.probe_lr, warmup_ratio=0.0, patience=0
        )
        result = self._fit_head(model, feats, targets, inputs, config=config)
        for param in trainable:
            param.requires_grad_(True)
        return {"epochs": cfg.probe_epochs, "lr": cfg.probe_lr, "validation": result.best_metrics}

    def _train_finetune(
        self,
        model: SequenceModel,
        splits: dict[str, Encoded],
        targets: dict[str, torch.Tensor],
        inputs: TrainInputs,
        probe: dict[str, Any] | None,
    ) -> tuple[FitResult, torch.Tensor]:
        """``finetune`` mode: every weight (or the adapters) and the head, on batches of
        similar lengths. After a ``probe``, an epoch must beat the probe's validation
        score to replace its weights: fine-tuning never returns a worse model."""
        cfg = inputs.config
        train = splits["train"]
        assert cfg.batch_size is not None
        if model.head_config.pooling != "pooler" and getattr(model.encoder, "pooler", None):
            # Unused weights get no gradient; per-example clipping needs one for each
            # trainable weight, and AdamW skips them anyway.
            model.encoder.pooler.requires_grad_(False)
        model.explicit_ids = inputs.privacy is not None
        if inputs.privacy is not None and not inputs.privacy.train_embeddings:
            # The vocabulary x hidden table: the costliest per-example norm under DP
            # and the most noised coordinates, for little gain in accuracy.
            model.encoder.get_input_embeddings().requires_grad_(False)
        restrict_trainable(model.encoder, cfg.trainable)

        def batches(epoch: int) -> list[list[int]]:
            return bucketed_batches(
                train.lengths, cfg.batch_size or 1, shuffle=True, seed=cfg.seed + epoch
            )

        matched = [s for s, _ in inputs.distillation.layers] if inputs.distillation else []

        def forward(idx: Sequence[int] | torch.Tensor) -> torch.Tensor:
            indices = idx.tolist() if isinstance(idx, torch.Tensor) else idx
            batch = collate(train, indices, inputs.device)
            return model.forward_with_layers(matched, **batch) if matched else model(**batch)

        def evaluate() -> dict[str, Any]:
            outputs = model_outputs(model, splits["validation"], inputs.device)
            return self.metrics(outputs, targets["validation"].cpu(), model.head_config)

        result = self._fit(
            model,
            config=cfg,
            phase=1 if probe is not None else 0,
            start_metrics=probe["validation"] if probe is not None else None,
            batches=batches,
            forward=forward,
            targets=targets["train"],
            evaluate=evaluate,
            inputs=inputs,
            finetune=True,
            adversary=adversary_for(model.encoder.get_input_embeddings(), cfg),
        )
        model.explicit_ids = False
        return result, model_outputs(model, splits["test"], inputs.device)
