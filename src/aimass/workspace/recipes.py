"""End-to-end recipes: several workspace steps behind one call (and one CLI command).

``train_chinese_ner`` turns the packaged People's Daily corpus into a Chinese
NER model (PER, LOC, ORG) registered under an alias. Every step reuses what
exists already (identical inputs give the identical dataset, tokenizer, base
and model), so running it again is cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aimass.entities import ModelVersion
from aimass.store import DEFAULT_PROJECT

if TYPE_CHECKING:
    from aimass.training.callbacks import Callback
    from aimass.workspace import Workspace

__all__ = ["train_chinese_ner"]

SAMPLE = "peoples-daily-ner"


def train_chinese_ner(
    ws: Workspace,
    *,
    name: str = "zh-ner",
    base: str | None = None,
    preset: str = "mini",
    vocab_size: int = 6000,
    pretrain_epochs: int = 0,
    epochs: int = 3,
    max_train_rows: int | None = None,
    alias: str = "production",
    project: str = DEFAULT_PROJECT,
    callbacks: Sequence[Callback] = (),
) -> ModelVersion:
    """People's Daily 1998 → a registered Chinese NER model at ``name@alias``.

    Without ``base``, a WordPiece tokenizer is trained on the corpus (each Chinese
    character a token) and a BERT of ``preset`` size is built from scratch —
    optionally pre-trained with masked LM on the same text for ``pretrain_epochs``
    — then fine-tuned for token classification. With ``base`` (a registered or
    packaged encoder) only the fine-tuning runs.
    """
    from aimass.jobs.bases import list_packaged_bases
    from aimass.jobs.train import TrainSpec

    dataset, _ = ws.import_sample(SAMPLE, project=project)
    if base is None:
        tokenizer, _ = ws.train_tokenizer(
            dataset.ref, name=f"{name}-tok", vocab_size=vocab_size, project=project
        )
        scratch, _ = ws.create_scratch_base(
            f"{name}-{preset}",
            architecture="bert",
            tokenizer=tokenizer.ref,
            preset=preset,
            project=project,
        )
        base = scratch.ref
        if pretrain_epochs:
            mlm = _train(
                ws,
                TrainSpec(
                    dataset=dataset.ref,
                    base=base,
                    model=f"{name}-mlm",
                    config=_config("masked-lm", pretrain_epochs, max_train_rows),
                ),
                project,
                callbacks,
            )
            base = ws.base_from_model(mlm.ref, name=f"{name}-pretrained", project=project)[0].ref
    elif base in {p.name for p in list_packaged_bases()}:
        base = ws.import_base(base, project=project)[0].ref
    spec = TrainSpec(
        dataset=dataset.ref,
        base=base,
        model=name,
        config=_config("token-classification", epochs, max_train_rows),
        alias=alias,
    )
    return _train(ws, spec, project, callbacks)


def _config(task: str, epochs: int, max_train_rows: int | None) -> dict[str, Any]:
    config: dict[str, Any] = {"task": task, "epochs": epochs}
    if task == "token-classification":
        config["lr"] = 1e-3  # randomly initialised or lightly pre-trained encoders
    if max_train_rows is not None:
        config["max_train_rows"] = max_train_rows
    return config


def _train(ws: Workspace, spec: Any, project: str, callbacks: Sequence[Callback]) -> ModelVersion:
    found = ws.find_trained(spec, project=project)
    if found is None:
        return ws.train(spec, project=project, callbacks=callbacks)
    if spec.alias:
        return ws.set_alias(spec.model, found.version, spec.alias, project=project)
    return found
