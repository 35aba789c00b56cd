"""Wire schemas of pipelines: creating a version, a version as returned, running one.

The spec travels as plain JSON (its steps are checked by the server, which answers
every problem at once, each naming the step); a version comes back with its
models pinned to ``NAME@VERSION``. A pipeline prediction is a model prediction
(``label``, ``score``, ``probabilities``) plus ``abstained``, ``decided_by`` and
the ``trace`` of the steps the input went through.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from aimass.schemas._common import Created, Name, _In, _Out

if TYPE_CHECKING:
    from aimass import entities as e


class PipelineCreate(_In):
    """A new pipeline version: the spec (``steps``, optional ``entry``) and a description."""

    name: Name
    spec: dict[str, Any] = Field(
        description="{'steps': [...], 'entry': STEP}; see docs/pipelines.md for the step types."
    )
    description: str = Field(default="", max_length=2000)


class PipelineVersionOut(_Out):
    """One immutable pipeline version: its pinned spec, the models it runs, its aliases."""

    project: str
    name: str
    version: int
    digest: str
    spec: dict[str, Any]
    description: str
    models: list[str]
    aliases: list[str]
    created_by: str | None
    created_at: datetime
    evaluations: dict[str, Any] = Field(
        default_factory=dict,
        description="Evaluation reports by name: dataset, split, headline numbers and "
        "the report's URI (fetch it at .../reports/{name}/report.html).",
    )
    created: Created = None

    @classmethod
    def from_entity(cls, p: e.PipelineVersion) -> PipelineVersionOut:
        """Convert a :class:`~aimass.entities.PipelineVersion`."""
        return cls(
            project=p.project,
            name=p.name,
            version=p.version,
            digest=p.digest,
            spec=p.spec,
            description=p.description,
            models=list(p.models),
            aliases=list(p.aliases),
            created_by=p.created_by,
            created_at=p.created_at,
            evaluations=p.evaluations,
        )


class PipelinePredictResponse(_Out):
    """One result per input, in order, and the pipeline version that made them.

    Each result: ``label`` (``abstain`` when a threshold step abstained, with a
    ``reason``), ``score``, ``probabilities``, ``abstained``, ``decided_by``
    (the step and model that decided), ``trace`` (every step the input went
    through) and, when asked, the deciding model's ``explanation``.
    """

    pipeline: str
    version: int
    predictions: list[dict[str, Any]]
