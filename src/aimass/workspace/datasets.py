"""``ws.datasets``: import (file, request body, packaged sample), resolve and list datasets.

Every import validates each row before anything is stored, de-identifies first
when asked, and returns ``(version, created)``: identical content under the same
name is the existing version.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.data.importer import ImportOptions, prepare_dataset
from aimass.data.kinds import get_kind
from aimass.data.readers import detect_format, read_records
from aimass.data.samples import get_sample
from aimass.data.tables import publish_dataset
from aimass.entities import (
    DatasetVersion,
)
from aimass.errors import InvalidArgument
from aimass.refs import parse_ref, validate_name
from aimass.store import DEFAULT_PROJECT
from aimass.texts import check_unicode
from aimass.workspace.privacy import DeidentifyOptions

if TYPE_CHECKING:
    pass
from aimass.workspace._service import Service

__all__ = ["DatasetService"]


def _text_fields(options: ImportOptions) -> tuple[str, ...]:
    """The source fields holding free text that de-identification must clean (a
    ``tokens`` dataset's token lists are cleaned token by token instead)."""
    if options.kind == "tokens":
        return ()
    kind = get_kind(options.kind)
    inputs = (options.text_field,) if options.text_field else kind.input_fields
    if options.kind != "pairs":
        return tuple(inputs)
    # Both sides of a pair are free text (a response can repeat the prompt's names).
    outputs = (options.label_field,) if options.label_field else kind.label_fields
    return (*inputs, *outputs)


class DatasetService(Service):
    """``ws.datasets``: versioned, validated, content-addressed datasets."""

    def import_file(
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
        return self._store(
            prepared, name=name, project=project, fmt=fmt, provenance={**provenance, "format": fmt}
        )

    def import_content(
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
            return self.import_file(
                staged,
                name=name,
                project=project,
                fmt=fmt,
                options=options,
                provenance={"source": "upload", "sha256": digest, "bytes": len(data)},
                deidentify=deidentify,
            )

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
        return self._store(
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
        token_fields: tuple[str, ...] = ()
        if options.kind == "tokens":
            # Token by token, so that each tag stays on its token.
            token_fields = (options.text_field or get_kind("tokens").input_fields[0],)
        engine = build_deidentifier(self._ws, deidentify, project=project)
        cleaned = deidentify_records(records, engine, fields=fields, token_fields=token_fields)
        prepared = prepare_dataset(cleaned, options)
        provenance["deidentification"] = {
            "fields": [*token_fields, *fields],
            **engine.report.to_dict(),
        }
        return prepared

    def _store(self, prepared: Any, **fields: Any) -> tuple[DatasetVersion, bool]:
        return publish_dataset(prepared, store=self.store, artifacts=self.artifacts, **fields)

    def get(self, ref: str, *, project: str = DEFAULT_PROJECT) -> DatasetVersion:
        """Resolve ``NAME`` (latest) or ``NAME@VERSION``."""
        parsed = parse_ref(ref, kind="dataset")
        if parsed.alias not in (None, "latest"):
            raise InvalidArgument(f"dataset reference {ref!r}: use NAME or NAME@VERSION")
        return self.store.datasets.get(project, parsed.name, parsed.version)

    def list(self, *, project: str = DEFAULT_PROJECT) -> list[DatasetVersion]:
        """The latest version of every dataset."""
        return self.store.datasets.list(project)

    def versions(
        self, name: str, *, project: str = DEFAULT_PROJECT
    ) -> builtins.list[DatasetVersion]:
        """Every version of dataset ``name``, oldest first."""
        return self.store.datasets.versions(project, name)

    def delete_version(
        self, name: str, version: int, *, project: str = DEFAULT_PROJECT
    ) -> DatasetVersion:
        """Delete a version; returns it. Its file stays in the artifact store until
        ``aimass gc``; model versions trained on it keep its name and digest in their
        lineage (their cards say it was deleted). Refused (Conflict naming them) while a
        queued or running job reads it."""
        versions = self.versions(name, project=project)
        latest = bool(versions) and versions[-1].version == version
        self.refuse_while_jobs_read(
            project, field="dataset", what="dataset", ref=f"{name}@{version}", latest=latest
        )
        return self.store.datasets.delete_version(project, name, version)

    def rows(
        self,
        ref: str,
        *,
        project: str = DEFAULT_PROJECT,
        split: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """A page of a version's rows as stored (de-identified text stays de-identified),
        and the number of rows of ``split`` (all splits when ``None``)."""
        from aimass.data.tables import read_rows

        version = self.get(ref, project=project)
        path = self.artifacts.resolve(version.uri)
        return read_rows(path, split=split, offset=offset, limit=limit)
