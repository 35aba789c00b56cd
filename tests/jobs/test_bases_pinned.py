"""Packaged bases: every file a base is read from is checked against its pinned SHA-256."""

import hashlib

import pytest

from aimass.errors import BundleFormatError, ErrorCode
from aimass.jobs import bases
from aimass.jobs.bases import list_packaged_bases
from tests.packaged import fake_packaged_base


def test_a_tampered_packaged_weight_file_is_refused_on_import(
    workspace, tiny_bert_dir, tmp_path, monkeypatch
):
    site = tmp_path / "site"
    base = fake_packaged_base(site, tiny_bert_dir, monkeypatch, package="fake-base")
    imported, created = workspace.bases.import_("fake")
    assert created and imported.name == "fake"
    weights = site / base.module / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleFormatError) as caught:
        workspace.bases.import_("fake", name="fake-again")
    error = caught.value
    assert error.code == ErrorCode.BUNDLE_INVALID
    assert str(weights) in error.message
    assert base.sha256["model/model.safetensors"] in error.message
    assert hashlib.sha256(bytes(data)).hexdigest() in error.message
    assert "--force-reinstall fake-base==0.0.1" in error.message
    assert [b.name for b in workspace.store.bases.list("default")] == ["fake"]


def test_every_packaged_base_pins_the_files_it_reads():
    for base in list_packaged_bases():
        assert base.sha256 and base.version, base.name
        assert set(base.files) <= set(base.sha256), base.name


@pytest.mark.slow
def test_the_installed_packages_match_their_pins():
    checked = []
    for base in list_packaged_bases():
        if not base.available():
            pytest.skip(f"{base.package} is not installed ('make' installs it)")
        checked.append(base.verified_dir())
    for module, pins in bases._GEMMA_PARTS:
        pins.verify(bases._module_dir(module, pins.package))
    assert len(checked) == len(list_packaged_bases())
