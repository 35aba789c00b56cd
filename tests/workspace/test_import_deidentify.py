"""De-identification on import picks the free-text fields of each dataset kind."""

import pytest

from aimass.data.importer import ImportOptions
from aimass.errors import InvalidArgument
from aimass.workspace.privacy import DeidentifyOptions
from tests.conftest import write_jsonl

MASK = DeidentifyOptions(mode="mask", recognizers=("email",))


def _texts(workspace, version) -> list[str]:
    from aimass.data.tables import read_split

    data = read_split(workspace.artifacts.resolve(version.uri), None)
    return [*data.texts, *(data.targets or [])]


def test_pairs_clean_both_the_prompt_and_the_response(workspace, tmp_path):
    rows = [
        {"prompt": f"write to ann{i}@example.org", "response": f"sent to bob{i}@example.org"}
        for i in range(20)
    ]
    version, _ = workspace.datasets.import_file(
        write_jsonl(tmp_path / "p.jsonl", rows),
        name="pairs",
        options=ImportOptions(kind="pairs"),
        deidentify=MASK,
    )
    texts = _texts(workspace, version)
    assert texts and not any("@example.org" in t for t in texts)
    assert version.provenance["deidentification"]["fields"][:2] == ["prompt", "source"]


def test_tokens_datasets_are_cleaned_token_by_token_and_keep_their_tags(workspace, tmp_path):
    english = {
        "tokens": ["Mail", "ann@example.org", "or", "call", "+44", "20", "7946", "0958", "."],
        "tags": ["O", "O", "O", "O", "O", "O", "O", "O", "O"],
    }
    # People's Daily style: one character per token, the name tagged as a person.
    chinese = {
        "tokens": list("请联系张伟，电话13812345678。"),
        "tags": ["O", "O", "O", "B-PER", "I-PER", *["O"] * 15],
    }
    rows = [english, chinese] * 5
    version, _ = workspace.datasets.import_file(
        write_jsonl(tmp_path / "t.jsonl", rows),
        name="tagged",
        options=ImportOptions(kind="tokens"),
        deidentify=DeidentifyOptions(mode="mask"),
    )
    from aimass.data.tables import read_split

    data = read_split(workspace.artifacts.resolve(version.uri), None)
    assert data.tokens is not None and data.tags is not None
    by_length = {len(t): (t, tags) for t, tags in zip(data.tokens, data.tags, strict=True)}
    tokens, tags = by_length[len(english["tokens"])]
    assert tags == english["tags"]
    assert tokens[:4] == ["Mail", "<EMAIL_ADDRESS>", "or", "call"] and tokens[-1] == "."
    assert set(tokens[4:8]) == {"<PHONE_NUMBER>"}
    tokens, tags = by_length[len(chinese["tokens"])]
    assert tags == chinese["tags"]  # every tag still on its token
    assert tokens[3:5] == ["<PERSON>", "<PERSON>"]
    assert tokens[:3] == ["请", "联", "系"] and tokens[5:7] == ["，", "电"]
    assert set(tokens[8:19]) == {"<PHONE_NUMBER>"} and tokens[-1] == "。"
    assert not any("@" in t or "张" in t or "伟" in t for t in data.texts)
    report = version.provenance["deidentification"]
    assert report["fields"] == ["tokens"] and report["texts"] == 10
    assert report["counts"]["PERSON"] == 5 and report["counts"]["EMAIL_ADDRESS"] == 5


def test_tokens_cannot_be_redacted(workspace, tmp_path):
    rows = [{"tokens": ["mail", "ann@example.org"], "tags": ["O", "O"]}] * 10
    with pytest.raises(InvalidArgument, match="'mask' or 'pseudonymize'"):
        workspace.datasets.import_file(
            write_jsonl(tmp_path / "t.jsonl", rows),
            name="tagged",
            options=ImportOptions(kind="tokens"),
            deidentify=DeidentifyOptions(mode="redact", recognizers=("email",)),
        )
    assert workspace.store.datasets.list("default") == []
