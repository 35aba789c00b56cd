"""Decompression bombs: a small Parquet file that decodes to hundreds of MB is refused early."""

from __future__ import annotations

import base64
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aimass.data.readers import read_records
from aimass.errors import PayloadTooLarge

ROWS = 10_000
ROW_TEXT = "good " * 10_000  # 50,000 characters: 10,000 rows decode to 500 MB


def write_bomb(path: Path, *, rows: int = ROWS, arrow_schema: bool = True) -> Path:
    """A Parquet file of ``rows`` copies of one long text: dictionary-encoded, so tiny on disk.

    Built from a dictionary array, so the 500 MB of text never exists in this process.
    """
    text = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([ROW_TEXT]))
    label = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["pos"]))
    pq.write_table(
        pa.table({"text": text, "label": label}),
        path,
        compression="zstd",
        store_schema=arrow_schema,  # without it, readers see plain strings
    )
    return path


@pytest.mark.parametrize("arrow_schema", [True, False])
def test_a_small_parquet_that_expands_500_times_is_refused_after_one_small_batch(
    tmp_path, arrow_schema
):
    bomb = write_bomb(tmp_path / "bomb.parquet", arrow_schema=arrow_schema)
    assert bomb.stat().st_size < 5_000
    records = read_records(
        bomb, "parquet", max_row_bytes=1_000_000, max_total_bytes=2**40, max_ratio=100
    )
    with pytest.raises(PayloadTooLarge, match="AIMASS_MAX_DECOMPRESSION_RATIO") as info:
        for _ in records:
            pass
    # Stopped after the first bounded batch (64 rows of 50 kB), not at 500 MB.
    assert info.value.details["decoded"] < 5_000_000


def test_the_dataset_size_limit_is_checked_from_the_footer_before_decoding(tmp_path):
    big = tmp_path / "big.parquet"
    # One 20 MB value: its dictionary page's uncompressed size is in the footer.
    pq.write_table(
        pa.table({"text": ["x" * 20_000_000], "label": ["pos"]}), big, compression="zstd"
    )
    records = read_records(big, "parquet", max_row_bytes=10**9, max_total_bytes=10_000_000)
    with pytest.raises(PayloadTooLarge, match="AIMASS_MAX_DATASET_BYTES"):
        next(iter(records))


def test_text_formats_are_capped_by_their_file_size(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "good", "label": "pos"}\n' * 100)
    with pytest.raises(PayloadTooLarge, match="AIMASS_MAX_DATASET_BYTES"):
        read_records(path, "jsonl", max_row_bytes=1000, max_total_bytes=1000)


def test_an_ordinary_parquet_file_still_imports(tmp_path):
    path = tmp_path / "ok.parquet"
    rows = [{"text": f"review number {i} was good", "label": "pos"} for i in range(500)]
    pq.write_table(pa.Table.from_pylist(rows), path, compression="zstd")
    got = list(
        read_records(path, "parquet", max_row_bytes=1000, max_total_bytes=10**9, max_ratio=100)
    )
    assert [r.fields for r in got] == rows


def test_a_bomb_uploaded_as_content_is_refused_and_stores_nothing(workspace, tmp_path):
    bomb = write_bomb(tmp_path / "bomb.parquet")
    content = base64.b64encode(bomb.read_bytes()).decode()
    with pytest.raises(PayloadTooLarge):
        workspace.import_dataset_content(content, name="bomb", fmt="parquet", base64_encoded=True)
    assert workspace.store.datasets.list("default") == []
