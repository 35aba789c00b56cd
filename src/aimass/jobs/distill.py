"""The teacher's side of a distillation: checks before the job exists, soft targets in it.

A ``train`` job whose config names a ``teacher`` is a distillation. The teacher is a
registered model version (``NAME@REF``) or a pipeline version
(``pipeline:NAME@REF``: an ensemble, routing by language, de-identification...).
Before the job is queued, :func:`check_distillation` refuses what cannot work (an
unknown teacher, another task, another label set, a non-private teacher of the rows
a ``--dp`` student trains on). In the job, :func:`soft_targets` runs the teacher once
over the training rows, the transfer set and the test split; the student's loop
(:mod:`aimass.training.distill`) then learns from what it said: class probabilities
for a classifier or a pipeline, predicted values for a regressor.

A pipeline's soft target for an input is the probabilities of its answer over the
student's classes, also where a threshold step abstained (the deciding model's
distribution is still the teacher's view of the input, only less sure).

A tagger teacher (``token-classification``) is handed over as a function instead,
windows of token ids → tag probabilities, that the student's task calls on its own
windows (:mod:`aimass.training.token_distill`): the student needs the teacher's
tokenizer, checked here before any tagging. A language-model teacher
(``causal-lm``, ``masked-lm``, ``seq2seq``) is handed over the same way, what the
student reads of a batch → its logits, and runs beside the student on every batch
(:mod:`aimass.training.lm_distill`).

With intermediate-layer matching (``match_hidden``) the teacher model also gives
its mean-pooled, L2-normalised hidden states of the layers the student's map to
(:func:`aimass.training.distill.layer_map`), in a second pass over the training
rows and the transfer set; the teacher must have the student's hidden size.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.data.tables import read_split
from aimass.entities import DatasetVersion, ModelVersion, PipelineVersion
from aimass.errors import InvalidArgument, NotFound
from aimass.jobs.evaluate_pipeline import LoadedPipeline, pipeline_pins
from aimass.jobs.runner import JobContext
from aimass.jobs.token_teachers import (
    TEACHER_BATCH,
    TEACHER_CHUNK,
    lm_token_logits,
    reloading_tagger,
    tagger_windows,
    teacher_outputs,
)
from aimass.refs import parse_ref
from aimass.serving.pipelines import ABSTAIN, output_labels, pinned_version
from aimass.store import Store
from aimass.training.callbacks import CallbackList
from aimass.training.config import PIPELINE_TEACHER, TrainConfig, pipeline_teacher
from aimass.training.distill_options import LM_POSITIONS
from aimass.training.tasks import Task, list_tasks

if TYPE_CHECKING:
    from aimass.data.tables import SplitData
    from aimass.training.distill import SoftTargets

__all__ = [
    "Teacher",
    "check_distillation",
    "find_teacher",
    "soft_targets",
    "unlabelled_dataset",
    "version_of",
]


log = logging.getLogger("aimass.jobs.train")


def version_of(text: str, kind: str) -> tuple[str, int | None]:
    """``(name, version)`` of ``NAME`` or ``NAME@VERSION`` (an alias is refused)."""
    ref = parse_ref(text, kind=kind)
    if ref.alias not in (None, "latest"):
        raise InvalidArgument(f"{kind} reference {text!r}: use NAME or NAME@VERSION")
    return ref.name, ref.version


@dataclass(frozen=True)
class Teacher:
    """A distillation's teacher as found in the store.

    Attributes:
        ref: ``NAME@VERSION``, or ``pipeline:NAME@VERSION``: what the job pins.
        digest: The model's bundle digest, or the pipeline version's spec digest.
        task: ``classification`` or ``regression`` (a pipeline: classification).
        labels: The classes it answers with (``None`` when a model did not record them).
        models: The model version, or every model version the pipeline runs.
        pipeline: The pipeline version, for a pipeline teacher.
    """

    ref: str
    digest: str
    task: str
    labels: list[str] | None
    models: list[ModelVersion]
    pipeline: PipelineVersion | None = None

    @property
    def privacy(self) -> dict[str, Any] | None:
        """The model's own DP record (``None`` for a pipeline: its models each have one)."""
        return self.models[0].privacy if self.pipeline is None else None


def find_teacher(store: Store, project: str, text: str) -> Teacher:
    """The teacher ``text`` names, the error naming ``--teacher`` and the fix."""
    pipeline_ref = pipeline_teacher(text)
    try:
        if pipeline_ref is None:
            model = store.registry.get_version(project, parse_ref(text, kind="teacher model"))
            return Teacher(model.ref, model.digest, model.task, _teacher_labels(model), [model])
        pipeline = store.pipelines.resolve(project, parse_ref(pipeline_ref, kind="pipeline"))
        models = []
        for pin in pipeline_pins(pipeline):
            version = store.registry.get_version(project, parse_ref(pin["model"]))
            models.append(pinned_version(pin, version))
    except NotFound as exc:
        raise NotFound(
            f"--teacher {text}: {exc.message}; distil from a trained classifier or regressor "
            f"('aimass models list') or a pipeline ({PIPELINE_TEACHER}NAME@REF, "
            "'aimass pipelines list')",
            field="teacher",
        ) from exc
    answers = [label for label in output_labels(pipeline.spec) if label != ABSTAIN]
    return Teacher(
        PIPELINE_TEACHER + pipeline.ref,
        pipeline.digest,
        "classification",
        answers,
        models,
        pipeline,
    )


def unlabelled_dataset(store: Store, project: str, text: str) -> DatasetVersion:
    """The transfer set's dataset version, the error naming ``--unlabelled``."""
    try:
        return store.datasets.get(project, *version_of(text, "unlabelled dataset"))
    except NotFound as exc:
        raise NotFound(
            f"--unlabelled {text}: {exc.message}; import the transfer set first "
            "('aimass datasets import FILE --name NAME'; labels are not needed)",
            field="unlabelled",
        ) from exc


def _teacher_labels(teacher: ModelVersion) -> list[str] | None:
    """The teacher's classes from its recorded metrics (``None`` when not recorded)."""
    for split in ("validation", "test"):
        per_class = (teacher.metrics.get(split) or {}).get("per_class")
        if per_class:
            return list(per_class)
    return None


def _check_labels(teacher: str, labels: list[str] | None, classes: list[str]) -> None:
    if labels is not None and sorted(map(str, labels)) != sorted(map(str, classes)):
        raise InvalidArgument(
            f"teacher {teacher} predicts the classes {sorted(map(str, labels))} but the "
            f"student's dataset has {sorted(map(str, classes))}: a student learns the "
            "teacher's probabilities class by class, so both need the same label set; "
            "distil from a teacher trained on these classes",
            field="teacher",
        )


def check_distillation(
    store: Store,
    project: str,
    task: Task,
    config: TrainConfig,
    dataset: DatasetVersion,
    dp: bool,
) -> None:
    """Refuse a distillation that cannot work, before any job exists (``dp``: the
    student trains with DP-SGD)."""
    assert config.teacher is not None
    if not task.supports_distillation:
        raise InvalidArgument(
            f"--teacher: task {task.name!r} cannot be distilled yet (only classification, "
            "regression, token-classification, causal-lm, masked-lm and seq2seq); train "
            "the student on its labels with 'aimass train' instead",
            field="teacher",
        )
    teacher = find_teacher(store, project, config.teacher)
    if teacher.task != task.name:
        raise InvalidArgument(
            f"teacher {teacher.ref} is a {teacher.task} model but the student is trained "
            f"for {task.name}; distil from a {task.name} model"
            + (
                f" (or train the student for {teacher.task}: --task {teacher.task})"
                if teacher.task in {t.name for t in list_tasks() if t.supports_distillation}
                else ""
            ),
            field="teacher",
        )
    if task.name == "classification":
        _check_labels(teacher.ref, teacher.labels, list(dataset.stats.get("classes", [])))
    if config.sequence_beams and dataset.schema.kind != "pairs":
        raise InvalidArgument(
            f"--sequence-beams with dataset {dataset.ref} of kind {dataset.schema.kind!r}: "
            "sequence-level distillation has the teacher write the response to each prompt "
            "(or the target of each source), so it needs a pairs dataset; drop "
            "--sequence-beams to distil word by word on the texts",
            field="sequence_beams",
        )
    if config.unlabelled is not None:
        transfer = unlabelled_dataset(store, project, config.unlabelled)
        kinds = task.transfer_kinds or task.kinds
        if config.sequence_beams:  # the teacher writes every target: sources alone will do
            kinds = ("pairs", "text")
        if transfer.schema.kind not in kinds:
            raise InvalidArgument(
                f"--unlabelled {transfer.ref} is a dataset of kind {transfer.schema.kind!r}; "
                f"a {task.name} student's transfer set is of kind {' or '.join(kinds)} "
                f"(import one with 'aimass datasets import FILE --kind {kinds[0]}')"
                + (
                    "; or add --sequence-beams N: the teacher then writes the targets of "
                    "sources alone"
                    if task.name == "seq2seq" and transfer.schema.kind == "text"
                    else ""
                ),
                field="unlabelled",
            )
    for model in teacher.models if dp else []:
        seen = model.lineage.dataset.partition("@")[0]
        if model.privacy is None and seen == dataset.name:
            # The teacher's weights hold its (non-private) view of these very rows;
            # its soft labels would carry it into the student beside DP-SGD's noise.
            which = "the teacher" if model.ref == teacher.ref else f"its model {model.ref}"
            raise InvalidArgument(
                f"--dp with teacher {teacher.ref}: {which} was trained on "
                f"{model.lineage.dataset} without differential privacy, so its soft "
                f"labels leak the rows of {dataset.name!r} past the student's DP-SGD; "
                "train the teacher with --dp, or distil on another dataset (e.g. a public "
                "or --unlabelled transfer set)",
                field="teacher",
            )


def _scores(
    score: Callable[[list[str]], Any], width: int, texts: list[str], callbacks: CallbackList
) -> Any:
    """(N, width) of what ``score`` says, in chunks, each a progress tick (and a chance
    to cancel)."""
    import numpy as np

    parts = [np.zeros((0, width))]
    for start in range(0, len(texts), TEACHER_CHUNK):
        chunk = texts[start : start + TEACHER_CHUNK]
        parts.append(score(chunk))
        callbacks.on_phase_advance(len(chunk))
    return np.concatenate(parts)


def _scorer(
    ctx: JobContext, teacher: Teacher, classes: list[str], predictor: Any
) -> Callable[[list[str]], Any]:
    """The teacher: texts → (N, C) probabilities in ``classes`` order (a regressor:
    (N, 1) values). ``predictor`` is a model teacher's, loaded; ``None`` for a pipeline."""
    import numpy as np

    from aimass.evaluation import ReportOptions

    if teacher.pipeline is not None:
        loaded = LoadedPipeline(ctx, teacher.pipeline, ReportOptions(batch_size=TEACHER_BATCH))

        def pipeline_scores(texts: list[str]) -> Any:
            found = [r.get("probabilities") or {} for r in loaded.run(texts)]
            rows = np.array([[float(p.get(c, 0.0)) for c in classes] for p in found])
            total = rows.sum(axis=1, keepdims=True)  # < 1 where a label step merged classes
            return np.where(total > 0, rows / np.where(total > 0, total, 1), 1 / len(classes))

        return pipeline_scores
    columns: list[int] | slice = slice(None)  # a regressor's one value
    if teacher.task == "classification":
        labels = [str(c) for c in predictor.head.labels]
        _check_labels(teacher.ref, labels, classes)
        columns = [labels.index(c) for c in classes]  # teacher columns in the student's order
    return lambda texts: predictor.scores(texts, batch_size=TEACHER_BATCH)[:, columns]


def _reloading_scorer(
    ctx: JobContext, teacher: Teacher, classes: list[str]
) -> Callable[[list[str]], Any]:
    """The teacher as ``_scorer`` makes it, loaded again on the first call: the student
    is timed beside it after training, and the teacher need not stay in memory until then."""

    @functools.cache
    def load() -> Callable[[list[str]], Any]:
        return _scorer(ctx, teacher, classes, _predictor(ctx, teacher))

    return lambda texts: load()(texts)


def _predictor(ctx: JobContext, teacher: Teacher) -> Any:
    """A model teacher's loaded predictor; ``None`` for a pipeline (``_scorer`` runs it)."""
    from aimass.serving.predictor import load_predictor

    if teacher.pipeline is not None:
        return None
    return load_predictor(ctx.artifacts.resolve(teacher.models[0].uri), device=ctx.settings.device)


def _teacher_states(
    teacher: Teacher,
    predictor: Any,
    student_dir: Path,
    texts: list[str],
    callbacks: CallbackList,
) -> tuple[tuple[tuple[int, int], ...], Any]:
    """The layer pairs and the teacher's (N, L·H) normalised pooled states of ``texts``,
    from its loaded (PyTorch) ``predictor``."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from aimass.models.hf import read_config
    from aimass.models.text import bucketed_batches, collate, encode_texts
    from aimass.training.distill import layer_map

    model = predictor.model
    student = read_config(student_dir)
    teacher_config = model.encoder.config
    sizes = int(student.hidden_size), int(teacher_config.hidden_size)
    if sizes[0] != sizes[1]:
        raise InvalidArgument(
            f"--match-hidden: the student's hidden size is {sizes[0]} but teacher "
            f"{teacher.ref}'s is {sizes[1]}; layers are matched only where the shapes "
            "agree, so distil into a student of the teacher's width (e.g. the teacher's "
            "base cut to fewer layers), or drop --match-hidden",
            field="match_hidden",
        )
    layers = layer_map(int(student.num_hidden_layers), int(teacher_config.num_hidden_layers))
    outputs = model.head_config.num_outputs
    wanted = [t for _, t in layers]
    states = np.zeros((len(texts), len(layers) * sizes[1]), dtype=np.float32)
    callbacks.on_phase(f"teacher {teacher.ref} hidden states", len(texts))
    for start in range(0, len(texts), TEACHER_CHUNK):
        part = texts[start : start + TEACHER_CHUNK]
        chunk = encode_texts(predictor.tokenizer, part, max_length=predictor.max_length)
        for idx in bucketed_batches(chunk.lengths, TEACHER_BATCH, shuffle=False):
            with torch.inference_mode():
                said = model.forward_with_layers(wanted, **collate(chunk, idx, predictor.device))
            pooled = said[:, outputs:].float().reshape(len(idx), len(layers), -1)
            normalised = F.normalize(pooled, dim=-1).reshape(len(idx), -1).cpu().numpy()
            states[[start + i for i in idx]] = normalised
        callbacks.on_phase_advance(len(chunk))
    return layers, states


def soft_targets(
    ctx: JobContext,
    config: TrainConfig,
    dataset: DatasetVersion,
    splits: dict[str, SplitData],
    callbacks: CallbackList,
    *,
    student_dir: Path | None = None,
) -> SoftTargets:
    """Run the teacher once over the training rows, the transfer set and the test split
    (and, with ``match_hidden``, again for its hidden states: ``student_dir`` is the
    student's base, whose layers are mapped to the teacher's)."""
    import numpy as np

    from aimass.training.distill import SoftTargets

    assert config.teacher is not None
    assert config.distill_alpha is not None
    teacher = find_teacher(ctx.store, ctx.job.project, config.teacher)
    classes = [str(c) for c in dataset.stats.get("classes") or []]
    predictor = _predictor(ctx, teacher)
    transfer: list[str] = []
    transfer_targets = None
    transfer_ref = None
    if config.unlabelled is not None:
        found = unlabelled_dataset(ctx.store, ctx.job.project, config.unlabelled)
        rows = read_split(ctx.artifacts.resolve(found.uri), None)
        transfer, transfer_targets, transfer_ref = rows.texts, rows.targets, found.ref
    if teacher.task in LM_POSITIONS:
        assert student_dir is not None
        token_logits = lm_token_logits(teacher, predictor, student_dir)  # checks tokenizers
        decoded, seconds = None, 0.0
        if config.sequence_beams:
            started = time.perf_counter()
            write = functools.partial(
                teacher_outputs,
                teacher,
                predictor,
                beams=config.sequence_beams,
                max_length=config.max_length,
                callbacks=callbacks,
            )
            decoded, transfer_targets = write(splits["train"].texts), write(transfer)
            seconds = time.perf_counter() - started
            log.info(
                "teacher %s decoded %d sources in %.1f s: the student's targets",
                teacher.ref,
                len(decoded) + len(transfer),
                seconds,
            )
        log.info("teacher %s runs beside the student on every batch", teacher.ref)
        return SoftTargets(
            teacher=teacher.ref,
            teacher_digest=teacher.digest,
            temperature=config.temperature,
            alpha=config.distill_alpha,
            train=np.zeros((0, 0)),
            transfer_texts=transfer,
            transfer=np.zeros((0, 0)),
            test=np.zeros((0, 0)),
            transfer_set=transfer_ref,
            teacher_privacy=teacher.privacy,
            task=teacher.task,
            token_logits=token_logits,
            transfer_targets=transfer_targets,
            decoded=decoded,
            sequence_beams=config.sequence_beams,
            decode_seconds=seconds,
        )
    if teacher.task == "token-classification":
        assert student_dir is not None
        windows = tagger_windows(teacher, predictor, classes, student_dir, callbacks)
        return SoftTargets(
            teacher=teacher.ref,
            teacher_digest=teacher.digest,
            temperature=config.temperature,
            alpha=config.distill_alpha,
            train=np.zeros((0, len(classes))),
            transfer_texts=transfer,
            transfer=np.zeros((0, len(classes))),
            test=np.zeros((0, len(classes))),
            teacher_scores=reloading_tagger(lambda: _predictor(ctx, teacher)),
            transfer_set=transfer_ref,
            teacher_privacy=teacher.privacy,
            task=teacher.task,
            windows=windows,
        )
    score = _scorer(ctx, teacher, classes, predictor)
    width = len(classes) if teacher.task == "classification" else 1
    texts = {"train": splits["train"].texts, "transfer": transfer, "test": splits["test"].texts}
    layers: tuple[tuple[int, int], ...] = ()
    hidden = None
    if config.match_hidden:  # first: a width mismatch fails before any labelling
        assert student_dir is not None
        layers, hidden = _teacher_states(
            teacher, predictor, student_dir, texts["train"] + texts["transfer"], callbacks
        )
    total = sum(len(t) for t in texts.values())
    log.info(
        "teacher %s labels %d rows (soft targets) before the student trains", teacher.ref, total
    )
    callbacks.on_phase(f"teacher {teacher.ref} labelling", total)
    said = {name: _scores(score, width, rows, callbacks) for name, rows in texts.items()}
    return SoftTargets(
        teacher=teacher.ref,
        teacher_digest=teacher.digest,
        temperature=config.temperature,
        alpha=config.distill_alpha,
        train=said["train"],
        transfer_texts=transfer,
        transfer=said["transfer"],
        test=said["test"],
        teacher_scores=_reloading_scorer(ctx, teacher, classes),
        transfer_set=transfer_ref,
        teacher_privacy=teacher.privacy,
        task=teacher.task,
        layers=layers,
        hidden=hidden,
        hidden_weight=float(config.match_hidden or 0.0),
    )
