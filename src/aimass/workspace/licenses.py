"""Whose weights a model or a training job rests on, and whether their licenses allow
commercial use (``AIMASS_COMMERCIAL_USE_ONLY``).

A model rests on its base and, when it was distilled, on its teacher's models, which
rest on their own bases and teachers in turn. A base records its terms in its
provenance (``commercial_use``, ``license``); a base made from another inherits them.
Imported models and bases without a record count as usable: there is nothing to check.
"""

from __future__ import annotations

from dataclasses import dataclass

from aimass.entities import BaseModel, ModelVersion
from aimass.errors import NotFound
from aimass.store import Store

__all__ = ["Restriction", "restriction"]


@dataclass(frozen=True)
class Restriction:
    """Weights that are not licensed for commercial use, or whose license is unknown.

    Attributes:
        which: What they are, as a user reads it (``base m3e-small@1``, ``teacher
            zh@1's base m3e-small@1``).
        field: ``base`` or ``teacher``: the training input it came through.
        terms: The recorded license; ``None`` when the weights are no longer
            registered, so their license cannot be checked.
    """

    which: str
    field: str
    terms: str | None

    @property
    def reason(self) -> str:
        """Why these weights cannot be used commercially, as one clause."""
        if self.terms is None:
            return f"{self.which} is no longer registered, so its license cannot be checked"
        return f"{self.which} is not licensed for commercial use ({self.terms})"


def restriction(
    store: Store,
    project: str,
    *,
    base: BaseModel | None = None,
    teacher: str | None = None,
    model: ModelVersion | None = None,
) -> Restriction | None:
    """The first weights behind a training job (``base``, ``teacher``) or a trained
    ``model`` that may not be used commercially, or ``None`` when all may be.

    Teachers are followed to their own bases and teachers, so a student distilled
    from a model distilled from research weights is caught as well.
    """
    return _Walk(store, project).first(
        base=base, teacher=teacher, model=model, via="", field="base"
    )


class _Walk:
    """One search through the lineage; each model is visited once."""

    def __init__(self, store: Store, project: str) -> None:
        self.store = store
        self.project = project
        self.seen: set[str] = set()

    def first(
        self,
        *,
        base: BaseModel | None,
        teacher: str | None,
        model: ModelVersion | None,
        via: str,
        field: str,
    ) -> Restriction | None:
        if model is not None:
            if model.ref in self.seen:
                return None
            self.seen.add(model.ref)
            found = self._base_of(model, via, field)
            if isinstance(found, Restriction):
                return found
            base = found
            teacher = model.lineage.config.get("teacher") or None
            via = f"{via}{model.ref}'s "
        if base is not None and not base.provenance.get("commercial_use", True):
            terms = base.provenance.get("license") or "license not recorded"
            return Restriction(f"{via}base {base.ref}", field, str(terms))
        if teacher is None:
            return None
        return self._teacher(str(teacher), via)

    def _base_of(self, model: ModelVersion, via: str, field: str) -> BaseModel | Restriction | None:
        from aimass.jobs.train import version_of

        if not model.lineage.base:  # imported from a directory: nothing recorded
            return None
        try:
            return self.store.bases.get(self.project, *version_of(model.lineage.base, "base model"))
        except NotFound:
            which = f"{via}{model.ref}'s base {model.lineage.base}"
            return Restriction(which, field, None)

    def _teacher(self, teacher: str, via: str) -> Restriction | None:
        from aimass.jobs.distill import find_teacher

        try:
            models = find_teacher(self.store, self.project, teacher).models
        except NotFound:
            return Restriction(f"{via}teacher {teacher}", "teacher", None)
        for model in models:
            found = self.first(
                base=None, teacher=None, model=model, via=f"{via}teacher ", field="teacher"
            )
            if found is not None:
                return found
        return None
