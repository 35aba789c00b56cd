"""Base import: offline, safetensors only, idempotent (never unpickling and never trusting
remote code: tests/security/test_deserialization.py)."""

import pytest

from aimass.artifacts.bundle import verify_bundle
from aimass.errors import InvalidArgument, InvalidName, UnsupportedModel


def test_import_is_idempotent_and_verified(workspace, tiny_bert_dir):
    base, created = workspace.bases.import_(str(tiny_bert_dir))
    assert created and base.name == "tiny-bert" and base.family == "encoder"
    again, created_again = workspace.bases.import_(str(tiny_bert_dir))
    assert not created_again and again == base
    manifest = verify_bundle(workspace.artifacts.resolve(base.uri))
    assert manifest.kind == "base"
    assert base.num_parameters > 0


def test_bad_sources_and_names(workspace, tiny_bert_dir, tmp_path):
    with pytest.raises(InvalidArgument, match="minilm"):
        workspace.bases.import_(str(tmp_path / "nope"))
    with pytest.raises(InvalidName):
        workspace.bases.import_(str(tiny_bert_dir), name="Bad Name")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedModel, match=r"config\.json"):
        workspace.bases.import_(str(tmp_path / "empty"))
