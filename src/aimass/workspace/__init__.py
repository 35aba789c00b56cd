"""The workspace: one object that does what a user asks, on one aimass home.

``Workspace(settings)`` opens the metadata store and artifact root named by the
settings (lazily) and offers the platform's operations: projects and keys,
import datasets and bases, train and batch-predict jobs, resolve and alias model
versions, render cards, export, predict, and the audit trail. The CLI's local
mode, ``aimass.load`` and the REST server are thin layers over it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.artifacts.storage import ArtifactStore, private_dir
from aimass.data.importer import ImportOptions, prepare_dataset
from aimass.data.kinds import get_kind
from aimass.data.readers import detect_format, read_records
from aimass.data.samples import get_sample
from aimass.data.tables import publish_dataset
from aimass.entities import (
    Attachment,
    BaseModel,
    DatasetVersion,
    Job,
    JobLogLine,
    ModelVersion,
    Project,
)
from aimass.errors import (
    InvalidArgument,
    NotFound,
    NotImplementedFeature,
    PayloadTooLarge,
    PermissionDenied,
    ResourceExhausted,
    UnsupportedModel,
)
from aimass.jobs.batch import BatchPredictSpec
from aimass.jobs.evaluate import EvaluateSpec
from aimass.refs import parse_ref, validate_name
from aimass.settings import Settings
from aimass.store import DEFAULT_PROJECT, Store
from aimass.texts import check_unicode
from aimass.workspace.access import Principal, read_or_create_secret
from aimass.workspace.audit import AuditTrail
from aimass.workspace.cards import render_card
from aimass.workspace.keys import KeyRing
from aimass.workspace.limits import Limits
from aimass.workspace.privacy import DeidentifyOptions
from aimass.workspace.secrets import open_artifact_store

if TYPE_CHECKING:
    from aimass.artifacts.archive import BundleArchive
    from aimass.jobs.pool import WorkerPool
    from aimass.jobs.train import TrainSpec
    from aimass.serving.predictor import Predictor
    from aimass.training.callbacks import Callback

__all__ = ["Principal", "Workspace"]

SECRET_FILE = "server.secret"  # noqa: S105 (a file name, not a secret)


def _text_fields(options: ImportOptions) -> tuple[str, ...]:
    """The source fields holding free text that de-identification must clean."""
    if options.kind == "tokens":
        # Masking inside a token list would change its length and break the tag alignment.
        raise NotImplementedFeature(
            "de-identifying a tokens/tags dataset is not built: masking tokens would break "
            "the alignment with their tags; de-identify the text before tokenising it"
        )
    kind = get_kind(options.kind)
    inputs = (options.text_field,) if options.text_field else kind.input_fields
    if options.kind != "pairs":
        return tuple(inputs)
    # Both sides of a pair are free text (a response can repeat the prompt's names).
    outputs = (options.label_field,) if options.label_field else kind.label_fields
    return (*inputs, *outputs)


class Workspace:
    """Local access to one aimass home (store + artifacts + serving cache).

    Args:
        settings: Where the store and artifacts live, limits, device.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._artifacts: ArtifactStore | None = None
        self._cache: Any = None
        self._secret: bytes | None = None
        self._keys: KeyRing | None = None
        self._limits: Limits | None = None
        self._audit: AuditTrail | None = None
        self._pool: WorkerPool | None = None

    @property
    def store(self) -> Store:
        """The metadata store (opened, and on first use created, when first needed)."""
        if self._store is None:
            private_dir(self.settings.home)
            self._store = Store.open(self.settings.resolved_store_uri)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store."""
        if self._artifacts is None:
            self._artifacts = open_artifact_store(self.settings)
        return self._artifacts

    def _derived_key(self, purpose: str) -> bytes:
        # One secret file, separate keys per use (API-key hashes, audit chain).
        if self._secret is None:
            private_dir(self.settings.home)
            self._secret = read_or_create_secret(self.settings.home / SECRET_FILE)
        return hmac.new(self._secret, purpose.encode(), hashlib.sha256).digest()

    @property
    def keys(self) -> KeyRing:
        """API keys: create, authenticate, list, revoke, bootstrap."""
        if self._keys is None:
            self._keys = KeyRing(
                self.store,
                self._derived_key("api-keys"),
                self.settings.home,
                cache_seconds=self.settings.auth_cache_seconds,
                limits=self.limits,
            )
        return self._keys

    @property
    def limits(self) -> Limits:
        """Effective per-key and per-project limits (stored, overrides, settings), budgets."""
        if self._limits is None:
            self._limits = Limits(
                self.store, self.settings, cache_seconds=self.settings.auth_cache_seconds
            )
        return self._limits

    @property
    def audit(self) -> AuditTrail:
        """The hash-chained audit log."""
        if self._audit is None:
            self._audit = AuditTrail(self.store, self._derived_key("audit"))
        return self._audit

    def close(self) -> None:
        """Stop workers, flush the audit writer, release connections and loaded models."""
        self.stop_workers()
        if self._audit is not None:
            self._audit.close()
        if self._store is not None:
            self._store.close()
        if self._cache is not None:
            self._cache.clear()

    # -- projects --------------------------------------------------------------------

    def create_project(self, name: str, *, description: str = "") -> Project:
        """Create a project (a tenant: its datasets, models, jobs and keys)."""
        return self.store.projects.create(name, description=description)

    def projects(self, principal: Principal | None = None) -> list[Project]:
        """Projects ``principal`` may see (all of them for the local operator)."""
        found = self.store.projects.list()
        return [p for p in found if principal is None or principal.sees(p.name)]

    # -- authorization rules that are about the domain, not HTTP --------------------

    def check_alias_move(self, principal: Principal, project: str, model: str, alias: str) -> None:
        """Protected aliases (``production``) need ``models:write`` on the model;
        other aliases ``models:write`` or ``train``."""
        if principal.can("models:write", project=project, model=model):
            return
        if alias not in self.settings.protected_aliases and principal.can("train", project=project):
            return
        raise PermissionDenied(
            f"moving alias {alias!r} of model {model!r} needs the scope models:write on it"
            + (" (a protected alias)" if alias in self.settings.protected_aliases else ""),
            alias=alias,
        )

    # -- datasets ---------------------------------------------------------------

    def import_dataset(
        self,
        path: Path,
        *,
        name: str,
        project: str = DEFAULT_PROJECT,
        fmt: str | None = None,
        options: ImportOptions | None = None,
        provenance: dict[str, Any] | None = None,
        deidentify: DeidentifyOptions | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Validate and store a dataset file; returns ``(version, created)``.

        On any bad row nothing is stored and the error names the line and field.
        Identical content under the same name returns the existing version. With
        ``deidentify``, PII is removed from the text (and named) fields *before*
        validation and the digest, so the stored version never holds the raw values.
        """
        validate_name(name, kind="dataset")
        self.store.projects.get(project)
        fmt = detect_format(Path(path), fmt)
        options = options or ImportOptions()
        if fmt == "parquet":
            options = replace(options, unit="row")
        if fmt == "conll" and options.kind != "tokens":
            if options.kind != "text":
                raise InvalidArgument(
                    f"a CoNLL file holds tokens and tags; it cannot be a {options.kind!r} dataset"
                )
            options = replace(options, kind="tokens")
        options = replace(options, max_text_chars=self.settings.max_text_chars)
        records = read_records(
            Path(path),
            fmt,
            max_row_bytes=self.settings.max_row_bytes,
            max_total_bytes=self.settings.max_dataset_bytes,
            max_ratio=self.settings.max_decompression_ratio,
        )
        provenance = dict(provenance or {"source": "file", "path": str(Path(path).resolve())})
        prepared = self._prepare(records, options, deidentify, provenance, project)
        return self._store_dataset(
            prepared, name=name, project=project, fmt=fmt, provenance={**provenance, "format": fmt}
        )

    def import_dataset_content(
        self,
        content: str | bytes,
        *,
        name: str,
        fmt: str,
        project: str = DEFAULT_PROJECT,
        options: ImportOptions | None = None,
        base64_encoded: bool = False,
        deidentify: DeidentifyOptions | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Import a dataset sent in a request body (JSONL/CSV text, or base64 Parquet)."""
        if isinstance(content, str):
            check_unicode(content, what="the dataset content", field="content")
        data = content.encode("utf-8") if isinstance(content, str) else content
        if base64_encoded:
            try:
                data = base64.b64decode(data, validate=True)
            except binascii.Error as exc:
                raise InvalidArgument(f"content_base64 is not valid base64: {exc}") from exc
        digest = hashlib.sha256(data).hexdigest()
        with self.artifacts.staging() as stage:
            staged = stage / f"upload.{fmt}"
            staged.write_bytes(data)
            return self.import_dataset(
                staged,
                name=name,
                project=project,
                fmt=fmt,
                options=options,
                provenance={"source": "upload", "sha256": digest, "bytes": len(data)},
                deidentify=deidentify,
            )

    def allowed_path(self, text: str) -> Path:
        """``text`` as a real path inside one of ``AIMASS_IMPORT_DIRS``, else an error.

        Symlinks and ``..`` are resolved before the check, so neither can lead
        outside; a path outside the directories is refused without saying whether
        it exists.
        """
        roots = [Path(os.path.realpath(d)) for d in self.settings.import_dirs]
        if not roots:
            raise PermissionDenied(
                "this server imports no files by path; upload the content instead, or have "
                "the operator set AIMASS_IMPORT_DIRS"
            )
        if "\x00" in text:
            raise InvalidArgument("the path contains a NUL byte")
        candidate = Path(text) if Path(text).is_absolute() else roots[0] / text
        real = Path(os.path.realpath(candidate))
        if not any(os.path.commonpath([root, real]) == str(root) for root in roots):
            raise PermissionDenied(
                f"{text[:200]!r} is outside the directories this server may import from "
                f"({', '.join(str(r) for r in roots)})",
            )
        if not real.exists():
            raise NotFound(f"{text[:200]!r} does not exist", path=text[:200])
        return real

    def import_sample(
        self,
        sample: str,
        *,
        name: str | None = None,
        project: str = DEFAULT_PROJECT,
        seed: int = 0,
        deidentify: DeidentifyOptions | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Import a packaged sample dataset (see ``aimass datasets samples``).

        With ``deidentify``, PII is removed before the rows are validated and stored,
        as for :meth:`import_dataset`.
        """
        spec = get_sample(sample)
        name = validate_name(name or spec.name, kind="dataset")
        self.store.projects.get(project)
        options = ImportOptions(
            **{**spec.options, "seed": seed, "max_text_chars": self.settings.max_text_chars}
        )
        provenance = spec.provenance()
        prepared = self._prepare(spec.records(), options, deidentify, provenance, project)
        return self._store_dataset(
            prepared, name=name, project=project, fmt="sample", provenance=provenance
        )

    def _prepare(
        self,
        records: Any,
        options: ImportOptions,
        deidentify: DeidentifyOptions | None,
        provenance: dict[str, Any],
        project: str,
    ) -> Any:
        """Validate ``records`` (de-identified first, when asked; recorded in ``provenance``)."""
        if deidentify is None:
            return prepare_dataset(records, options)
        from aimass.data.deidentify import deidentify_records
        from aimass.workspace.privacy import build_deidentifier

        fields = (*_text_fields(options), *deidentify.fields)
        engine = build_deidentifier(self, deidentify, project=project)
        prepared = prepare_dataset(deidentify_records(records, engine, fields=fields), options)
        provenance["deidentification"] = {"fields": list(fields), **engine.report.to_dict()}
        return prepared

    def _store_dataset(self, prepared: Any, **fields: Any) -> tuple[DatasetVersion, bool]:
        return publish_dataset(prepared, store=self.store, artifacts=self.artifacts, **fields)

    def dataset(self, ref: str, *, project: str = DEFAULT_PROJECT) -> DatasetVersion:
        """Resolve ``NAME`` (latest) or ``NAME@VERSION``."""
        parsed = parse_ref(ref, kind="dataset")
        if parsed.alias not in (None, "latest"):
            raise InvalidArgument(f"dataset reference {ref!r}: use NAME or NAME@VERSION")
        return self.store.datasets.get(project, parsed.name, parsed.version)

    # -- base models ---------------------------------------------------------------

    def import_base(
        self, source: str, *, name: str | None = None, project: str = DEFAULT_PROJECT
    ) -> tuple[BaseModel, bool]:
        """Import a packaged base by name (``minilm``) or a local HF directory."""
        from aimass.jobs.bases import import_base

        self.store.projects.get(project)
        return import_base(
            source, store=self.store, artifacts=self.artifacts, project=project, name=name
        )

    def base_from_model(
        self, ref: str, *, name: str, project: str = DEFAULT_PROJECT
    ) -> tuple[BaseModel, bool]:
        """Register a trained version as a base (e.g. a masked-LM pre-trained encoder).

        The task head is dropped: the base holds the family's bare model (an
        encoder's ``AutoModel``), ready for fine-tuning on another task.
        """
        from aimass.jobs.bases import import_base

        version = self.model_version(ref, project=project)
        return import_base(
            str(self.artifacts.resolve(version.uri)),
            store=self.store,
            artifacts=self.artifacts,
            project=project,
            name=name,
            provenance_override={
                "source": "model",
                "model": version.ref,
                "model_digest": version.digest,
                "task": version.task,
                "description": f"{version.task} model {version.ref} (task head dropped)",
            },
        )

    def base(self, ref: str, *, project: str = DEFAULT_PROJECT) -> BaseModel:
        """Resolve ``NAME`` (latest) or ``NAME@VERSION`` of a base model."""
        parsed = parse_ref(ref, kind="base model")
        if parsed.alias not in (None, "latest"):
            raise InvalidArgument(f"base reference {ref!r}: use NAME or NAME@VERSION")
        return self.store.bases.get(project, parsed.name, parsed.version)

    def train_tokenizer(
        self,
        dataset: str,
        *,
        name: str,
        kind: str = "wordpiece",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        project: str = DEFAULT_PROJECT,
    ) -> tuple[BaseModel, bool]:
        """Train a tokenizer on a dataset's training split; register it (family ``tokenizer``)."""
        from aimass.jobs.pretrain import train_tokenizer_base

        return train_tokenizer_base(
            self.dataset(dataset, project=project),
            name=name,
            kind=kind,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            store=self.store,
            artifacts=self.artifacts,
            project=project,
        )

    def create_scratch_base(
        self,
        name: str,
        *,
        architecture: str,
        tokenizer: str,
        preset: str = "tiny",
        seed: int = 0,
        overrides: dict[str, Any] | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> tuple[BaseModel, bool]:
        """A randomly initialised base of a preset size (``tiny``/``mini``/``small``)."""
        from aimass.jobs.pretrain import create_scratch_base

        self.store.projects.get(project)
        return create_scratch_base(
            name=name,
            architecture=architecture,
            preset=preset,
            tokenizer=tokenizer,
            seed=seed,
            overrides=overrides or {},
            store=self.store,
            artifacts=self.artifacts,
            project=project,
        )

    # -- training ----------------------------------------------------------------

    def with_recipe(self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT) -> TrainSpec:
        """``spec`` itself when it names a base; else with the dataset's recommended recipe.

        The recipe (``aimass.training.config.recommended_recipe``: m3e-small fine-tuned
        for Chinese text, MiniLM features otherwise) gives the base, imported here if the
        project lacks it, and the settings the caller did not set; a caller who asks
        for another mode keeps only the base.
        """
        if spec.base is not None:
            return spec
        from aimass.training.config import recommended_recipe

        task = spec.config.get("task", "classification")
        if task not in ("classification", "regression"):
            raise InvalidArgument(
                f"task {task!r} has no recommended base: give one with --base (the recipes "
                "cover classification and regression)",
                field="base",
            )

        recipe = recommended_recipe(self.dataset(spec.dataset, project=project).stats)
        try:
            base = self.store.bases.get(project, recipe.base)
        except NotFound:
            base = None
        if base is None or base.provenance.get("source") != "package":
            base, _created = self.import_base(recipe.base, project=project)
        config = spec.config
        if config.get("mode") in (None, recipe.config.get("mode")):
            config = {**recipe.config, **config}
        return replace(spec, base=base.ref, config=config)

    def find_trained(
        self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT
    ) -> ModelVersion | None:
        """A registered version trained from exactly these inputs, if one exists."""
        from aimass.jobs.train import config_digest, resolve_inputs

        spec = self.with_recipe(spec, project=project)
        dataset, base, config = resolve_inputs(self.store, project, spec)
        digest = config_digest(dataset, base, config, spec.dp_config(dataset))
        return self.store.registry.find_by_config_digest(project, spec.model, digest)

    def submit_training(
        self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT, reuse: bool = False
    ) -> Job:
        """Validate the spec and queue a training job (run it with :meth:`run_job`).

        With ``reuse``, when a version trained from identical inputs exists, the job
        is recorded as succeeded at once with that version (and the alias moved).
        """
        from aimass.entities import JobStatus
        from aimass.jobs.train import resolve_inputs

        spec = self.with_recipe(spec, project=project)
        resolve_inputs(self.store, project, spec)
        existing = self.find_trained(spec, project=project) if reuse else None
        job = self.store.jobs.create(project, "train", spec.to_dict())
        if existing is not None:
            claimed = self.store.jobs.claim(job.id)
            if spec.alias:
                existing = self.set_alias(spec.model, existing.version, spec.alias, project=project)
            self.store.jobs.log(job.id, f"identical inputs: reusing {existing.ref}")
            return self.store.jobs.finish(
                job.id,
                JobStatus.SUCCEEDED,
                attempt=claimed.attempt,
                result={
                    "model": existing.name,
                    "version": existing.version,
                    "digest": existing.digest,
                    "aliases": list(existing.aliases),
                    "reused": True,
                },
            )
        self._wake_workers()
        return job

    def submit_batch_predict(
        self, spec: BatchPredictSpec, *, project: str = DEFAULT_PROJECT
    ) -> Job:
        """Check the model and dataset exist, pin the model version, queue the job."""
        model = self.model_version(spec.model, project=project)
        self.dataset(spec.dataset, project=project)
        pinned = BatchPredictSpec(**{**spec.to_dict(), "model": model.ref})
        job = self.store.jobs.create(project, "batch-predict", pinned.to_dict())
        self._wake_workers()
        return job

    def jobs(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Newest jobs first."""
        from aimass.entities import JobStatus

        if status is not None and status not in set(JobStatus):
            raise InvalidArgument(
                f"job status {status!r}: use one of {', '.join(JobStatus)}", status=status
            )
        return self.store.jobs.list(
            project, status=JobStatus(status) if status else None, kind=kind, limit=limit
        )

    def job(self, job_id: str, *, project: str = DEFAULT_PROJECT) -> Job:
        """One job, with its live progress and metrics."""
        return self.store.jobs.get(job_id, project=project)

    def job_logs(
        self, job_id: str, *, project: str = DEFAULT_PROJECT, after: int = 0, limit: int = 1000
    ) -> list[JobLogLine]:
        """A job's log lines after sequence number ``after``."""
        return self.store.jobs.logs(job_id, project=project, after=after, limit=limit)

    def cancel_job(self, job_id: str, *, project: str = DEFAULT_PROJECT) -> Job:
        """Cancel a queued job now, or a running one within one step."""
        return self.store.jobs.request_cancel(job_id, project=project)

    def start_workers(self, workers: int, *, on_finished: Any = None) -> WorkerPool:
        """Run queued jobs in ``workers`` background threads (recovering dead ones first)."""
        from aimass.jobs.pool import WorkerPool

        self._pool = WorkerPool(
            store=self.store,
            artifacts=self.artifacts,
            settings=self.settings,
            workers=workers,
            on_finished=on_finished,
        )
        self._pool.start()
        return self._pool

    def stop_workers(self) -> None:
        """Stop the worker threads (running jobs get a few seconds to finish)."""
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    @property
    def workers_running(self) -> bool:
        """Whether this workspace's worker threads are taking queued jobs."""
        return self._pool is not None

    def _wake_workers(self) -> None:
        if self._pool is not None:
            self._pool.wake()

    def run_job(self, job_id: str, *, callbacks: Sequence[Callback] = ()) -> Job:
        """Run a queued job in this process (blocking) and return its final record."""
        from aimass.jobs.runner import run_job

        return run_job(
            job_id,
            store=self.store,
            artifacts=self.artifacts,
            settings=self.settings,
            callbacks=callbacks,
        )

    def train(
        self,
        spec: TrainSpec,
        *,
        project: str = DEFAULT_PROJECT,
        callbacks: Sequence[Callback] = (),
    ) -> ModelVersion:
        """Train now, in this process, and return the registered version."""
        job = self.run_job(self.submit_training(spec, project=project).id, callbacks=callbacks)
        return self.store.registry.get_version(
            project, parse_ref(f"{job.result['model']}@{job.result['version']}")
        )

    # -- registry ----------------------------------------------------------------

    def model_version(self, ref: str, *, project: str = DEFAULT_PROJECT) -> ModelVersion:
        """Resolve ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
        return self.store.registry.get_version(project, parse_ref(ref, kind="model"))

    def set_alias(
        self, name: str, version: int, alias: str, *, project: str = DEFAULT_PROJECT
    ) -> ModelVersion:
        """Point ``alias`` of model ``name`` at ``version``."""
        return self.store.registry.set_alias(project, name, alias, version)

    def delete_alias(self, name: str, alias: str, *, project: str = DEFAULT_PROJECT) -> None:
        """Remove ``alias`` from model ``name``."""
        self.store.registry.delete_alias(project, name, alias)

    def delete_version(
        self, name: str, version: int, *, project: str = DEFAULT_PROJECT
    ) -> ModelVersion:
        """Delete a version no alias points at (aliased versions are refused)."""
        return self.store.registry.delete_version(project, name, version)

    def model_card(self, ref: str, *, project: str = DEFAULT_PROJECT) -> str:
        """The model card (Markdown) of a version."""
        version = self.model_version(ref, project=project)
        lineage = version.lineage  # an imported version has neither dataset nor base
        dataset = self.dataset(lineage.dataset, project=project) if lineage.dataset else None
        base = self.base(lineage.base, project=project) if lineage.base else None
        attachments = self.store.registry.attachments(project, parse_ref(version.ref))
        return render_card(version, dataset=dataset, base=base, attachments=attachments)

    def export_model(
        self, ref: str, destination: Path, *, project: str = DEFAULT_PROJECT
    ) -> list[str]:
        """Copy a version's verified bundle out as a Hugging Face model directory."""
        from aimass.artifacts.bundle import copy_bundle_files

        version = self.model_version(ref, project=project)
        return copy_bundle_files(self.artifacts.resolve(version.uri), Path(destination))

    def export_archive(
        self, ref: str, *, project: str = DEFAULT_PROJECT
    ) -> tuple[ModelVersion, BundleArchive]:
        """A version's verified, decrypted bundle as a tar stream (the export endpoint)."""
        from aimass.artifacts.archive import open_bundle_archive

        version = self.model_version(ref, project=project)
        return version, open_bundle_archive(self.artifacts.resolve(version.uri))

    def import_model(
        self,
        source: str,
        *,
        name: str | None = None,
        alias: str | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> tuple[ModelVersion, bool]:
        """Register a Hugging Face ``*ForSequenceClassification`` directory as a version."""
        from aimass.jobs.imported import import_classifier

        self.store.projects.get(project)
        return import_classifier(
            Path(source),
            store=self.store,
            artifacts=self.artifacts,
            project=project,
            name=name,
            alias=alias,
        )

    def verify_model(self, ref: str, *, project: str = DEFAULT_PROJECT) -> dict[str, Any]:
        """Check a version's signature, then every file against its manifest.

        Raises:
            BundleFormatError: unsigned, untrusted or bad signature, or a file that
                does not match the manifest.
        """
        from aimass.artifacts.bundle import verify_bundle

        version = self.model_version(ref, project=project)
        key = self.artifacts.key_of(version.uri)
        signature = self.artifacts.check_signature(key, self.artifacts.stored(version.uri))
        manifest = verify_bundle(self.artifacts.resolve(version.uri))
        return {
            "ref": version.ref,
            "digest": manifest.digest,
            "files": len(manifest.files),
            "signed_by": signature.key_id,
            "trusted": signature.trusted,
            "encrypted": self.artifacts.is_encrypted(version.uri),
        }

    def audit_privacy(
        self,
        ref: str,
        *,
        dataset: str,
        project: str = DEFAULT_PROJECT,
        max_examples: int = 1000,
        calibrated: bool = True,
    ) -> dict[str, Any]:
        """Membership-inference audit of a version, attached to it; returns the report."""
        from aimass.workspace.privacy import audit_privacy

        report, _attachment = audit_privacy(
            self,
            ref,
            dataset=dataset,
            project=project,
            max_examples=max_examples,
            calibrated=calibrated,
        )
        return report

    # -- serving -------------------------------------------------------------------

    def load(self, ref: str, *, project: str = DEFAULT_PROJECT) -> Predictor:
        """A predictor for a model version (cached by bundle digest)."""
        return self.load_version(self.model_version(ref, project=project))

    def load_version(self, version: ModelVersion) -> Predictor:
        """The predictor of a resolved version, from the LRU cache (loaded when missing)."""
        from aimass.serving.cache import PredictorCache
        from aimass.serving.predictor import load_predictor

        if self._cache is None:
            self._cache = PredictorCache(self.settings.model_cache_size)
        directory = self.artifacts.resolve(version.uri)
        return self._cache.get(
            version.digest, lambda: load_predictor(directory, device=self.settings.device)
        )

    def check_inputs(self, texts: Sequence[str]) -> list[str]:
        """Predict inputs within the limits: count, non-empty valid strings, length, total."""
        from aimass.serving.predictor import check_texts

        if len(texts) > self.settings.max_predict_batch:
            raise ResourceExhausted(
                f"{len(texts)} inputs in one call; the limit is {self.settings.max_predict_batch} "
                "(AIMASS_MAX_PREDICT_BATCH)"
            )
        for i, text in enumerate(texts):
            if isinstance(text, str) and len(text) > self.settings.max_text_chars:
                raise InvalidArgument(
                    f"input {i} has {len(text):,} characters; the limit is "
                    f"{self.settings.max_text_chars:,} (AIMASS_MAX_TEXT_CHARS)",
                    index=i,
                )
        total = sum(len(t) for t in texts if isinstance(t, str))
        if total > self.settings.max_request_chars:
            # Checked before anything is tokenized: tokenizing is the expensive part.
            raise PayloadTooLarge(
                f"the {len(texts)} inputs hold {total:,} characters together; the limit per "
                f"call is {self.settings.max_request_chars:,} (AIMASS_MAX_REQUEST_CHARS): "
                "split them over several calls",
                limit=self.settings.max_request_chars,
            )
        return check_texts(texts)

    def check_explain_batch(self, texts: Sequence[str]) -> None:
        """Explanations cost up to ~50 passes each: at most ``max_explain_batch`` per call."""
        if len(texts) > self.settings.max_explain_batch:
            raise ResourceExhausted(
                f"{len(texts)} inputs to explain in one call; the limit is "
                f"{self.settings.max_explain_batch} (AIMASS_MAX_EXPLAIN_BATCH)"
            )

    def predict(
        self,
        ref: str,
        texts: Sequence[str],
        *,
        project: str = DEFAULT_PROJECT,
        explain: str | bool | None = None,
    ) -> list[dict[str, Any]]:
        """Predict ``texts`` with a model version (limits from the settings).

        With ``explain`` (``True`` or a method: ``integrated-gradients``,
        ``attention``, ``occlusion``) every result carries an ``explanation``.
        """
        from aimass.serving.predictor import explainer_name

        inputs = self.check_inputs(texts)
        predictor = self.load(ref, project=project)
        if explainer_name(explain) is None:
            return predictor.predict(inputs)
        self.check_explain_batch(inputs)
        return predictor.with_explanations(inputs, predictor.predict(inputs), explain)

    def explain(
        self,
        ref: str,
        texts: Sequence[str],
        *,
        method: str = "integrated-gradients",
        label: str | None = None,
        project: str = DEFAULT_PROJECT,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Explain the predictions of a model version for ``texts`` (see :mod:`aimass.explain`)."""
        inputs = self.check_inputs(texts)
        self.check_explain_batch(inputs)
        predictor = self.load(ref, project=project)
        return predictor.explain(inputs, method=method, label=label, **options)

    # -- evaluation ------------------------------------------------------------------

    def submit_evaluation(self, spec: EvaluateSpec, *, project: str = DEFAULT_PROJECT) -> Job:
        """Check the spec and queue an ``evaluate`` job (aliases are pinned to their version)."""
        from aimass.jobs.evaluate import submit_evaluation

        return submit_evaluation(self.store, self.artifacts, project, spec)

    def evaluate(
        self,
        spec: EvaluateSpec,
        *,
        project: str = DEFAULT_PROJECT,
        callbacks: Sequence[Callback] = (),
    ) -> Attachment:
        """Build the evaluation report now, in this process; returns its attachment."""
        job = self.run_job(self.submit_evaluation(spec, project=project).id, callbacks=callbacks)
        ref = parse_ref(f"{job.result['model']}@{job.result['version']}")
        found = self.store.registry.attachments(project, ref, kind="evaluation")
        return next(a for a in found if a.name == job.result["attachment"])

    def evaluations(self, ref: str, *, project: str = DEFAULT_PROJECT) -> list[Attachment]:
        """Evaluation reports attached to a version, newest first."""
        version = self.model_version(ref, project=project)
        return self.store.registry.attachments(project, parse_ref(version.ref), kind="evaluation")

    def report_file(self, attachment: Attachment, *, fmt: str = "html") -> Path:
        """The stored ``report.html`` or ``report.json`` of an evaluation attachment."""
        if fmt not in ("html", "json"):
            raise InvalidArgument(f"report format {fmt!r} is not 'html' or 'json'")
        return self.artifacts.resolve(attachment.uri) / f"report.{fmt}"

    def generate(
        self, ref: str, prompt: str, *, project: str = DEFAULT_PROJECT, **options: Any
    ) -> dict[str, Any]:
        """Generate text from ``prompt`` with a causal-LM or seq2seq model version.

        Options: ``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop``,
        ``seed`` (see :meth:`~aimass.serving.generation.GenerationPredictor.generate_stream`).
        """
        self.check_generation(prompt, options)
        return self.generator(self.model_version(ref, project=project)).generate(prompt, **options)

    def generate_stream(
        self, ref: str, prompt: str, *, project: str = DEFAULT_PROJECT, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`generate`, yielding text pieces as they are decoded, then a final event."""
        self.check_generation(prompt, options)
        predictor = self.generator(self.model_version(ref, project=project))
        return predictor.generate_stream(prompt, **options)

    def check_generation(self, prompt: str, options: Mapping[str, Any]) -> None:
        """The limits of one generate call: prompt length and ``max_new_tokens``."""
        if isinstance(prompt, str) and len(prompt) > self.settings.max_text_chars:
            raise InvalidArgument(
                f"the prompt has {len(prompt):,} characters; the limit is "
                f"{self.settings.max_text_chars:,} (AIMASS_MAX_TEXT_CHARS)",
                field="prompt",
            )
        if isinstance(prompt, str):
            check_unicode(prompt, what="the prompt", field="prompt")
        wanted = options.get("max_new_tokens")
        if isinstance(wanted, int) and wanted > self.settings.max_new_tokens:
            raise InvalidArgument(
                f"max_new_tokens={wanted:,} is over this deployment's limit of "
                f"{self.settings.max_new_tokens:,} (AIMASS_MAX_NEW_TOKENS); ask for fewer",
                field="max_new_tokens",
                limit=self.settings.max_new_tokens,
            )

    def generator(self, version: ModelVersion) -> Any:
        """The loaded predictor of a generative version (UnsupportedModel for any other)."""
        predictor = self.load_version(version)
        if not hasattr(predictor, "generate_stream"):
            raise UnsupportedModel(
                f"model {version.ref!r} is a {predictor.task} model and does not generate text; "
                "use a causal-lm or seq2seq model (or 'aimass predict')"
            )
        return predictor
