"""Register a Hugging Face sequence classifier directory as a model version.

``aimass models import DIR --name NAME`` takes a directory that a
``*ForSequenceClassification`` was saved to (``config.json`` with ``id2label``,
safetensors weights, a tokenizer) and registers it as a version that aimass
serves, explains, evaluates and exports like one it trained. Nothing is
retrained: the Hugging Face head *is* an aimass head, read the same way:

* an encoder whose classifier is one linear layer on the pooler output (BERT
  and its kin): pooling ``pooler``;
* a decoder whose ``score`` layer reads the last real token of the final layer
  (Llama, Qwen2, ...): pooling ``last``.

Weights are keyed alike (``bert.…`` + ``classifier.…``, ``model.…`` + ``score.…``),
so the bundle's weights are the directory's. Any other head (RoBERTa's two-layer
``classifier.dense``/``out_proj``, DistilBERT's ``pre_classifier``) is refused,
naming the class, rather than served with outputs that differ from its own.
A directory with only pickle weights is refused as ``bases import`` refuses it.

The version's lineage says it was imported: no dataset, no base, no job; its
``config`` records the source path and class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass._version import __version__
from aimass.artifacts.bundle import BundleWriter, file_sha256, is_allowed_file
from aimass.artifacts.storage import ArtifactStore
from aimass.entities import Lineage, ModelVersion
from aimass.errors import InvalidArgument, NotFound, UnsupportedModel
from aimass.jobs.bases import default_name
from aimass.models.hf import family_of, load_pretrained, load_tokenizer, read_config
from aimass.refs import validate_name
from aimass.store import Store
from aimass.store.registry import validate_alias

if TYPE_CHECKING:
    from aimass.models.sequence import SequenceModel

__all__ = ["import_classifier"]

# What each family's Hugging Face classifier pools, in aimass's terms.
_POOLING = {"encoder": "pooler", "decoder": "last"}
MAX_LENGTH = 512


def _labels(config: Any) -> tuple[str, list[str]]:
    """The task and class names (in output order) a classifier config declares."""
    num = int(config.num_labels)
    if config.problem_type == "regression" or num == 1:
        return "regression", []
    if config.problem_type == "multi_label_classification":
        raise UnsupportedModel(
            "multi-label classifiers (problem_type multi_label_classification) are not "
            "served by aimass: its classification is single-label (softmax)"
        )
    id2label: Mapping[Any, Any] = config.id2label or {}
    labels = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(num)]
    if len(set(labels)) != len(labels):
        raise InvalidArgument(f"id2label names a class twice: {labels}; give each class a name")
    return "classification", labels


def _check_classifier(directory: Path, config: Any) -> str:
    """The family of a classifier directory; refuses anything else, naming the fix."""
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        found = ", ".join(architectures) or "none"
        raise UnsupportedModel(
            f"{directory} is not a sequence classifier (config.json architectures: {found}); "
            "import a bare encoder or decoder as a base with 'aimass bases import' and train "
            "a head on it",
            path=str(directory),
        )
    family = family_of(config)
    if family not in _POOLING:
        raise UnsupportedModel(
            f"{family} classifiers cannot be imported as models; families: encoder, decoder",
            family=family,
        )
    return family


def _head_mismatch(architecture: str, family: str, detail: str) -> UnsupportedModel:
    read = "one linear layer on the pooler output" if family == "encoder" else "the last token"
    return UnsupportedModel(
        f"{architecture}'s head is not one aimass serves ({detail}); aimass imports "
        f"{family} classifiers whose head is {read}, like BertForSequenceClassification "
        "(encoders) or LlamaForSequenceClassification (decoders). Import its encoder with "
        "'aimass bases import' and train a head instead",
        architecture=architecture,
    )


def _sequence_model(
    directory: Path, family: str, task: str, labels: list[str]
) -> tuple[SequenceModel, str]:
    """The directory's classifier as an aimass :class:`SequenceModel` and its HF class name."""
    from aimass.models.sequence import SequenceHeadConfig, SequenceModel

    # With output_loading_info the loader returns (model, {missing_keys: ...}).
    loaded: Any = load_pretrained(directory, family="sequence", output_loading_info=True)
    hf_model, info = loaded
    architecture = type(hf_model).__name__
    missing = [k for k in info.get("missing_keys", ()) if not k.endswith("position_ids")]
    if missing:
        raise UnsupportedModel(
            f"{directory} lacks weights of {architecture}: {sorted(missing)[:5]}; a classifier "
            "directory holds its head's weights too",
            path=str(directory),
        )
    head = SequenceHeadConfig(
        task=task,
        num_outputs=int(hf_model.config.num_labels),
        labels=labels,
        pooling=_POOLING[family],
        family=family,
    )
    try:
        model = SequenceModel(hf_model.base_model, head)
        model.load_export_state_dict(hf_model.state_dict())
    except (UnsupportedModel, RuntimeError) as exc:
        raise _head_mismatch(architecture, family, str(exc)[:200]) from exc
    return model.eval(), architecture


def _existing(store: Store, project: str, name: str, digest: str) -> ModelVersion | None:
    try:
        versions = store.registry.list_versions(project, name)
    except NotFound:
        return None
    return next((v for v in versions if v.digest == digest), None)


def import_classifier(
    source: Path,
    *,
    store: Store,
    artifacts: ArtifactStore,
    project: str,
    name: str | None = None,
    alias: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Register the classifier in ``source`` as a version of ``name``; ``(version, created)``.

    Importing the same weights again returns the version that holds them.

    Raises:
        UnsupportedModel: not a sequence classifier, pickle-only weights, or a head
            aimass does not serve as it is.
        InvalidArgument: a bad name, or a directory that does not exist.
    """
    directory = Path(source).expanduser()
    if not directory.is_dir():
        raise InvalidArgument(f"{source} is not a directory holding a Hugging Face classifier")
    name = name or default_name(directory, "model")
    validate_name(name, kind="model")
    if alias:
        validate_alias(alias)  # before anything is registered, not after
    config = read_config(directory)
    family = _check_classifier(directory, config)
    task, labels = _labels(config)
    model, architecture = _sequence_model(directory, family, task, labels)
    tokenizer = load_tokenizer(directory)
    max_length = min(int(model.encoder.config.max_position_embeddings or MAX_LENGTH), MAX_LENGTH)
    provenance: dict[str, Any] = {
        "source": "import",
        "path": str(directory.resolve()),
        "hf_architecture": architecture,
    }
    if (directory / "model.safetensors").is_file():
        provenance["source_sha256"] = file_sha256(directory / "model.safetensors")
    hf_config = json.loads(config.to_json_string(use_diff=False))
    hf_config.update(model.hf_config_updates(pad_token_id=tokenizer.pad_token_id or 0))
    with artifacts.staging() as scratch:
        tokenizer.save_pretrained(str(scratch / "tokenizer"))
        writer = BundleWriter(scratch / "bundle")
        writer.add_json("config.json", hf_config)
        writer.add_tensors("model.safetensors", model.export_state_dict())
        for path in sorted((scratch / "tokenizer").iterdir()):
            if is_allowed_file(path.name) and path.name != "config.json":
                writer.add_file(path.name, path)
        manifest = writer.finish(
            kind="model",
            architecture=str(config.model_type),
            family=family,
            task=task,
            task_config={**model.head_config.to_dict(), "max_length": max_length},
            provenance=provenance,
        )
        found = _existing(store, project, name, manifest.digest)
        if found is not None:
            return _with_alias(store, found, alias), False
        uri = artifacts.publish(scratch / "bundle", f"bundles/{manifest.digest}")
    version = store.registry.create_version(
        project,
        name,
        task=task,
        digest=manifest.digest,
        uri=uri,
        metrics={},
        lineage=Lineage(
            dataset="",
            dataset_digest="",
            base="",
            base_digest="",
            job_id="",
            task=task,
            config=provenance,
            code_version=f"aimass {__version__}",
        ),
        config_digest=manifest.digest,
        description=f"imported from a Hugging Face {architecture} directory",
    )
    return _with_alias(store, version, alias), True


def _with_alias(store: Store, version: ModelVersion, alias: str | None) -> ModelVersion:
    if not alias:
        return version
    return store.registry.set_alias(version.project, version.name, alias, version.version)
