"""The spaCy pipeline Presidio runs on is checked against its pinned SHA-256 before loading."""

import hashlib
import importlib.util

import pytest

from aimass.artifacts import PinnedFiles
from aimass.artifacts.pinned import installed_package_dir
from aimass.data.deidentify import PresidioNerRecognizer
from aimass.data.deidentify.nlp import SPACY_MODEL, SPACY_PINS
from aimass.errors import BundleFormatError, ErrorCode, InvalidArgument, MissingExtra

pytest.importorskip("presidio_analyzer")


def _fake_pipeline(site):
    """A pipeline package 'fake_pipe' whose import would fail loudly, every file pinned."""
    root = site / "fake_pipe"
    (root / "fake_pipe-1.0" / "ner").mkdir(parents=True)
    (root / "__init__.py").write_text("raise ImportError('the pipeline must not be loaded')\n")
    (root / "fake_pipe-1.0" / "ner" / "model").write_bytes(bytes(range(256)))
    files = [p for p in root.rglob("*") if p.is_file()]
    return PinnedFiles(
        "fake-pipe",
        "1.0",
        {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
    )


def test_a_tampered_pipeline_is_refused_before_spacy_loads_it(tmp_path, monkeypatch):
    pins = _fake_pipeline(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    recognizer = PresidioNerRecognizer("fake_pipe", pins=pins)
    # Untouched, the pins pass and the next check finds no installed distribution.
    with pytest.raises(MissingExtra, match=r"fake-pipe==1\.0"):
        recognizer.find("Barack Obama")
    weights = tmp_path / "fake_pipe" / "fake_pipe-1.0" / "ner" / "model"
    weights.write_bytes(b"\x01" + weights.read_bytes()[1:])
    with pytest.raises(BundleFormatError) as caught:
        recognizer.find("Barack Obama")
    error = caught.value
    assert error.code == ErrorCode.BUNDLE_INVALID
    assert str(weights) in error.message
    assert pins.sha256["fake_pipe-1.0/ner/model"] in error.message
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in error.message
    assert "--force-reinstall fake-pipe==1.0" in error.message


def test_an_unpinned_pipeline_is_refused():
    with pytest.raises(InvalidArgument, match="no pinned SHA-256"):
        PresidioNerRecognizer("en_core_web_lg")


def test_the_installed_pipeline_matches_its_pins():
    if importlib.util.find_spec(SPACY_MODEL) is None:
        pytest.skip(f"{SPACY_PINS.package} is not installed ('make' installs it)")
    SPACY_PINS.verify(installed_package_dir(SPACY_MODEL, missing=SPACY_MODEL))
