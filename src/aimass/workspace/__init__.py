"""The local workspace: one object that does what a user asks, on the embedded default.

``Workspace(settings)`` opens the metadata store and artifact root named by the
settings (lazily) and offers the platform's operations: import datasets and
bases, train, resolve and alias model versions, render cards, export, predict.
The CLI's local mode and ``aimass.load`` are thin layers over it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.artifacts.storage import ArtifactStore
from aimass.data.importer import ImportOptions, PreparedDataset, prepare_dataset
from aimass.data.readers import detect_format, read_records
from aimass.data.samples import get_sample
from aimass.entities import BaseModel, DatasetVersion, Job, ModelVersion
from aimass.errors import InvalidArgument, ResourceExhausted, UnsupportedModel
from aimass.refs import parse_ref, validate_name
from aimass.settings import Settings
from aimass.store import DEFAULT_PROJECT, Store
from aimass.workspace.cards import render_card

if TYPE_CHECKING:
    from aimass.jobs.train import TrainSpec
    from aimass.serving.predictor import Predictor
    from aimass.training.callbacks import Callback

__all__ = ["Workspace"]


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

    @property
    def store(self) -> Store:
        """The metadata store (opened, and on first use created, when first needed)."""
        if self._store is None:
            self.settings.home.mkdir(parents=True, exist_ok=True)
            self._store = Store.open(self.settings.resolved_store_uri)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store."""
        if self._artifacts is None:
            self._artifacts = ArtifactStore(self.settings.resolved_artifact_root)
        return self._artifacts

    def close(self) -> None:
        """Release database connections and loaded models."""
        if self._store is not None:
            self._store.close()
        if self._cache is not None:
            self._cache.clear()

    # -- datasets ---------------------------------------------------------------

    def import_dataset(
        self,
        path: Path,
        *,
        name: str,
        project: str = DEFAULT_PROJECT,
        fmt: str | None = None,
        options: ImportOptions | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Validate and store a dataset file; returns ``(version, created)``.

        On any bad row nothing is stored and the error names the line and field.
        Identical content under the same name returns the existing version.
        """
        validate_name(name, kind="dataset")
        self.store.projects.get(project)
        fmt = detect_format(Path(path), fmt)
        options = options or ImportOptions()
        if fmt == "parquet":
            options = ImportOptions(**{**options.__dict__, "unit": "row"})
        if fmt == "conll" and options.kind != "tokens":
            if options.kind != "text":
                raise InvalidArgument(
                    f"a CoNLL file holds tokens and tags; it cannot be a {options.kind!r} dataset"
                )
            options = ImportOptions(**{**options.__dict__, "kind": "tokens"})
        options = ImportOptions(
            **{**options.__dict__, "max_text_chars": self.settings.max_text_chars}
        )
        records = read_records(Path(path), fmt, max_row_bytes=self.settings.max_row_bytes)
        prepared = prepare_dataset(records, options)
        provenance = {"source": "file", "path": str(Path(path).resolve()), "format": fmt}
        return self._store_dataset(
            prepared, name=name, project=project, fmt=fmt, provenance=provenance
        )

    def import_sample(
        self, sample: str, *, name: str | None = None, project: str = DEFAULT_PROJECT, seed: int = 0
    ) -> tuple[DatasetVersion, bool]:
        """Import a packaged sample dataset (see ``aimass datasets samples``)."""
        spec = get_sample(sample)
        name = validate_name(name or spec.name, kind="dataset")
        self.store.projects.get(project)
        options = ImportOptions(
            **{**spec.options, "seed": seed, "max_text_chars": self.settings.max_text_chars}
        )
        prepared = prepare_dataset(spec.records(), options)
        return self._store_dataset(
            prepared, name=name, project=project, fmt="sample", provenance=spec.provenance()
        )

    def _store_dataset(
        self,
        prepared: PreparedDataset,
        *,
        name: str,
        project: str,
        fmt: str,
        provenance: dict[str, Any],
    ) -> tuple[DatasetVersion, bool]:
        from aimass.data.tables import write_parquet

        key = f"datasets/{prepared.digest}.parquet"
        if not self.artifacts.exists(key):
            with self.artifacts.staging() as stage:
                staged = stage / "data.parquet"
                write_parquet(prepared, staged)
                self.artifacts.publish(staged, key)
        return self.store.datasets.create_version(
            project,
            name,
            digest=prepared.digest,
            uri=self.artifacts.uri(key),
            format=fmt,
            schema=dict(prepared.schema.__dict__, extra_fields=list(prepared.schema.extra_fields)),
            num_rows=prepared.num_rows,
            splits=prepared.split_counts(),
            stats=prepared.stats,
            provenance=provenance,
        )

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

    def find_trained(
        self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT
    ) -> ModelVersion | None:
        """A registered version trained from exactly these inputs, if one exists."""
        from aimass.jobs.train import config_digest, resolve_inputs

        dataset, base, config = resolve_inputs(self.store, project, spec)
        digest = config_digest(dataset, base, config)
        return self.store.registry.find_by_config_digest(project, spec.model, digest)

    def submit_training(self, spec: TrainSpec, *, project: str = DEFAULT_PROJECT) -> Job:
        """Validate the spec and queue a training job (run it with :meth:`run_job`)."""
        from aimass.jobs.train import resolve_inputs

        resolve_inputs(self.store, project, spec)
        return self.store.jobs.create(project, "train", spec.to_dict())

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

    def model_card(self, ref: str, *, project: str = DEFAULT_PROJECT) -> str:
        """The model card (Markdown) of a version."""
        version = self.model_version(ref, project=project)
        dataset = self.dataset(version.lineage.dataset, project=project)
        base = self.base(version.lineage.base, project=project)
        attachments = self.store.registry.attachments(project, parse_ref(version.ref))
        return render_card(version, dataset=dataset, base=base, attachments=attachments)

    def export_model(
        self, ref: str, destination: Path, *, project: str = DEFAULT_PROJECT
    ) -> list[str]:
        """Copy a version's verified bundle out as a Hugging Face model directory."""
        from aimass.artifacts.bundle import copy_bundle_files

        version = self.model_version(ref, project=project)
        return copy_bundle_files(self.artifacts.resolve(version.uri), Path(destination))

    # -- serving -------------------------------------------------------------------

    def load(self, ref: str, *, project: str = DEFAULT_PROJECT) -> Predictor:
        """A predictor for a model version (cached by bundle digest)."""
        from aimass.serving.cache import PredictorCache
        from aimass.serving.predictor import load_predictor

        version = self.model_version(ref, project=project)
        if self._cache is None:
            self._cache = PredictorCache(self.settings.model_cache_size)
        directory = self.artifacts.resolve(version.uri)
        return self._cache.get(
            version.digest, lambda: load_predictor(directory, device=self.settings.device)
        )

    def predict(
        self, ref: str, texts: Sequence[str], *, project: str = DEFAULT_PROJECT
    ) -> list[dict[str, Any]]:
        """Predict ``texts`` with a model version (limits from the settings)."""
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
        return self.load(ref, project=project).predict(texts)

    def generate(
        self, ref: str, prompt: str, *, project: str = DEFAULT_PROJECT, **options: Any
    ) -> dict[str, Any]:
        """Generate text from ``prompt`` with a causal-LM or seq2seq model version.

        Options: ``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop``,
        ``seed`` (see :meth:`~aimass.serving.generation.GenerationPredictor.generate_stream`).
        """
        return self._generator(ref, prompt, project=project).generate(prompt, **options)

    def generate_stream(
        self, ref: str, prompt: str, *, project: str = DEFAULT_PROJECT, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`generate`, yielding text pieces as they are decoded, then a final event."""
        return self._generator(ref, prompt, project=project).generate_stream(prompt, **options)

    def _generator(self, ref: str, prompt: str, *, project: str) -> Any:
        if isinstance(prompt, str) and len(prompt) > self.settings.max_text_chars:
            raise InvalidArgument(
                f"the prompt has {len(prompt):,} characters; the limit is "
                f"{self.settings.max_text_chars:,} (AIMASS_MAX_TEXT_CHARS)"
            )
        predictor = self.load(ref, project=project)
        if not hasattr(predictor, "generate_stream"):
            raise UnsupportedModel(
                f"model {ref!r} is a {predictor.task} model and does not generate text; use a "
                "causal-lm or seq2seq model (or 'aimass predict')"
            )
        return predictor
