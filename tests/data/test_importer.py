"""Dataset import: every bad row is named, nothing is stored; good data is versioned."""

import json

import pyarrow.parquet as pq
import pytest

from aimass.data.importer import ImportOptions
from aimass.errors import DatasetValidationError, ErrorCode, InvalidArgument
from tests.conftest import sentiment_rows, write_jsonl


def assert_nothing_stored(workspace):
    assert workspace.store.datasets.list("default") == []
    datasets = workspace.artifacts.root / "datasets"
    assert not datasets.exists() or not any(datasets.iterdir())


def rejected(workspace, path, *, line, field=None, match=None, **kwargs):
    with pytest.raises(DatasetValidationError) as info:
        workspace.datasets.import_file(path, name="d", **kwargs)
    err = info.value
    assert err.code == ErrorCode.INVALID_ARGUMENT
    assert err.details["line"] == line
    if field is not None:
        assert err.details["field"] == field
    if match is not None:
        assert match in err.message
    assert_nothing_stored(workspace)
    return err


def lines(tmp_path, *rows, name="data.jsonl"):
    path = tmp_path / name
    path.write_bytes(b"".join(r if isinstance(r, bytes) else (r + "\n").encode() for r in rows))
    return path


def test_empty_file(workspace, tmp_path):
    rejected(workspace, lines(tmp_path), line=0, match="no rows")


def test_blank_lines_only(workspace, tmp_path):
    rejected(workspace, lines(tmp_path, "", "   "), line=0, match="no rows")


def test_missing_text_field_names_line_and_field(workspace, tmp_path):
    path = lines(tmp_path, '{"text": "a", "label": "x"}', '{"txt": "b", "label": "y"}')
    err = rejected(workspace, path, line=2, field="text", match="line 2: field 'text' is missing")
    assert "--text-field" in err.message


def test_missing_label_when_others_have_one(workspace, tmp_path):
    path = lines(
        tmp_path, '{"text": "a", "label": "x"}', '{"text": "b"}', '{"text": "c", "label": "y"}'
    )
    rejected(workspace, path, line=2, field="label", match="is missing")


def test_label_on_a_later_line_of_an_unlabelled_file(workspace, tmp_path):
    path = lines(tmp_path, '{"text": "a"}', '{"text": "b", "label": "y"}')
    rejected(workspace, path, line=2, field="label", match="label every row or none")


def test_mixed_label_types(workspace, tmp_path):
    path = lines(tmp_path, '{"text": "a", "label": "pos"}', '{"text": "b", "label": 1}')
    err = rejected(workspace, path, line=2, field="label", match="mixed label types")
    assert "line 1" in err.message


def test_integer_and_float_labels_mix_into_float(workspace, tmp_path):
    path = lines(
        tmp_path,
        *[
            json.dumps({"text": f"t{i}", "label": v})
            for i, v in enumerate([1, 2.5, 3, 4, 5, 6, 7, 8, 9, 10])
        ],
    )
    version, _ = workspace.datasets.import_file(path, name="d")
    assert version.schema.label_type == "float"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("true", "boolean"),
        ("null", "empty"),
        ('""', "empty"),
        ("[1]", "string or a number"),
        ("NaN", "finite"),
    ],
)
def test_bad_label_values(workspace, tmp_path, value, match):
    path = lines(tmp_path, '{"text": "a", "label": "x"}', f'{{"text": "b", "label": {value}}}')
    rejected(workspace, path, line=2, field="label", match=match)


def test_non_utf8_bytes_name_the_line(workspace, tmp_path):
    path = lines(tmp_path, '{"text": "ok", "label": "x"}', b'{"text": "caf\xe9", "label": "y"}\n')
    rejected(workspace, path, line=2, match="not valid UTF-8")


def test_invalid_json(workspace, tmp_path):
    rejected(workspace, lines(tmp_path, '{"text": "a"}', '{"text": '), line=2, match="invalid JSON")


def test_not_an_object(workspace, tmp_path):
    rejected(workspace, lines(tmp_path, '["text", "a"]'), line=1, match="JSON object")


def test_oversized_row(workspace, tmp_path, settings):
    settings.max_row_bytes = 100
    path = lines(tmp_path, '{"text": "a"}', json.dumps({"text": "x" * 200}))
    rejected(workspace, path, line=2, match="over the limit")


def test_oversized_text(workspace, tmp_path, settings):
    settings.max_text_chars = 10
    rejected(
        workspace,
        lines(tmp_path, json.dumps({"text": "x" * 11})),
        line=1,
        field="text",
        match="over the limit",
    )


@pytest.mark.parametrize(
    ("value", "match"), [('""', "empty"), ("5", "must be a string"), ('"   "', "empty")]
)
def test_bad_text_values(workspace, tmp_path, value, match):
    rejected(workspace, lines(tmp_path, f'{{"text": {value}}}'), line=1, field="text", match=match)


def test_bad_split_value(workspace, tmp_path):
    path = lines(tmp_path, '{"text": "a", "s": "train"}', '{"text": "b", "s": "dev"}')
    rejected(
        workspace,
        path,
        line=2,
        field="s",
        match="train, validation, test",
        options=ImportOptions(split_field="s"),
    )


def test_csv_field_count_mismatch(workspace, tmp_path):
    path = lines(tmp_path, "text,label", "a,x", "b,y,z", name="d.csv")
    rejected(workspace, path, line=3, match="expected 2 CSV fields")


def test_csv_multiline_records_keep_their_start_line(workspace, tmp_path):
    path = lines(tmp_path, "text,label", '"first\nstill first",x', '"",y', name="d.csv")
    rejected(workspace, path, line=4, field="text", match="empty")


def test_csv_numeric_labels_are_parsed(workspace, tmp_path):
    path = lines(tmp_path, "text,label", *[f"t{i},{i % 3}" for i in range(30)], name="d.csv")
    version, _ = workspace.datasets.import_file(path, name="d")
    assert version.schema.label_type == "integer"
    assert version.labels == ["0", "1", "2"]


def test_csv_label_type_can_be_forced(workspace, tmp_path):
    path = lines(tmp_path, "text,label", "a,1", "b,unknown", name="d.csv")
    rejected(workspace, path, line=3, field="label", match="mixed label types")
    version, _ = workspace.datasets.import_file(
        path, name="d", options=ImportOptions(label_type="string")
    )
    assert version.labels == ["1", "unknown"]


def test_unknown_format(workspace, tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("x")
    with pytest.raises(InvalidArgument, match="--format"):
        workspace.datasets.import_file(path, name="d")
    assert_nothing_stored(workspace)


def test_missing_file(workspace, tmp_path):
    with pytest.raises(InvalidArgument, match="does not exist"):
        workspace.datasets.import_file(tmp_path / "nope.jsonl", name="d")


def test_invalid_name_is_refused_before_reading(workspace, sentiment_file):
    with pytest.raises(InvalidArgument):
        workspace.datasets.import_file(sentiment_file, name="../escape")
    assert_nothing_stored(workspace)


def test_a_good_import_is_content_addressed(workspace, sentiment_file):
    first, created = workspace.datasets.import_file(sentiment_file, name="reviews")
    again, created_again = workspace.datasets.import_file(sentiment_file, name="reviews")
    assert (created, created_again) == (True, False)
    assert again.version == first.version == 1
    assert first.num_rows == 200
    assert sum(first.splits.values()) == 200
    assert first.schema.extra_fields == ("group",)
    counts = first.stats["label_counts"]
    assert counts["train"] == {"neg": 80, "pos": 80}
    assert counts["validation"] == {"neg": 10, "pos": 10}
    table = pq.read_table(workspace.artifacts.resolve(first.uri))
    assert table.column_names == ["text", "label", "split", "group"]


def test_new_content_or_seed_makes_a_new_version(workspace, sentiment_file, tmp_path):
    first, _ = workspace.datasets.import_file(sentiment_file, name="reviews")
    reseeded, created = workspace.datasets.import_file(
        sentiment_file, name="reviews", options=ImportOptions(seed=1)
    )
    assert created and reseeded.version == 2
    assert reseeded.digest != first.digest
    other = write_jsonl(tmp_path / "o.jsonl", sentiment_rows(50, seed=3))
    assert workspace.datasets.import_file(other, name="reviews")[0].version == 3


def test_parquet_round_trip_with_row_numbers(workspace, tmp_path):
    import pyarrow as pa

    table = pa.table({"text": ["a", "b", ""], "label": ["x", "y", "x"]})
    pq.write_table(table, tmp_path / "d.parquet")
    rejected(workspace, tmp_path / "d.parquet", line=3, field="text", match="row 3")


def test_given_splits_are_kept(workspace, tmp_path):
    rows = [
        {"text": f"t{i}", "label": "ab"[i % 2], "part": ["train", "validation", "test"][i % 3]}
        for i in range(30)
    ]
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    version, _ = workspace.datasets.import_file(
        path, name="d", options=ImportOptions(split_field="part")
    )
    assert version.splits == {"train": 10, "validation": 10, "test": 10}
    assert version.schema.split_source == "field"


def test_reserved_column_names_clash(workspace, tmp_path):
    path = lines(tmp_path, '{"body": "a", "text": "b"}')
    with pytest.raises(InvalidArgument, match="clash"):
        workspace.datasets.import_file(path, name="d", options=ImportOptions(text_field="body"))


# -- tokens (NER) datasets -----------------------------------------------------------


def tokens_row(tokens, tags, **extra):
    return json.dumps({"tokens": tokens, "tags": tags, **extra})


TOKENS = ImportOptions(kind="tokens")


def test_tokens_dataset_is_stored_with_lists_and_entity_counts(workspace, tmp_path):
    rows = [
        tokens_row(["Alice", "lives", "in", "New", "York"], ["B-PER", "O", "O", "B-LOC", "I-LOC"]),
        tokens_row(["Bob", "Smith", "works"], ["B-PER", "I-PER", "O"]),
    ] * 10
    path = lines(tmp_path, *[r[:-1] + f', "n": {i}}}' for i, r in enumerate(rows)])
    version, _ = workspace.datasets.import_file(path, name="d", options=TOKENS)
    assert version.schema.kind == "tokens"
    assert version.schema.label_type == "tags"
    assert version.stats["entity_types"] == ["LOC", "PER"]
    assert version.labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    counts = version.stats["entity_counts"]
    assert sum(c["PER"] for c in counts.values()) == 20
    table = pq.read_table(workspace.artifacts.resolve(version.uri))
    assert table.column_names == ["text", "tokens", "tags", "split", "n"]
    assert table["text"][0].as_py() == "Alice lives in New York"
    assert table["tags"][0].as_py() == ["B-PER", "O", "O", "B-LOC", "I-LOC"]


def test_tokens_and_tags_length_mismatch_names_the_line(workspace, tmp_path):
    path = lines(
        tmp_path,
        tokens_row(["a", "b"], ["O", "O"]),
        tokens_row(["a", "b"], ["O", "O"]),
        tokens_row(["a", "b", "c"], ["O", "O"]),
    )
    rejected(
        workspace,
        path,
        line=3,
        field="tags",
        match="line 3: field 'tags' has 2 tags for 3 tokens",
        options=TOKENS,
    )


@pytest.mark.parametrize(
    ("tags", "match"),
    [
        (["O", "I-PER"], "tag 2 'I-PER' follows 'O'"),
        (["I-PER", "O"], "tag 1 'I-PER' follows the start of the row"),
        (["B-LOC", "I-PER"], "tag 2 'I-PER' follows 'B-LOC'"),
        (["O", "PER"], "tag 2 'PER' is not O, B-TYPE or I-TYPE"),
        (["O", "B-"], "tag 2 'B-' is not O, B-TYPE or I-TYPE"),
        (["O", "E-PER"], "is not O, B-TYPE or I-TYPE"),
    ],
)
def test_tags_not_in_bio_form_are_refused(workspace, tmp_path, tags, match):
    path = lines(tmp_path, tokens_row(["x", "y"], ["O", "O"]), tokens_row(["a", "b"], tags))
    rejected(workspace, path, line=2, field="tags", match=match, options=TOKENS)


@pytest.mark.parametrize(
    ("row", "field", "match"),
    [
        ({"tokens": ["a"]}, "tags", "is missing"),
        ({"tokens": [], "tags": []}, "tokens", "empty list"),
        ({"tokens": ["a", ""], "tags": ["O", "O"]}, "tokens", "item 2"),
        ({"tokens": ["a b"], "tags": ["O"]}, "tokens", "without whitespace"),
        ({"tokens": 5, "tags": ["O"]}, "tokens", "list of strings"),
    ],
)
def test_bad_token_rows(workspace, tmp_path, row, field, match):
    rejected(
        workspace,
        lines(tmp_path, json.dumps(row)),
        line=1,
        field=field,
        match=match,
        options=TOKENS,
    )


def test_conll_file_imports_as_tokens(workspace, tmp_path):
    path = lines(
        tmp_path,
        "-DOCSTART- O",
        "",
        "Paris\tB-LOC",
        "is\tO",
        "",
        "John NNP B-PER",
        "Smith NNP I-PER",
        name="d.conll",
    )
    version, _ = workspace.datasets.import_file(path, name="d")
    assert version.schema.kind == "tokens"
    assert version.num_rows == 2


def test_conll_errors_name_the_line(workspace, tmp_path):
    path = lines(tmp_path, "Paris\tB-LOC", "", "is\tO", "oops", "x\tI-PER", name="d.conll")
    rejected(workspace, path, line=4, match="token and its tag")
    path = lines(tmp_path, "Paris\tB-LOC", "", "is\tO", "x\tI-PER", name="e.conll")
    rejected(workspace, path, line=3, field="tags", match="follows 'O'")


def test_csv_tokens_are_space_separated(workspace, tmp_path):
    path = lines(tmp_path, "tokens,tags", "Alice runs,B-PER O", "Bob,B-PER", name="d.csv")
    version, _ = workspace.datasets.import_file(path, name="d", options=TOKENS)
    assert (
        version.stats["entity_counts"]["train"]["PER"]
        + sum(version.stats["entity_counts"][s]["PER"] for s in ("validation", "test"))
        == 2
    )


# -- pairs (instruction / seq2seq) datasets -------------------------------------------

PAIRS = ImportOptions(kind="pairs")


def test_prompt_response_pairs(workspace, tmp_path):
    rows = [{"prompt": f"q{i}", "response": f"a{i}"} for i in range(20)]
    version, _ = workspace.datasets.import_file(
        write_jsonl(tmp_path / "p.jsonl", rows), name="p", options=PAIRS
    )
    assert (version.schema.kind, version.schema.text_field, version.schema.label_field) == (
        "pairs",
        "prompt",
        "response",
    )
    table = pq.read_table(workspace.artifacts.resolve(version.uri))
    assert table.column_names == ["text", "target", "split"]


def test_source_target_pairs_are_detected(workspace, tmp_path):
    rows = [{"source": f"s{i}", "target": f"t{i}"} for i in range(10)]
    version, _ = workspace.datasets.import_file(
        write_jsonl(tmp_path / "p.jsonl", rows), name="p", options=PAIRS
    )
    assert (version.schema.text_field, version.schema.label_field) == ("source", "target")


def test_pairs_with_a_missing_response_name_the_line(workspace, tmp_path):
    path = lines(tmp_path, '{"prompt": "a", "response": "b"}', '{"prompt": "c", "response": ""}')
    rejected(workspace, path, line=2, field="response", match="empty", options=PAIRS)
    path = lines(tmp_path, '{"prompt": "a", "response": "b"}', '{"prompt": "c"}', name="e.jsonl")
    err = rejected(workspace, path, line=2, field="response", match="is missing", options=PAIRS)
    assert "--label-field" in err.message


def test_unknown_kind():
    with pytest.raises(InvalidArgument, match="tokens"):
        ImportOptions(kind="images")
