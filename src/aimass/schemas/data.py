"""Wire schemas of datasets, packaged samples and base models.

Uploading, importing (optionally de-identifying) and listing dataset versions,
the packaged sample datasets, and importing and listing base models.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from aimass.schemas._common import Created, Name, Ref, _In, _Out

if TYPE_CHECKING:
    # Types only: schemas and entities are sibling layers; converters read attributes.
    from aimass import entities as e


# -- datasets -----------------------------------------------------------------------


class DeidentifyIn(_In):
    """De-identify PII before the dataset is stored (the raw values are never kept)."""

    mode: Literal["mask", "redact", "pseudonymize"]
    fields: list[str] = Field(default_factory=list, max_length=64)
    recognizers: list[str] | None = Field(default=None, max_length=64)
    ner_model: Ref | None = None


class _ImportFields(_In):
    kind: Literal["text", "tokens", "pairs"] = Field(
        default="text",
        description="text (text + optional label), tokens (tokens + BIO tags) or pairs "
        "(prompt/response or source/target).",
    )
    text_field: str | None = Field(
        default=None,
        max_length=255,
        description="Field with the input (default per kind: text, tokens, prompt or source).",
    )
    label_field: str | None = Field(
        default=None,
        max_length=255,
        description="Field with the label (default per kind: label when present, tags, "
        "response or target).",
    )
    split_field: str | None = Field(default=None, max_length=255)
    label_type: Literal["auto", "string", "integer", "float"] = "auto"
    seed: int = 0
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    deidentify: DeidentifyIn | None = None


class DatasetUpload(_ImportFields):
    """Upload a dataset in the request: JSONL/CSV as text, Parquet as base64."""

    name: Name
    format: Literal["jsonl", "csv", "parquet", "conll"]
    content: str | None = None
    content_base64: str | None = None


class DatasetImport(_ImportFields):
    """Import a file the server may read (inside ``AIMASS_IMPORT_DIRS``)."""

    name: Name
    path: str = Field(min_length=1, max_length=4096)
    format: Literal["jsonl", "csv", "parquet", "conll"] | None = None


class SampleImport(_In):
    """Import one of the packaged sample datasets."""

    sample: Name
    name: Name | None = None
    seed: int = 0
    deidentify: DeidentifyIn | None = None


class SampleOut(_Out):
    """A packaged sample dataset."""

    name: str
    package: str
    task: str
    description: str
    source: str
    license: str
    installed: bool

    @classmethod
    def from_entity(cls, sample: Any) -> SampleOut:
        """Convert a packaged sample (:class:`aimass.data.samples.Sample`)."""
        return cls(
            name=sample.name,
            package=sample.package,
            task=sample.task,
            description=sample.description,
            source=sample.source,
            license=sample.license,
            installed=sample.available(),
        )


class PackagedBaseOut(_Out):
    """A pretrained base an installable package carries (``aimass bases import NAME``)."""

    name: str
    package: str
    description: str
    license: str
    commercial_use: bool
    installed: bool

    @classmethod
    def from_entity(cls, base: Any) -> PackagedBaseOut:
        """Convert a packaged base (:class:`aimass.jobs.bases.PackagedBase`)."""
        return cls(
            name=base.name,
            package=base.package,
            description=base.description,
            license=base.license,
            commercial_use=base.commercial_use,
            installed=base.available(),
        )


class DatasetSchemaOut(_Out):
    """What a dataset's columns mean."""

    text_field: str
    label_field: str | None
    label_type: str | None
    extra_fields: list[str]
    split_source: str
    kind: str = "text"


class DatasetVersionOut(_Out):
    """One immutable dataset version."""

    project: str
    name: str
    version: int
    digest: str
    format: str
    data_schema: DatasetSchemaOut = Field(alias="schema")
    num_rows: int
    splits: dict[str, int]
    stats: dict[str, Any]
    provenance: dict[str, Any]
    created_at: datetime
    created: Created = None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_entity(cls, d: e.DatasetVersion) -> DatasetVersionOut:
        """Convert a :class:`~aimass.entities.DatasetVersion` (the storage URI stays inside)."""
        s = d.schema
        return cls(
            project=d.project,
            name=d.name,
            version=d.version,
            digest=d.digest,
            format=d.format,
            data_schema=DatasetSchemaOut(
                text_field=s.text_field,
                label_field=s.label_field,
                label_type=s.label_type,
                extra_fields=list(s.extra_fields),
                split_source=s.split_source,
                kind=s.kind,
            ),
            num_rows=d.num_rows,
            splits=d.splits,
            stats=d.stats,
            provenance=d.provenance,
            created_at=d.created_at,
        )


# -- base models ------------------------------------------------------------------------


class BaseImport(_In):
    """Import a packaged base by name, or a Hugging Face directory inside the import dirs."""

    source: str | None = Field(default=None, max_length=63)
    path: str | None = Field(default=None, max_length=4096)
    name: Name | None = None


class BaseFromModel(_In):
    """Register a trained model version as a base, its task head dropped."""

    model: Ref
    name: Name


class BaseShrink(_In):
    """A smaller base cut from a registered one, as a distilled student's start."""

    base: Ref
    name: Name
    layers: int = Field(ge=1, le=1024)
    pick: Literal["first", "spread"] = "first"
    intermediate_size: int = Field(default=0, ge=0)


class TokenizerTrain(_In):
    """Train a tokenizer on a dataset's training split and register it."""

    dataset: Ref
    name: Name
    kind: Literal["wordpiece", "bpe"] = "wordpiece"
    vocab_size: int = Field(default=8000, ge=1)
    min_frequency: int = Field(default=2, ge=1)


class BaseScratch(_In):
    """A randomly initialised base of a preset size around a registered tokenizer."""

    name: Name
    architecture: str = Field(max_length=63)
    tokenizer: Ref
    preset: str = Field(default="tiny", max_length=63)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    overrides: dict[str, int | float] = Field(default_factory=dict, max_length=32)


class BaseModelOut(_Out):
    """A registered base model version."""

    project: str
    name: str
    version: int
    digest: str
    architecture: str
    family: str
    num_parameters: int
    provenance: dict[str, Any]
    created_at: datetime
    created: Created = None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_entity(cls, b: e.BaseModel) -> BaseModelOut:
        """Convert a :class:`~aimass.entities.BaseModel`."""
        return cls(
            project=b.project,
            name=b.name,
            version=b.version,
            digest=b.digest,
            architecture=b.architecture,
            family=b.family,
            num_parameters=b.num_parameters,
            provenance=b.provenance,
            created_at=b.created_at,
        )
