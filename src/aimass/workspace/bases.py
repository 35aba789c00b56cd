"""``ws.bases``: pretrained bases: import, register a trained model as one, tokenizers,
randomly initialised bases to pre-train."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from aimass.entities import (
    BaseModel,
)
from aimass.errors import Conflict, InvalidArgument
from aimass.refs import parse_ref
from aimass.store import DEFAULT_PROJECT

if TYPE_CHECKING:
    pass
from aimass.workspace._service import Service

__all__ = ["BaseService"]


class BaseService(Service):
    """``ws.bases``: the pretrained models training starts from."""

    def import_(
        self, source: str, *, name: str | None = None, project: str = DEFAULT_PROJECT
    ) -> tuple[BaseModel, bool]:
        """Import a packaged base by name (``minilm``) or a local HF directory."""
        from aimass.jobs.bases import import_base

        self.store.projects.get(project)
        return import_base(
            source, store=self.store, artifacts=self.artifacts, project=project, name=name
        )

    def from_model(
        self, ref: str, *, name: str, project: str = DEFAULT_PROJECT
    ) -> tuple[BaseModel, bool]:
        """Register a trained version as a base (e.g. a masked-LM pre-trained encoder).

        The task head is dropped: the base holds the family's bare model (an
        encoder's ``AutoModel``), ready for fine-tuning on another task. The
        license terms of the base the version was trained from carry over.
        """
        from aimass.jobs.bases import import_base, inherited_terms

        version = self._ws.models.get(ref, project=project)
        # An imported model names no base (its source's terms are the importer's to know).
        base = version.lineage.base
        terms = inherited_terms(self.get(base, project=project)) if base else {}
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
                **terms,
            },
        )

    def shrink(
        self,
        ref: str,
        *,
        name: str,
        layers: int,
        pick: str = "first",
        intermediate_size: int = 0,
        project: str = DEFAULT_PROJECT,
    ) -> tuple[BaseModel, bool]:
        """Register base ``ref`` cut to ``layers`` layers as ``name``: a distilled student's start.

        ``pick`` is ``first`` (layers 0..n-1) or ``spread`` (evenly spaced from layer 0,
        DistilBERT's every other layer); ``intermediate_size`` > 0 also keeps only that
        many of each kept layer's feed-forward neurons, those with the largest weights.
        Works on BERT-style encoders and Llama-style decoders.
        """
        from aimass.jobs.bases import shrink_base

        return shrink_base(
            self.get(ref, project=project),
            name=name,
            layers=layers,
            pick=pick,
            intermediate_size=intermediate_size,
            store=self.store,
            artifacts=self.artifacts,
            project=project,
        )

    def get(self, ref: str, *, project: str = DEFAULT_PROJECT) -> BaseModel:
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
            self._ws.datasets.get(dataset, project=project),
            name=name,
            kind=kind,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            store=self.store,
            artifacts=self.artifacts,
            project=project,
        )

    def create_scratch(
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
            max_parameters=self.settings.max_scratch_parameters,
        )

    def list(self, *, project: str = DEFAULT_PROJECT) -> list[BaseModel]:
        """The latest version of every base."""
        return self.store.bases.list(project)

    def versions(self, name: str, *, project: str = DEFAULT_PROJECT) -> builtins.list[BaseModel]:
        """Every version of base ``name``, oldest first (NotFound when it has none)."""
        found = self.store.bases.versions(project, name)
        if not found:
            self.store.bases.get(project, name)  # raises NotFound naming it
        return found

    def trained_from(self, ref: str, *, project: str = DEFAULT_PROJECT) -> builtins.list[str]:
        """The model versions (``name@version``) whose lineage names base ``ref``."""
        return self.store.registry.trained_from(project, field="base", ref=ref)

    def trained_from_each(self, *, project: str = DEFAULT_PROJECT) -> dict[str, builtins.list[str]]:
        """Every base version (``name@version``) models were trained from → those model
        versions, in one read."""
        return self.store.registry.trained_from_each(project, field="base")

    def delete_version(
        self, name: str, version: int, *, project: str = DEFAULT_PROJECT
    ) -> BaseModel:
        """Delete a version no model version was trained from; returns it.

        Refused (Conflict naming them) while a model version names it in its lineage:
        a model's license terms are its base's (see :mod:`aimass.workspace.licenses`).
        Its bundle stays in the artifact store until ``aimass gc``.
        """
        base = self.store.bases.get(project, name, version)
        latest = self.store.bases.get(project, name).version == version
        self.refuse_while_jobs_read(project, field="base", what="base", ref=base.ref, latest=latest)
        users = self.trained_from(base.ref, project=project)
        if users:
            shown = ", ".join(users[:10]) + (
                f" and {len(users) - 10} more" if len(users) > 10 else ""
            )
            raise Conflict(
                f"base {base.ref} is the base of {shown}: their lineage and license terms "
                "come from it; delete those model versions first "
                "('aimass models delete-version NAME VERSION')",
                base=base.ref,
                models=users[:100],
            )
        return self.store.bases.delete_version(project, name, version)
