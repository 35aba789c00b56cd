"""Reading and writing stored dataset versions (Parquet)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.artifacts.storage import ArtifactStore
from aimass.data.importer import PreparedDataset
from aimass.data.splits import SPLITS
from aimass.entities import DatasetVersion
from aimass.errors import InvalidArgument
from aimass.store import Store

__all__ = ["SplitData", "publish_dataset", "read_split", "write_parquet"]


@dataclass(frozen=True)
class SplitData:
    """The rows of one split: texts, labels (or None) and extra columns."""

    texts: list[str]
    labels: list[Any] | None
    extras: dict[str, list[str | None]]

    def __len__(self) -> int:
        return len(self.texts)


def write_parquet(prepared: PreparedDataset, path: Path) -> None:
    """Write ``prepared`` to ``path`` as one zstd-compressed Parquet file."""
    import pyarrow.parquet as pq

    pq.write_table(prepared.to_arrow(), path, compression="zstd")


def read_split(path: Path, split: str | None) -> SplitData:
    """Rows of ``split`` (all rows when ``None``) from a stored version."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if split is not None and split not in SPLITS:
        raise InvalidArgument(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    table = pq.read_table(path)
    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    names = [n for n in table.column_names if n not in ("text", "label", "split")]
    return SplitData(
        texts=table["text"].to_pylist(),
        labels=table["label"].to_pylist() if "label" in table.column_names else None,
        extras={n: table[n].to_pylist() for n in names},
    )


def publish_dataset(
    prepared: PreparedDataset,
    *,
    store: Store,
    artifacts: ArtifactStore,
    name: str,
    project: str,
    fmt: str,
    provenance: dict[str, Any],
) -> tuple[DatasetVersion, bool]:
    """Write the Parquet file (once per content digest), then register the version.

    Returns ``(version, created)``; identical content returns the existing version.
    """
    key = f"datasets/{prepared.digest}.parquet"
    if not artifacts.exists(key):
        with artifacts.staging() as stage:
            staged = stage / "data.parquet"
            write_parquet(prepared, staged)
            artifacts.publish(staged, key)
    return store.datasets.create_version(
        project,
        name,
        digest=prepared.digest,
        uri=artifacts.uri(key),
        format=fmt,
        schema=dict(prepared.schema.__dict__, extra_fields=list(prepared.schema.extra_fields)),
        num_rows=prepared.num_rows,
        splits=prepared.split_counts(),
        stats=prepared.stats,
        provenance=provenance,
    )
