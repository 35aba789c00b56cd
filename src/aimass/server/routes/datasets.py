"""Datasets (upload, import from an allowed path, samples) and base models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from aimass.data.importer import ImportOptions
from aimass.errors import InvalidArgument
from aimass.schemas import (
    BaseFromModel,
    BaseImport,
    BaseModelOut,
    BaseScratch,
    BaseShrink,
    DatasetImport,
    DatasetUpload,
    DatasetVersionOut,
    SampleImport,
    TokenizerTrain,
)
from aimass.server.deps import DataWriteProject, ReadProject, WorkspaceDep, project_access
from aimass.workspace.paths import allowed_path
from aimass.workspace.privacy import DeidentifyOptions

router = APIRouter(prefix="/v1/projects/{project}", tags=["datasets"])
CREATED = status.HTTP_201_CREATED
BasesWriteProject = Annotated[str, Depends(project_access("models:write"))]


def _options(body: DatasetUpload | DatasetImport) -> ImportOptions:
    return ImportOptions.from_fields(body.model_dump())


def _deidentify(body: DatasetUpload | DatasetImport | SampleImport) -> DeidentifyOptions | None:
    return DeidentifyOptions.from_fields(body.deidentify.model_dump() if body.deidentify else None)


def _created(result: tuple[Any, bool]) -> DatasetVersionOut:
    version, created = result
    return DatasetVersionOut.from_entity(version).model_copy(update={"created": created})


@router.get("/datasets", name="datasets.list")
def list_datasets(project: ReadProject, ws: WorkspaceDep) -> list[DatasetVersionOut]:
    """Latest version of every dataset."""
    return [DatasetVersionOut.from_entity(v) for v in ws.datasets.list(project=project)]


@router.post("/datasets", name="datasets.upload", status_code=CREATED)
def upload_dataset(
    body: DatasetUpload, project: DataWriteProject, ws: WorkspaceDep
) -> DatasetVersionOut:
    """Import a dataset sent in the body (every row validated; nothing stored on error)."""
    if (body.content is None) == (body.content_base64 is None):
        raise InvalidArgument("give exactly one of 'content' (JSONL/CSV text) or 'content_base64'")
    if body.format == "parquet" and body.content_base64 is None:
        raise InvalidArgument("Parquet is binary: send it as 'content_base64'")
    return _created(
        ws.datasets.import_content(
            body.content if body.content is not None else str(body.content_base64),
            name=body.name,
            fmt=body.format,
            project=project,
            options=_options(body),
            base64_encoded=body.content_base64 is not None,
            deidentify=_deidentify(body),
        )
    )


@router.post("/datasets:import", name="datasets.import_path", status_code=CREATED)
def import_dataset(
    body: DatasetImport, project: DataWriteProject, ws: WorkspaceDep
) -> DatasetVersionOut:
    """Import a file inside the server's AIMASS_IMPORT_DIRS (no other path is readable)."""
    path = allowed_path(ws.settings, body.path)
    return _created(
        ws.datasets.import_file(
            path,
            name=body.name,
            project=project,
            fmt=body.format,
            options=_options(body),
            deidentify=_deidentify(body),
        )
    )


@router.post("/datasets:import-sample", name="datasets.import_sample", status_code=CREATED)
def import_sample(
    body: SampleImport, project: DataWriteProject, ws: WorkspaceDep
) -> DatasetVersionOut:
    """Import a packaged sample dataset."""
    return _created(
        ws.datasets.import_sample(
            body.sample,
            name=body.name,
            project=project,
            seed=body.seed,
            deidentify=_deidentify(body),
        )
    )


@router.get("/datasets/{name}", name="datasets.get")
def get_dataset(name: str, project: ReadProject, ws: WorkspaceDep) -> DatasetVersionOut:
    """The latest version of a dataset."""
    return DatasetVersionOut.from_entity(ws.datasets.get(name, project=project))


@router.get("/datasets/{name}/versions", name="datasets.versions")
def dataset_versions(name: str, project: ReadProject, ws: WorkspaceDep) -> list[DatasetVersionOut]:
    """Every version, oldest first."""
    return [DatasetVersionOut.from_entity(v) for v in ws.datasets.versions(name, project=project)]


@router.get("/datasets/{name}/versions/{version}", name="datasets.version")
def dataset_version(
    name: str, version: int, project: ReadProject, ws: WorkspaceDep
) -> DatasetVersionOut:
    """One version."""
    return DatasetVersionOut.from_entity(ws.datasets.get(f"{name}@{version}", project=project))


@router.delete("/datasets/{name}/versions/{version}", name="datasets.delete_version")
def delete_dataset_version(
    name: str, version: int, project: DataWriteProject, ws: WorkspaceDep
) -> DatasetVersionOut:
    """Delete a dataset version (409 while a queued or running job reads it); its file
    goes with ``aimass gc``. Models trained on it keep its name and digest in their
    lineage."""
    return DatasetVersionOut.from_entity(ws.datasets.delete_version(name, version, project=project))


@router.get("/bases", name="bases.list", tags=["bases"])
def list_bases(project: ReadProject, ws: WorkspaceDep) -> list[BaseModelOut]:
    """Latest version of every base model."""
    return [BaseModelOut.from_entity(b) for b in ws.bases.list(project=project)]


@router.post("/bases", name="bases.import", status_code=CREATED, tags=["bases"])
def import_base(body: BaseImport, project: BasesWriteProject, ws: WorkspaceDep) -> BaseModelOut:
    """Import a packaged base by name, or a local Hugging Face directory in AIMASS_IMPORT_DIRS.

    Never a URL: nothing is downloaded, and only safetensors weights are read.
    """
    if (body.source is None) == (body.path is None):
        raise InvalidArgument("give exactly one of 'source' (a packaged base) or 'path'")
    if body.source is not None:
        from aimass.jobs.bases import list_packaged_bases

        known = [p.name for p in list_packaged_bases()]
        if body.source not in known:
            raise InvalidArgument(
                f"unknown packaged base {body.source!r}; packaged: {', '.join(known)}"
            )
        source = body.source
    else:
        source = str(allowed_path(ws.settings, str(body.path)))
    base, created = ws.bases.import_(source, name=body.name, project=project)
    return BaseModelOut.from_entity(base).model_copy(update={"created": created})


@router.post("/bases:from-model", name="bases.from_model", status_code=CREATED, tags=["bases"])
def base_from_model(
    body: BaseFromModel, project: BasesWriteProject, ws: WorkspaceDep
) -> BaseModelOut:
    """Register a trained model version as a base, its task head dropped.

    A masked-LM pre-trained encoder becomes a base to fine-tune on another task; the
    license terms of the version's own base carry over.
    """
    base, created = ws.bases.from_model(body.model, name=body.name, project=project)
    return BaseModelOut.from_entity(base).model_copy(update={"created": created})


@router.post("/bases:shrink", name="bases.shrink", status_code=CREATED, tags=["bases"])
def shrink_base(body: BaseShrink, project: BasesWriteProject, ws: WorkspaceDep) -> BaseModelOut:
    """Cut a base to fewer layers (and feed-forward neurons): a distilled student's start."""
    base, created = ws.bases.shrink(
        body.base,
        name=body.name,
        layers=body.layers,
        pick=body.pick,
        intermediate_size=body.intermediate_size,
        project=project,
    )
    return BaseModelOut.from_entity(base).model_copy(update={"created": created})


@router.post(
    "/bases:train-tokenizer", name="bases.train_tokenizer", status_code=CREATED, tags=["bases"]
)
def train_tokenizer(
    body: TokenizerTrain, project: BasesWriteProject, ws: WorkspaceDep
) -> BaseModelOut:
    """Train a tokenizer on a dataset's training split; register it (family ``tokenizer``).

    The held-out coverage (unknown-token rate, tokens per character) is in its provenance.
    """
    tokenizer, created = ws.bases.train_tokenizer(
        body.dataset,
        name=body.name,
        kind=body.kind,
        vocab_size=body.vocab_size,
        min_frequency=body.min_frequency,
        project=project,
    )
    return BaseModelOut.from_entity(tokenizer).model_copy(update={"created": created})


@router.post("/bases:scratch", name="bases.create_scratch", status_code=CREATED, tags=["bases"])
def create_scratch(body: BaseScratch, project: BasesWriteProject, ws: WorkspaceDep) -> BaseModelOut:
    """A randomly initialised base of a preset size around a registered tokenizer.

    ``overrides`` change size fields of the preset; a model over
    ``AIMASS_MAX_SCRATCH_PARAMETERS`` is refused before its weights exist.
    """
    base, created = ws.bases.create_scratch(
        body.name,
        architecture=body.architecture,
        tokenizer=body.tokenizer,
        preset=body.preset,
        seed=body.seed,
        overrides=body.overrides,
        project=project,
    )
    return BaseModelOut.from_entity(base).model_copy(update={"created": created})


@router.get("/bases/{name}", name="bases.get", tags=["bases"])
def get_base(name: str, project: ReadProject, ws: WorkspaceDep) -> BaseModelOut:
    """A base model version: ``NAME`` (latest) or ``NAME@VERSION``."""
    return BaseModelOut.from_entity(ws.bases.get(name, project=project))


@router.get("/bases/{name}/versions", name="bases.versions", tags=["bases"])
def base_versions(name: str, project: ReadProject, ws: WorkspaceDep) -> list[BaseModelOut]:
    """Every version of a base model, oldest first."""
    return [BaseModelOut.from_entity(b) for b in ws.bases.versions(name, project=project)]


@router.delete("/bases/{name}/versions/{version}", name="bases.delete_version", tags=["bases"])
def delete_base_version(
    name: str, version: int, project: BasesWriteProject, ws: WorkspaceDep
) -> BaseModelOut:
    """Delete a base version no model version was trained from (409 naming them
    otherwise); its bundle goes with ``aimass gc``."""
    return BaseModelOut.from_entity(ws.bases.delete_version(name, version, project=project))
