"""Decompression bombs (issue 13, finding 4): a small Parquet file that decodes to hundreds
of MB is refused from its footer or after one bounded batch, text formats are capped by
their size, and an upload of either over the API stores nothing."""

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
        workspace.datasets.import_content(content, name="bomb", fmt="parquet", base64_encoded=True)
    assert workspace.store.datasets.list("default") == []


def test_a_bomb_uploaded_over_the_api_is_413_and_stores_nothing(client, admin, tmp_path):
    bomb = write_bomb(tmp_path / "bomb.parquet")
    body = {
        "name": "bomb",
        "format": "parquet",
        "content_base64": base64.b64encode(bomb.read_bytes()).decode(),
    }
    r = client.post("/v1/projects/default/datasets", headers=admin, json=body)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert "AIMASS_MAX_DECOMPRESSION_RATIO" in r.json()["error"]["message"]
    assert client.get("/v1/projects/default/datasets/bomb", headers=admin).status_code == 404


def test_millions_of_tiny_rows_are_refused_after_a_bounded_number(tmp_path):
    """A row-count bomb: 4 million one-character rows compress to a few kB."""
    rows = 4_000_000
    indices = pa.array([0] * rows, pa.int32())
    text = pa.DictionaryArray.from_arrays(indices, pa.array(["a"]))
    label = pa.DictionaryArray.from_arrays(indices, pa.array(["p"]))
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"text": text, "label": label}), path, compression="zstd")
    assert path.stat().st_size < 100_000
    records = read_records(
        path, "parquet", max_row_bytes=1_000_000, max_total_bytes=2**40, max_ratio=100
    )
    seen: list[object] = []
    with pytest.raises(PayloadTooLarge):
        seen.extend(records)
    assert len(seen) < rows // 10, f"{len(seen):,} rows decoded before the refusal"


def test_a_deeply_nested_json_body_is_a_400(client, admin):
    """A JSON nesting bomb in a predict body is a clean 400."""
    deep = b"[" * 100_000 + b"]" * 100_000
    r = client.post(
        "/v1/projects/default/models/sentiment:predict",
        headers={**admin, "Content-Type": "application/json"},
        content=b'{"inputs": ' + deep + b"}",
    )
    assert r.status_code == 400, r.text


def test_a_deeply_nested_jsonl_row_is_a_400_naming_the_line(client, admin):
    import json

    row = '{"text": ' + "[" * 100_000 + "]" * 100_000 + ', "label": "a"}\n'
    body = {"name": "nested", "format": "jsonl", "content": '{"text": "ok", "label": "a"}\n' + row}
    r = client.post(
        "/v1/projects/default/datasets",
        headers={**admin, "Content-Type": "application/json"},
        content=json.dumps(body).encode(),
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"]["line"] == 2
