"""Base import: offline, safetensors only, idempotent, never unpickling."""

import pickle
import shutil

import pytest

from aimass.artifacts.bundle import verify_bundle
from aimass.errors import InvalidArgument, InvalidName, UnsupportedModel


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_import_is_idempotent_and_verified(workspace, tiny_bert_dir):
    base, created = workspace.import_base(str(tiny_bert_dir))
    assert created and base.name == "tiny-bert" and base.family == "encoder"
    again, created_again = workspace.import_base(str(tiny_bert_dir))
    assert not created_again and again == base
    manifest = verify_bundle(workspace.artifacts.resolve(base.uri))
    assert manifest.kind == "base"
    assert base.num_parameters > 0


def test_pickle_only_directories_are_refused_without_unpickling(workspace, tiny_bert_dir, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(tiny_bert_dir, evil)
    (evil / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    (evil / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(UnsupportedModel, match="never unpickles"):
        workspace.import_base(str(evil), name="evil")
    assert not marker.exists()
    assert workspace.store.bases.list("default") == []


def test_remote_code_is_never_trusted(workspace, tiny_bert_dir, tmp_path):
    custom = tmp_path / "custom"
    shutil.copytree(tiny_bert_dir, custom)
    config = (custom / "config.json").read_text()
    (custom / "config.json").write_text(
        config.replace(
            '"model_type": "bert"', '"model_type": "evil", "auto_map": {"AutoModel": "m.M"}'
        )
    )
    (custom / "m.py").write_text("open('PWNED', 'w')\n")
    with pytest.raises(UnsupportedModel):
        workspace.import_base(str(custom), name="custom")


def test_bad_sources_and_names(workspace, tiny_bert_dir, tmp_path):
    with pytest.raises(InvalidArgument, match="minilm"):
        workspace.import_base(str(tmp_path / "nope"))
    with pytest.raises(InvalidName):
        workspace.import_base(str(tiny_bert_dir), name="Bad Name")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedModel, match=r"config\.json"):
        workspace.import_base(str(tmp_path / "empty"))
