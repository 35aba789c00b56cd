"""Tokenizers trained on a dataset, and bases built from scratch around them.

**How a tokenizer is stored and referenced.** ``aimass tokenizers train`` writes
a *tokenizer bundle* (``kind`` and ``family`` ``tokenizer`` in ``aimass.json``;
files ``tokenizer.json`` + ``tokenizer_config.json``, verified like any bundle)
and registers it in the base-model registry with family ``tokenizer`` and
architecture ``wordpiece`` or ``bpe``, so it is versioned and content-addressed
like a base: ``--tokenizer NAME`` or ``NAME@VERSION`` refers to it. Its
provenance records the dataset version it was trained on, the settings and its
coverage of the held-out split (unknown-token rate, tokens per character).

``aimass bases scratch`` builds a base from a size preset of a registered
architecture and a tokenizer: randomly initialised (seeded) weights plus a copy
of the tokenizer files, registered as an ordinary base whose provenance names
the tokenizer version and digest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aimass.artifacts.bundle import BundleWriter, is_allowed_file
from aimass.artifacts.storage import ArtifactStore
from aimass.data.tables import SplitData, read_split
from aimass.entities import BaseModel, DatasetVersion
from aimass.errors import InvalidArgument, NotFound
from aimass.models.hf import load_tokenizer, num_parameters
from aimass.refs import parse_ref, validate_name
from aimass.store import Store

__all__ = ["create_scratch_base", "get_tokenizer", "train_tokenizer_base"]

TOKENIZER_FAMILY = "tokenizer"


def _corpus(split: SplitData) -> list[str]:
    """The texts a tokenizer learns from: inputs, and targets of pair datasets."""
    if split.tokens is not None:
        return [" ".join(tokens) for tokens in split.tokens]
    return list(split.texts) + list(split.targets or [])


def _publish(
    writer: BundleWriter,
    *,
    store: Store,
    artifacts: ArtifactStore,
    project: str,
    name: str,
    kind: str,
    architecture: str,
    family: str,
    num_parameters: int,
    provenance: dict[str, Any],
) -> tuple[BaseModel, bool]:
    """Finish the staged bundle, publish it, then register it (the last step)."""
    done = writer.finish(kind=kind, architecture=architecture, family=family, provenance=provenance)
    uri = artifacts.publish(writer.directory, f"bundles/{done.digest}")
    return store.bases.create_version(
        project,
        name,
        digest=done.digest,
        uri=uri,
        architecture=architecture,
        family=family,
        num_parameters=num_parameters,
        provenance=provenance,
    )


def train_tokenizer_base(
    dataset: DatasetVersion,
    *,
    name: str,
    kind: str,
    vocab_size: int,
    min_frequency: int,
    store: Store,
    artifacts: ArtifactStore,
    project: str,
) -> tuple[BaseModel, bool]:
    """Train a tokenizer on the training split of ``dataset`` and register it."""
    from aimass.models.tokenizer import save_tokenizer, tokenizer_stats, train_tokenizer

    validate_name(name, kind="tokenizer")
    path = artifacts.resolve(dataset.uri)
    train, held_out = _corpus(read_split(path, "train")), _corpus(read_split(path, "validation"))
    tokenizer = train_tokenizer(
        train, kind=kind, vocab_size=vocab_size, min_frequency=min_frequency
    )
    stats = tokenizer_stats(tokenizer, held_out or train[:1000])
    provenance = {
        "source": "trained",
        "dataset": dataset.ref,
        "dataset_digest": dataset.digest,
        "kind": kind,
        "vocab_size_requested": vocab_size,
        "vocab_size": len(tokenizer),
        "min_frequency": min_frequency,
        "held_out": "validation" if held_out else "train (no validation rows)",
        "coverage": stats,
        "description": f"{kind} tokenizer trained on {dataset.ref} ({len(tokenizer):,} entries)",
    }
    with artifacts.staging() as stage:
        writer = BundleWriter(stage / "bundle")
        for file in save_tokenizer(tokenizer, stage / "hf"):
            writer.add_file(file.name, file)
        return _publish(
            writer,
            store=store,
            artifacts=artifacts,
            project=project,
            name=name,
            kind="tokenizer",
            architecture=kind,
            family=TOKENIZER_FAMILY,
            num_parameters=0,
            provenance=provenance,
        )


def get_tokenizer(store: Store, project: str, ref: str) -> BaseModel:
    """The registered tokenizer ``NAME`` or ``NAME@VERSION``, with errors that say what to do."""
    parsed = parse_ref(ref, kind="tokenizer")
    if parsed.alias not in (None, "latest"):
        raise InvalidArgument(f"tokenizer reference {ref!r}: use NAME or NAME@VERSION")
    try:
        found = store.bases.get(project, parsed.name, parsed.version)
    except NotFound as exc:
        raise NotFound(
            f"tokenizer {ref!r} not found in project {project!r} (see 'aimass tokenizers list'); "
            "train one with "
            f"'aimass tokenizers train --dataset NAME --kind wordpiece --vocab-size 8000 "
            f"--name {parsed.name}'",
            resource="tokenizer",
            name=parsed.name,
        ) from exc
    if found.family != TOKENIZER_FAMILY:
        raise InvalidArgument(
            f"{found.ref} is a {found.family} model, not a tokenizer; see 'aimass tokenizers list'"
        )
    return found


def create_scratch_base(
    *,
    name: str,
    architecture: str,
    preset: str,
    tokenizer: str,
    seed: int,
    overrides: dict[str, Any],
    store: Store,
    artifacts: ArtifactStore,
    project: str,
    max_parameters: int | None = None,
) -> tuple[BaseModel, bool]:
    """Randomly initialised weights of a preset size around a registered tokenizer.

    ``max_parameters`` refuses a model larger than that before its weights exist.
    """
    from aimass.models.scratch import build_scratch, get_architecture

    validate_name(name, kind="base model")
    config = get_architecture(architecture).preset(preset, **overrides)
    tok_base = get_tokenizer(store, project, tokenizer)
    tok_dir = artifacts.resolve(tok_base.uri)
    model = build_scratch(config, load_tokenizer(tok_dir), seed=seed, max_parameters=max_parameters)
    provenance = {
        "source": "scratch",
        "architecture": architecture,
        "preset": preset,
        "config": config.to_dict(),
        "seed": seed,
        "tokenizer": tok_base.ref,
        "tokenizer_digest": tok_base.digest,
        "description": f"{config.description}, preset {preset}, randomly initialised (seed "
        f"{seed}), tokenizer {tok_base.ref}",
        "license": "weights created by aimass (no third-party weights)",
    }
    with artifacts.staging() as stage:
        model.save_pretrained(str(stage / "hf"), safe_serialization=True)
        writer = BundleWriter(stage / "bundle")
        for path in sorted([*(stage / "hf").iterdir(), *Path(tok_dir).iterdir()]):
            if is_allowed_file(path.name) and path.is_file():
                writer.add_file(path.name, path)
        return _publish(
            writer,
            store=store,
            artifacts=artifacts,
            project=project,
            name=name,
            kind="base",
            architecture=str(model.config.model_type),
            family=config.family,
            num_parameters=num_parameters(model),
            provenance=provenance,
        )
