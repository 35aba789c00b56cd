"""``aimass distill``: a training job with a teacher (Hinton-style knowledge distillation).

The command builds the same training spec as ``aimass train``, with the
distillation keys of the training config (``teacher``, ``temperature``,
``distill_alpha``, ``unlabelled``) set, and trains it through the same flow: in
this process on a local home, as a submitted job against a server (``--url``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aimass.cli import _flows as flows
from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    fmt_metric,
)
from aimass.cli._training import (
    AliasOpt,
    BatchSizeOpt,
    EpochsOpt,
    EpsilonOpt,
    EvalStepsOpt,
    LrOpt,
    MaxLengthOpt,
    PatienceOpt,
    ReuseOpt,
    SeedOpt,
    given,
    print_version,
)
from aimass.errors import InvalidArgument
from aimass.schemas import ModelVersionOut

__all__ = ["distill"]


def _print_distillation(version: ModelVersionOut) -> None:
    record = version.metrics.get("distillation") or {}
    if not record:
        return
    temperature = record.get("temperature")
    console.print(
        f"  distilled from {record.get('teacher')} ("
        + (f"temperature {temperature}, " if temperature is not None else "")
        + f"alpha {record.get('alpha')}; {record.get('labelled_rows', '?')} labelled + "
        f"{record.get('transfer_rows', 0)} transfer rows)"
    )
    if matching := record.get("layer_matching"):
        pairs = ", ".join(f"{s}→{t}" for s, t in matching.get("layers", []))
        console.print(f"  intermediate-layer matching (weight {matching.get('weight')}): {pairs}")
    for what, key, ratio in (
        ("test accuracy", "accuracy", "accuracy_ratio"),
        ("test RMSE", "rmse", "rmse_ratio"),
        ("test entity F1", "f1", "f1_ratio"),
        ("test perplexity", "perplexity", "perplexity_ratio"),
        ("predictions/s", "rows_per_second", "speed_ratio"),
    ):
        if record.get(f"student_{key}") is None:
            continue
        console.print(
            f"  {what}: student {fmt_metric(record[f'student_{key}'])} vs teacher "
            f"{fmt_metric(record.get(f'teacher_{key}'))} "
            f"(x{fmt_metric(record.get(ratio))})"
        )
    if sequenced := record.get("sequence_level"):
        console.print(
            f"  targets: the teacher's outputs, beam {sequenced['beams']} "
            f"({sequenced['decoded_rows']} inputs decoded in {sequenced['decode_seconds']} s)"
        )
    if record.get("agreement") is not None:
        what = (
            "words tagged alike"
            if record.get("student_f1") is not None
            else "masked tokens filled alike"
            if record.get("positions") == "masked"
            else "target tokens alike"
            if record.get("positions") == "target"
            else "next tokens alike"
            if record.get("student_perplexity") is not None
            else "agreement"
        )
        console.print(f"  {what} with the teacher (test): {fmt_metric(record['agreement'])}")
    if record.get("correlation") is not None:
        console.print(f"  correlation with the teacher (test): {fmt_metric(record['correlation'])}")


@command
def distill(
    teacher: Annotated[
        str,
        typer.Option(
            help="Teacher model NAME@VERSION or NAME@ALIAS, or pipeline:NAME@REF (pinned "
            "when submitted)."
        ),
    ],
    student: Annotated[
        str,
        typer.Option(
            help="Student base NAME or NAME@VERSION (a smaller base: e.g. a from-scratch "
            "preset from 'aimass bases scratch', or minilm)."
        ),
    ],
    dataset: Annotated[str, typer.Option(help="Labelled dataset NAME or NAME@VERSION.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name for the student.")],
    unlabelled: Annotated[
        str | None,
        typer.Option(
            help="Transfer set NAME or NAME@VERSION: every row, labels ignored, gets the "
            "teacher's soft targets (a tagger's: raw text, read in windows as served)."
        ),
    ] = None,
    task: Annotated[
        str | None,
        typer.Option(
            help="The student's task (default: the teacher's): classification, regression "
            "(the teacher's values as targets), token-classification (a tagger, position "
            "by position), causal-lm, masked-lm or seq2seq (a language model, word by "
            "word); the last four need the teacher's tokenizer."
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(help="Softmax temperature of the soft targets (default 2; not regression)."),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Weight of the soft-target term vs the label's loss on labelled rows, 0-1 "
            "(default 0.5)."
        ),
    ] = None,
    match_hidden: Annotated[
        float | None,
        typer.Option(
            help="Intermediate-layer matching: weight of a term pulling each student "
            "layer's pooled state towards the teacher layer it maps to (e.g. 100; needs "
            "--mode finetune and a teacher model of the student's hidden size)."
        ),
    ] = None,
    sequence_beams: Annotated[
        int,
        typer.Option(
            help="Sequence-level distillation of a seq2seq model or of a causal LM on "
            "prompt/response pairs: the teacher first writes an output for every training "
            "source or prompt (and the transfer set's, which may then be plain text) with a "
            "beam this wide (1: greedy), and the student learns those outputs as its "
            "targets; 0: off (the references stay the targets)."
        ),
    ] = 0,
    mode: Annotated[
        str | None,
        typer.Option(help="Student: features (frozen encoder + head) or finetune."),
    ] = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchSizeOpt = None,
    max_train_rows: Annotated[
        int | None, typer.Option(help="Use a seeded sample of at most N labelled rows.")
    ] = None,
    max_length: MaxLengthOpt = 128,
    eval_steps: EvalStepsOpt = None,
    patience: PatienceOpt = None,
    seed: SeedOpt = 0,
    alias: AliasOpt = None,
    reuse: ReuseOpt = False,
    dp: Annotated[
        bool,
        typer.Option(
            "--dp", help="Train the student with DP-SGD (see docs/training.md, Distillation)."
        ),
    ] = False,
    target_epsilon: EpsilonOpt = None,
    delta: Annotated[float | None, typer.Option(help="DP: delta.")] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Distil a registered teacher into a smaller student and register the student.

    The teacher labels the training rows (and the --unlabelled transfer set) with
    soft targets once; the student trains on them mixed with the labels (Hinton
    et al.). Its model card records the teacher and the student's accuracy (RMSE
    with --task regression, where the student learns the teacher's values; entity
    F1 with --task token-classification, where it learns the teacher's tags token
    by token; perplexity for a causal, masked or seq2seq language model, whose
    teacher runs beside it on every batch) and speed relative to it. Locally it trains in this
    process; with --url / AIMASS_URL it submits a job to the server and follows its
    progress.
    """
    from aimass.training.callbacks import RichProgress
    from aimass.training.tasks import HEADLINE_METRICS, headline_metric

    config = given(
        task=task,
        mode=mode,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        max_train_rows=max_train_rows,
        max_length=max_length,
        eval_steps=eval_steps,
        patience=patience,
        seed=seed,
        teacher=teacher,
        temperature=temperature,
        distill_alpha=alpha,
        unlabelled=unlabelled,
        match_hidden=match_hidden,
        sequence_beams=sequence_beams or None,
    )
    dp_options = given(target_epsilon=target_epsilon, delta=delta)
    if dp_options and not dp:
        raise InvalidArgument("--target-epsilon and --delta are options of --dp; add --dp")
    spec: dict[str, Any] = {
        "dataset": dataset,
        "base": student,
        "model": name,
        "config": config,
        "alias": alias,
        "privacy": dp_options if dp else None,
    }
    # Without --task the student takes its teacher's: show whichever score it reports.
    metric = headline_metric(task) if task else tuple(dict.fromkeys(HEADLINE_METRICS.values()))
    callbacks = [] if json_out else [RichProgress(metric=metric)]
    version, _ = flows.train(backend(), spec, project=project, reuse=reuse, callbacks=callbacks)
    if json_out:
        emit_json(version)
        return
    print_version(version)
    _print_distillation(version)
