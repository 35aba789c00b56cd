"""The distillation options of a training config: defaults and checks.

Kept apart from ``config.py`` so that each stays a module a reader can hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

from aimass.errors import InvalidArgument
from aimass.refs import parse_ref

if TYPE_CHECKING:
    from aimass.training.config import TrainConfig

__all__ = [
    "DISTILL_DEFAULTS",
    "DISTILL_FIELDS",
    "LM_POSITIONS",
    "PIPELINE_TEACHER",
    "SEQUENCE_LEVEL",
    "number",
    "pipeline_teacher",
    "validate_distillation",
    "whole",
]

# Distillation defaults (Hinton et al. use T in 1..20; 2 suits two or three classes).
DISTILL_DEFAULTS: dict[str, float] = {"temperature": 2.0, "distill_alpha": 0.5}
DISTILL_FIELDS = ("temperature", "distill_alpha", "unlabelled", "match_hidden")
#: The language-model tasks that distil position by position, and what a position
#: predicts: the next token (causal), its own hidden token (masked), the target token
#: at it (seq2seq's decoder). Their teachers run beside the student on every batch.
LM_POSITIONS = {"causal-lm": "next", "masked-lm": "masked", "seq2seq": "target"}
#: The widest beam the teacher decodes with in sequence-level distillation.
MAX_SEQUENCE_BEAMS = 16
#: The tasks whose teacher can write the student's targets (sequence-level distillation).
SEQUENCE_LEVEL = ("seq2seq", "causal-lm")


def number(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is an int or a float (not a bool): a number from JSON."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def whole(value: Any) -> TypeGuard[int]:
    """An int that is not a bool (JSON ``true`` is not a step count)."""
    return isinstance(value, int) and not isinstance(value, bool)


PIPELINE_TEACHER = "pipeline:"
"""Prefix of a ``teacher`` that is a pipeline version: ``pipeline:NAME@REF``."""


def pipeline_teacher(teacher: str | None) -> str | None:
    """``NAME@REF`` of a ``pipeline:NAME@REF`` teacher; ``None`` for a model teacher."""
    if isinstance(teacher, str) and teacher.startswith(PIPELINE_TEACHER):
        return teacher.removeprefix(PIPELINE_TEACHER)
    return None


def _check_ref(text: Any, *, kind: str, field: str) -> None:
    """A ``NAME`` / ``NAME@REF`` string, checked by the one ref parser."""
    if not isinstance(text, str):
        raise InvalidArgument(f"{field} must be NAME or NAME@VERSION, got {text!r}", field=field)
    parse_ref(text, kind=kind)


def validate_distillation(config: TrainConfig) -> None:
    """Check the distillation options of a resolved config (``teacher`` and friends)."""
    if config.teacher is None:
        unused = [n for n in DISTILL_FIELDS if getattr(config, n) is not None]
        unused += ["sequence_beams"] if config.sequence_beams else []
        if unused:
            flags = ", ".join("--" + n.replace("_", "-") for n in unused)
            raise InvalidArgument(
                f"{flags} set without a teacher: they are options of distillation; add "
                "--teacher NAME@VERSION (or use 'aimass distill')",
                field=unused[0],
            )
        return
    pipeline = pipeline_teacher(config.teacher)
    if pipeline is not None:
        _check_ref(pipeline, kind="teacher pipeline", field="teacher")
        if config.task != "classification":
            raise InvalidArgument(
                f"teacher {config.teacher}: a pipeline answers with class labels, so it "
                f"teaches classifiers only, not {config.task}; distil from a registered "
                f"{config.task} model (--teacher NAME@VERSION)",
                field="teacher",
            )
    else:
        _check_ref(config.teacher, kind="teacher model", field="teacher")
    if config.unlabelled is not None:
        _check_ref(config.unlabelled, kind="unlabelled dataset", field="unlabelled")
    temperature, alpha = config.temperature, config.distill_alpha
    if config.task == "regression" and temperature is not None:
        raise InvalidArgument(
            f"distillation option temperature={temperature!r} does not apply to "
            "regression: the student learns the teacher's values (squared error), "
            "not softened probabilities; drop --temperature",
            field="temperature",
        )
    checks = [
        (
            "temperature",
            config.task == "regression" or (number(temperature) and 0 < temperature <= 100),
            "in (0, 100]",
        ),
        ("distill_alpha", number(alpha) and 0 <= alpha <= 1, "in [0, 1]"),
        (
            "match_hidden",
            config.match_hidden is None
            or (number(config.match_hidden) and 0 <= config.match_hidden <= 10_000),
            "in [0, 10000]",
        ),
    ]
    for name, ok, rule in checks:
        if not ok:
            raise InvalidArgument(
                f"distillation option {name}={getattr(config, name)!r} must be a number "
                f"{rule} (defaults: temperature 2.0, distill_alpha 0.5)",
                field=name,
            )
    if config.match_hidden and pipeline is not None:
        raise InvalidArgument(
            f"--match-hidden with teacher {config.teacher}: a pipeline has no hidden "
            "layers of its own to match; distil from one of its models, or drop "
            "--match-hidden",
            field="match_hidden",
        )
    if config.match_hidden and config.task in ("token-classification", *LM_POSITIONS):
        raise InvalidArgument(
            "--match-hidden matches pooled sentence states of classifiers and regressors; "
            f"a {config.task} student learns the teacher's distribution position by "
            "position without it: drop --match-hidden",
            field="match_hidden",
        )
    if config.match_hidden and config.mode != "finetune":
        raise InvalidArgument(
            f"--match-hidden needs --mode finetune: in {config.mode!r} mode the student's "
            "layers are frozen, so there is nothing to pull towards the teacher's; add "
            "--mode finetune or drop --match-hidden",
            field="match_hidden",
        )
    _validate_sequence_level(config)
    if config.workers > 1:
        # The soft targets are computed once in the job's process; the Ray workers
        # read the split themselves and would train on the labels alone.
        raise InvalidArgument(
            f"--workers {config.workers} cannot be combined with distillation (--teacher) "
            "yet; drop --workers",
            field="workers",
        )


def _validate_sequence_level(config: TrainConfig) -> None:
    """``sequence_beams``: a whole number of beams, for a seq2seq or causal-LM student."""
    beams = config.sequence_beams
    if not whole(beams) or not 0 <= beams <= MAX_SEQUENCE_BEAMS:
        raise InvalidArgument(
            f"--sequence-beams {beams!r}: use the teacher's beam width for sequence-level "
            f"distillation, 1 (greedy) to {MAX_SEQUENCE_BEAMS}, or 0 to leave it off",
            field="sequence_beams",
        )
    if beams and config.task not in SEQUENCE_LEVEL:
        raise InvalidArgument(
            f"--sequence-beams {beams} is sequence-level distillation of a seq2seq model or "
            f"a causal LM on prompt/response pairs (the teacher's outputs become the "
            f"targets), not of task {config.task!r}; drop --sequence-beams",
            field="sequence_beams",
        )
