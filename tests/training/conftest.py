import pytest

from tests.conftest import sentiment_rows, write_jsonl


@pytest.fixture
def ready(workspace, tiny_bert_dir, tmp_path):
    """A workspace with a 200-row sentiment dataset 's' and the tiny base 'tiny'."""
    path = write_jsonl(tmp_path / "s.jsonl", sentiment_rows(200))
    workspace.datasets.import_file(path, name="s")
    workspace.bases.import_(str(tiny_bert_dir), name="tiny")
    return workspace


@pytest.fixture
def ready_with_tags(ready, tmp_path):
    """``ready`` plus a 200-sentence NER dataset 'n' (a person and a place in each)."""
    from aimass.data.importer import ImportOptions
    from tests.conftest import ner_rows

    path = write_jsonl(tmp_path / "n.jsonl", ner_rows(200))
    ready.datasets.import_file(path, name="n", options=ImportOptions(kind="tokens"))
    return ready
