"""Artifacts: the local artifact store and the model bundle format."""

from aimass.artifacts.bundle import (
    FORMAT_VERSION,
    MANIFEST,
    BundleWriter,
    Manifest,
    canonical_json,
    copy_bundle_files,
    file_sha256,
    verify_bundle,
)
from aimass.artifacts.storage import ArtifactStore

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "ArtifactStore",
    "BundleWriter",
    "Manifest",
    "canonical_json",
    "copy_bundle_files",
    "file_sha256",
    "verify_bundle",
]
