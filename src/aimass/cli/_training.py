"""What ``aimass train`` and ``aimass distill`` share: option types, how a finished
version is printed, and the parsers of ``--layers`` and ``--option``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aimass.cli._common import console, fmt_metric
from aimass.errors import InvalidArgument
from aimass.schemas import ModelVersionOut

__all__ = [
    "AliasOpt",
    "BatchSizeOpt",
    "EpochsOpt",
    "EpsilonOpt",
    "EvalStepsOpt",
    "LrOpt",
    "MaxLengthOpt",
    "PatienceOpt",
    "ReuseOpt",
    "SeedOpt",
    "given",
    "parse_layers",
    "parse_options",
    "print_version",
]


def print_version(version: ModelVersionOut) -> None:
    """A registered version's ref, aliases, scores and training time."""
    console.print(
        f"[bold green]registered {version.ref}[/] aliases: {', '.join(version.aliases) or '-'}"
    )
    from aimass.training.tasks import headline_metric

    # The loss is noise next to accuracy, but it is the headline of language models.
    hidden = "" if headline_metric(version.task) == "loss" else "loss"
    for split in ("validation", "test"):
        metrics = version.metrics.get(split) or {}
        shown = {k: v for k, v in metrics.items() if isinstance(v, float) and k != hidden}
        console.print(f"  {split}: " + "  ".join(f"{k} {fmt_metric(v)}" for k, v in shown.items()))
    training = version.metrics.get("training") or {}
    workers = f", {training['workers']} workers" if training.get("workers") else ""
    console.print(
        f"  trained in {training.get('seconds', '?')} s ({training.get('steps', '?')} steps"
        f"{workers})"
    )


EpochsOpt = Annotated[int | None, typer.Option(help="Epochs (default per mode).")]
LrOpt = Annotated[float | None, typer.Option(help="Peak learning rate (default per mode).")]
BatchSizeOpt = Annotated[int | None, typer.Option(help="Batch size (default per mode).")]
MaxLengthOpt = Annotated[int, typer.Option(help="Longest input in tokens.")]
SeedOpt = Annotated[int, typer.Option(help="Seed: same seed and inputs, same model.")]
AliasOpt = Annotated[str | None, typer.Option(help="Alias to point at the new version.")]
ReuseOpt = Annotated[
    bool, typer.Option(help="Reuse a version trained from identical inputs, if any.")
]
EpsilonOpt = Annotated[
    float | None, typer.Option(help="DP: privacy budget epsilon (e.g. 1, 3, 8).")
]
EvalStepsOpt = Annotated[
    int | None,
    typer.Option(
        help="Also evaluate every N steps within an epoch and keep the best weights "
        "(default 0: after each epoch only)."
    ),
]
PatienceOpt = Annotated[
    int | None,
    typer.Option(
        help="Stop after N evaluations without improvement (0 = never; default 5 in "
        "features mode, 0 in finetune)."
    ),
]


def given(**options: Any) -> dict[str, Any]:
    """The options that were given (not ``None``)."""
    return {k: v for k, v in options.items() if v is not None}


def parse_layers(text: str | None) -> list[int] | None:
    """``'-1,-4'`` → ``[-1, -4]`` (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise InvalidArgument(
            f"--layers {text!r}: use comma-separated layer indices, e.g. '6' or '-1,-4'"
        ) from None


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → a dict; values are JSON when they parse (true, 0.2), else text."""
    import json

    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"--option {pair!r}: use KEY=VALUE, e.g. whole_word_mask=true")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed
