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

__all__ = ["SplitData", "publish_dataset", "read_rows", "read_split", "write_parquet"]


@dataclass(frozen=True)
class SplitData:
    """The rows of one split: texts, labels (or None) and extra columns.

    ``tokens``/``tags`` are set for ``tokens`` datasets, ``targets`` for ``pairs``
    datasets (``texts`` then holds the prompts or sources).
    """

    texts: list[str]
    labels: list[Any] | None
    extras: dict[str, list[str | None]]
    tokens: list[list[str]] | None = None
    tags: list[list[str]] | None = None
    targets: list[str] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def sample(self, n: int, *, seed: int) -> SplitData:
        """At most ``n`` rows, drawn by a seeded shuffle (order of the draw kept)."""
        if n >= len(self):
            return self
        import numpy as np

        keep = np.random.Generator(np.random.PCG64(seed)).permutation(len(self))[:n].tolist()

        def pick(values: list[Any] | None) -> list[Any] | None:
            return None if values is None else [values[i] for i in keep]

        return SplitData(
            texts=[self.texts[i] for i in keep],
            labels=pick(self.labels),
            extras={k: [v[i] for i in keep] for k, v in self.extras.items()},
            tokens=pick(self.tokens),
            tags=pick(self.tags),
            targets=pick(self.targets),
        )


def write_parquet(prepared: PreparedDataset, path: Path) -> None:
    """Write ``prepared`` to ``path`` as one zstd-compressed Parquet file."""
    import pyarrow.parquet as pq

    pq.write_table(prepared.to_arrow(), path, compression="zstd")


def read_rows(
    path: Path, *, split: str | None, offset: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """``limit`` stored rows from ``offset`` (of ``split``, or all), as stored, and how many
    rows there are: a page of a dataset, read without converting the rest."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if split is not None and split not in SPLITS:
        raise InvalidArgument(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if offset < 0 or not 1 <= limit <= 1000:
        raise InvalidArgument(f"rows {offset}+{limit}: offset >= 0 and 1 <= limit <= 1000")
    table = pq.read_table(path)
    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    return table.slice(offset, limit).to_pylist(), table.num_rows


def read_split(path: Path, split: str | None) -> SplitData:
    """Rows of ``split`` (all rows when ``None``) from a stored version."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if split is not None and split not in SPLITS:
        raise InvalidArgument(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    table = pq.read_table(path)
    if split is not None:
        table = table.filter(pc.equal(table["split"], split))
    stored = ("text", "label", "split", "tokens", "tags", "target")
    names = [n for n in table.column_names if n not in stored]

    def column(name: str) -> list[Any] | None:
        return table[name].to_pylist() if name in table.column_names else None

    return SplitData(
        texts=table["text"].to_pylist(),
        labels=column("label"),
        extras={n: table[n].to_pylist() for n in names},
        tokens=column("tokens"),
        tags=column("tags"),
        targets=column("target"),
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
