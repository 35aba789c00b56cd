"""De-identification on import picks the free-text fields of each dataset kind."""

import pytest

from aimass.data.importer import ImportOptions
from aimass.errors import NotImplementedFeature
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


def test_tokens_datasets_are_refused_before_anything_is_stored(workspace, tmp_path):
    rows = [{"tokens": ["mail", "ann@example.org"], "tags": ["O", "O"]}] * 10
    with pytest.raises(NotImplementedFeature, match="tokens/tags"):
        workspace.datasets.import_file(
            write_jsonl(tmp_path / "t.jsonl", rows),
            name="tagged",
            options=ImportOptions(kind="tokens"),
            deidentify=MASK,
        )
    assert workspace.store.datasets.list("default") == []
