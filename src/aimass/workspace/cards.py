"""Model cards: a Markdown page per model version, generated from its record.

Nothing in a card is typed by hand: task, data, base, configuration, metrics,
privacy and attached reports all come from the registry, so a card cannot
drift from the model it describes.
"""

from __future__ import annotations

from typing import Any

from aimass.entities import Attachment, BaseModel, DatasetVersion, ModelVersion

__all__ = ["METRIC_KEYS", "render_card"]

# The metrics a card (and 'aimass models versions') shows for each task, headline first.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "f1_macro", "precision_macro", "recall_macro", "loss"),
    "regression": ("rmse", "r2", "mae", "loss"),
    "token-classification": ("f1", "precision", "recall", "loss"),
    "masked-lm": ("loss", "perplexity", "masked_accuracy"),
    "causal-lm": ("loss", "perplexity"),
    "seq2seq": ("loss", "perplexity", "token_accuracy"),
}
_USAGE: dict[str, tuple[str, str]] = {
    # task → (CLI line, Python line); NAME is replaced by the version reference
    "causal-lm": (
        'aimass generate NAME "your prompt" --max-new-tokens 64',
        'model.generate("your prompt", max_new_tokens=64)',
    ),
    "seq2seq": (
        'aimass generate NAME "your source text"',
        'model.generate("your source text")',
    ),
    "masked-lm": (
        'aimass predict NAME "a sentence with a [MASK] token"',
        'model.predict(["a sentence with a [MASK] token"])',
    ),
}
_DEFAULT_USAGE = ('aimass predict NAME "your text here"', 'model.predict(["your text here"])')


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _metrics_section(version: ModelVersion) -> str:
    keys = METRIC_KEYS.get(version.task, ("loss",))
    names = [("initial_validation", "validation before training")] * (
        "initial_validation" in version.metrics
    ) + [("validation", "validation (best evaluation)"), ("test", "test")]
    splits = [(title, version.metrics.get(s) or {}) for s, title in names]
    rows = [(k, *[m.get(k, "—") for _s, m in splits]) for k in keys]
    parts = [_table(("metric", *[title for title, _m in splits]), rows)]
    test = version.metrics.get("test") or {}
    per_type = test.get("per_type")
    if per_type:
        parts.append("\nPer entity type (test split):\n")
        parts.append(
            _table(
                ("type", "precision", "recall", "f1", "support"),
                [
                    (t, v["precision"], v["recall"], v["f1"], v["support"])
                    for t, v in per_type.items()
                ],
            )
        )
    per_class = test.get("per_class")
    if per_class:
        parts.append("\nPer class (test split):\n")
        parts.append(
            _table(
                ("class", "precision", "recall", "f1", "support"),
                [
                    (c, v["precision"], v["recall"], v["f1"], v["support"])
                    for c, v in per_class.items()
                ],
            )
        )
    training = version.metrics.get("training") or {}
    if training:
        best = f"best epoch {training.get('best_epoch', '?')}"
        step = (version.metrics.get("validation") or {}).get("step")
        best += f", step {step}" if step is not None else ""  # older versions lack the step
        parts.append(
            f"\nTraining took {training.get('seconds', '?')} s for {training.get('steps', '?')} "
            f"optimizer steps ({best})."
        )
    return "\n".join(parts)


def _samples_section(version: ModelVersion) -> str:
    samples = version.metrics.get("samples") or []
    if not samples:
        return ""

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")[:160] or "(empty)"

    rows = [
        (cell(s["prompt"]), cell(s.get("reference", "")), cell(s["generated"])) for s in samples
    ]
    return "Greedy generations for the first held-out prompts, after training:\n\n" + _table(
        ("prompt", "reference", "generated"), rows
    )


def _distillation_section(version: ModelVersion) -> str:
    """Teacher, settings and the student's quality/speed relative to it (or "")."""
    record = version.metrics.get("distillation")
    if not record:
        return ""
    transfer = record.get("transfer_set")
    language = record.get("student_perplexity") is not None
    lines = [
        f"- Teacher: `{record.get('teacher')}` (digest "
        f"`{str(record.get('teacher_digest', '?'))[:16]}…`)",
        (
            f"- Temperature {_fmt(record.get('temperature'))}, soft"
            if record.get("temperature") is not None
            else "- Soft"  # a regressor's teacher: its values, no temperature
        )
        + f"-target weight (alpha) {_fmt(record.get('alpha'))} "
        + (
            "at every position (a text is its own label)"
            if language
            else "on labelled rows, 1 on transfer rows"
        ),
        f"- Trained on {record.get('labelled_rows', '?')} labelled rows"
        + (
            f" and {record.get('transfer_rows', 0)} unlabelled rows of `{transfer}`"
            if transfer
            else ""
        )
        + ", each with the teacher's soft targets",
    ]
    if sequenced := record.get("sequence_level"):
        lines.append(
            f"- Sequence-level distillation: the targets are the teacher's own outputs "
            f"(beam search of width {sequenced.get('beams')}, {sequenced.get('decoded_rows')} "
            "sources or prompts decoded), not the references"
        )
    if matching := record.get("layer_matching"):
        pairs = ", ".join(f"{s}→{t}" for s, t in matching.get("layers", []))
        lines.append(
            f"- Intermediate-layer matching, weight {float(matching.get('weight', 0)):g}: student "
            f"layer → teacher layer {pairs} (mean-pooled, L2-normalised states)"
        )
    rows = (
        "sentences"
        if record.get("student_f1") is not None
        else "texts"
        if language
        else "predictions"
    )
    speed = "forward passes over test examples, batch 32" if language else "test split, batch 64"
    measured = [
        (label, record.get(f"teacher_{key}"), record.get(f"student_{key}"), record.get(ratio))
        for label, key, ratio in (
            ("test accuracy", "accuracy", "accuracy_ratio"),
            ("test RMSE (lower is better)", "rmse", "rmse_ratio"),
            ("test entity F1", "f1", "f1_ratio"),
            ("test perplexity (lower is better)", "perplexity", "perplexity_ratio"),
            (f"{rows}/s ({speed})", "rows_per_second", "speed_ratio"),
        )
        if record.get(f"student_{key}") is not None
    ]
    parts = ["\n".join(lines)]
    if measured:
        parts.append(
            _table(
                ("measured", "teacher", "student", "student / teacher"),
                [(m, t, s, r if r is not None else "—") for m, t, s, r in measured],
            )
        )
    if record.get("agreement") is not None:
        parts.append(
            f"The student tags {record['agreement']:.1%} of the words of the "
            f"{record.get('test_rows', '?')} test sentences as the teacher does."
            if record.get("student_f1") is not None
            else f"The student's most likely {_predicted_token(record)} is the teacher's at "
            f"{record['agreement']:.1%} of the {record.get('test_tokens', '?')} test positions."
            if language
            else f"The student predicts the teacher's class on {record['agreement']:.1%} of "
            f"the {record.get('test_rows', '?')} test rows."
        )
    if record.get("correlation") is not None:
        parts.append(
            f"The student's values correlate with the teacher's at r = "
            f"{record['correlation']:.3f} on the {record.get('test_rows', '?')} test rows."
        )
    privacy = record.get("teacher_privacy")
    if privacy:
        parts.append(
            f"The teacher was trained with differential privacy (epsilon "
            f"{_fmt(privacy.get('epsilon', '?'))}): its soft labels are a post-processing of a "
            "private model, so what the student learns of the teacher's training data through them "
            "is covered by that guarantee. Rows the student trains on itself are covered only "
            "by its own DP-SGD (see Privacy)."
        )
    return "\n\n".join(parts)


def _predicted_token(record: dict[str, Any]) -> str:
    """What a language model's distillation compares: the next token, or a masked one."""
    return {"masked": "token at a masked position", "target": "target token"}.get(
        str(record.get("positions")), "next token"
    )


def _privacy_section(version: ModelVersion) -> str:
    privacy = version.privacy
    if not privacy:
        return (
            "This version was **not** trained with differential privacy: it may memorise "
            "training examples. Do not expose it to untrusted users if the training data is "
            "sensitive."
        )
    rows = [(k, v) for k, v in sorted(privacy.items()) if not isinstance(v, dict | list)]
    text = "Trained with differential privacy (DP-SGD).\n\n" + _table(("field", "value"), rows)
    phases = privacy.get("phases") or []
    if phases:
        # A linear probe, then fine-tuning: the epsilon above is their composition.
        columns = (
            "sample_rate",
            "planned_steps",
            "expected_batch_size",
            "grad_sample_mode",
            "trained_parameters",
        )
        rows = [(i, *(p.get(c) for c in columns)) for i, p in enumerate(phases, 1)]
        text += (
            f"\n\nTrained in {len(phases)} private phases (a linear probe, then fine-tuning) at "
            "one noise multiplier, counted by one accountant; epsilon is their composition.\n\n"
            + _table(("phase", *columns), rows)
        )
    return text


def _attachments_section(attachments: list[Attachment]) -> str:
    if not attachments:
        return "No evaluation reports are attached yet."
    rows = [
        (
            a.kind,
            a.name,
            a.created_at.date().isoformat(),
            ", ".join(f"{k}={_fmt(v)}" for k, v in list(a.summary.items())[:6]),
        )
        for a in attachments
    ]
    return _table(("kind", "name", "date", "summary"), rows)


_EVALUATION_KEYS = (
    ("accuracy", "accuracy"),
    ("f1_macro", "macro F1"),
    ("mae", "MAE"),
    ("rmse", "RMSE"),
    ("r2", "R²"),
    ("ece", "expected calibration error"),
    ("perplexity", "held-out perplexity"),
    ("loss", "held-out loss (nats per token)"),
    ("tokens", "tokens scored"),
    ("entity_f1", "entity F1 (micro)"),
    ("entity_precision", "entity precision (micro)"),
    ("entity_recall", "entity recall (micro)"),
    ("token_accuracy", "tag accuracy"),
    ("perplexity_ratio", "perplexity ratio between groups"),
    ("entity_f1_difference", "entity F1 difference between groups"),
    ("worst_perplexity_ratio", "worst perplexity ratio under perturbation"),
    ("worst_f1_drop", "worst entity-F1 drop under perturbation"),
    ("demographic_parity_difference", "demographic-parity difference (worst class)"),
    ("equalized_odds_difference", "equalized-odds difference (worst class)"),
    ("mae_difference", "MAE difference between groups"),
    ("worst_flip_rate", "worst prediction-flip rate under perturbation"),
    ("worst_mae_increase", "worst MAE increase under perturbation"),
    ("worst_perturbation", "worst perturbation"),
    ("latency_ms", "single-item latency (ms, median)"),
    ("throughput_per_s", "batched throughput (predictions/s)"),
)


def _evaluation_section(version: ModelVersion, attachments: list[Attachment]) -> str:
    reports = [a for a in attachments if a.kind == "evaluation"]
    if not reports:
        return (
            "Not evaluated yet: run "
            f"`aimass evaluate {version.ref} --dataset NAME [--group-field FIELD]`."
        )
    latest = reports[0]
    summary = latest.summary
    rows = [
        (label, summary[key]) for key, label in _EVALUATION_KEYS if summary.get(key) is not None
    ]
    group = summary.get("group_field")
    scope = f"`{summary.get('dataset', '?')}`, split `{summary.get('split', '?')}`" + (
        f", fairness by `{group}`" if group else ", no fairness group field"
    )
    verdict = summary.get("verdict")
    judged = (
        f" Verdict: **{verdict}** (each section's reasons are in the report)." if verdict else ""
    )
    return (
        f"Latest report `{latest.name}` ({latest.created_at.date().isoformat()}) on {scope}."
        + judged
        + "\n\n"
        + _table(("metric", "value"), rows)
        + f"\n\nFull report (HTML with plots, and the same numbers as JSON): `{latest.uri}` — "
        f"`aimass reports get {version.ref} --name {latest.name} --out report.html`."
    )


def _data_section(dataset: DatasetVersion) -> str:
    prov = dataset.provenance
    lines = [
        f"- Dataset: `{dataset.ref}` ({dataset.num_rows:,} rows; "
        + ", ".join(f"{s} {n:,}" for s, n in dataset.splits.items())
        + ")",
        f"- Content digest: `{dataset.digest[:16]}…`",
    ]
    if prov.get("source"):
        lines.append(f"- Source: {prov['source']}")
    if prov.get("license"):
        lines.append(f"- License / terms: {prov['license']}")
    if prov.get("transformation"):
        lines.append(f"- Transformation on import: {prov['transformation']}")
    counts = (dataset.stats.get("label_counts") or {}).get("train")
    if counts:
        lines.append("- Training labels: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return "\n".join(lines)


def _imported_sections(version: ModelVersion) -> list[str]:
    """Origin sections of a version imported from a Hugging Face directory."""
    config = version.lineage.config
    return [
        "## Intended use",
        f"{version.task.capitalize()} as the imported model was trained for: aimass did not "
        "train it and knows neither its training data nor its base; check the evaluation "
        "reports before relying on it.",
        "## Origin",
        f"- Imported from a Hugging Face `{config.get('hf_architecture', '?')}` directory: "
        f"`{config.get('path', '?')}`\n"
        f"- Weights SHA-256 at import: `{config.get('source_sha256', 'unknown')}`\n"
        "- Training data, base model and license: unknown to aimass (see the source's own card)",
    ]


def _deleted(ref: str, digest: str) -> str:
    return (
        f"- `{ref}`: deleted since (content digest `{digest[:16]}…`); what the lineage "
        "recorded is all that is left"
    )


def _trained_sections(
    version: ModelVersion, dataset: DatasetVersion | None, base: BaseModel | None
) -> list[str]:
    """Data, base and configuration sections of a version trained here (``None``: the
    dataset or base was deleted after training)."""
    lineage = version.lineage
    config = lineage.config
    if base is not None:
        base_license = base.provenance.get("license", "see the base model's source")
        base_lines = (
            f"- `{base.ref}`: {base.provenance.get('description', base.architecture)}\n"
            f"- License: {base_license}"
        )
    else:
        base_lines = _deleted(lineage.base, lineage.base_digest)
    data_name = dataset.name if dataset is not None else lineage.dataset.partition("@")[0]
    base_name = base.name if base is not None else lineage.base.partition("@")[0]
    return [
        "## Intended use",
        f"{version.task.capitalize()} on texts similar to `{data_name}`. The model "
        f"inherits the language coverage and biases of its base model ({base_name}) and of its "
        "training data; check the evaluation reports before using it on other populations.",
        "## Training data",
        _data_section(dataset)
        if dataset is not None
        else _deleted(lineage.dataset, lineage.dataset_digest),
        "## Base model",
        base_lines,
        "## Training configuration",
        _table(("option", "value"), [(k, v) for k, v in sorted(config.items()) if k != "options"]),
    ]


def render_card(
    version: ModelVersion,
    *,
    dataset: DatasetVersion | None,
    base: BaseModel | None,
    attachments: list[Attachment],
) -> str:
    """The Markdown model card of ``version`` (``dataset``/``base`` ``None``: imported, or
    deleted after training when the lineage names them)."""
    lineage = version.lineage
    config = lineage.config
    aliases = ", ".join(version.aliases) or "none"
    cli, python = _USAGE.get(version.task, _DEFAULT_USAGE)
    trained = bool(lineage.dataset)
    origin = _trained_sections(version, dataset, base) if trained else _imported_sections(version)
    if base is not None:
        base_cell = f"{base.ref} ({base.architecture}, {base.num_parameters:,} params)"
    else:
        base_cell = f"{lineage.base} (deleted)" if lineage.base else "—"
    if dataset is not None:
        dataset_cell = dataset.ref
    else:
        dataset_cell = f"{lineage.dataset} (deleted)" if trained else "— (imported)"
    sections = [
        f"# Model card: {version.name} v{version.version}",
        _table(
            ("field", "value"),
            [
                ("task", version.task),
                ("mode", config.get("mode", "—" if trained else "imported")),
                ("base model", base_cell),
                ("dataset", dataset_cell),
                ("aliases", aliases),
                ("created", version.created_at.isoformat(timespec="seconds")),
                ("bundle digest", f"{version.digest[:16]}…"),
                ("project", version.project),
            ],
        ),
        *origin,
        *(
            ["## Distilled from", distilled]
            if (distilled := _distillation_section(version))
            else []
        ),
        "## Metrics",
        _metrics_section(version),
        *(["## Generation samples", samples] if (samples := _samples_section(version)) else []),
        "## Privacy",
        _privacy_section(version),
        "## Evaluation",
        _evaluation_section(version, attachments),
        "## Attached reports",
        _attachments_section(attachments),
        "## How to use",
        "```bash\n"
        f"{cli.replace('NAME', version.ref)}\n"
        "```\n\n"
        "```python\n"
        "import aimass\n"
        f'model = aimass.load("{version.name}@{version.version}")\n'
        f"{python}\n"
        "```",
        "## Lineage",
        f"- Job: `{lineage.job_id}`\n- Code: {lineage.code_version}\n"
        f"- Dataset digest: `{lineage.dataset_digest}`\n- Base digest: `{lineage.base_digest}`",
    ]
    return "\n\n".join(sections) + "\n"
