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
from aimass.artifacts.pinned import PinnedFiles, installed_package_dir, sha256sums, verify_file
from aimass.artifacts.storage import ArtifactStore

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "ArtifactStore",
    "BundleWriter",
    "Manifest",
    "PinnedFiles",
    "canonical_json",
    "copy_bundle_files",
    "file_sha256",
    "installed_package_dir",
    "sha256sums",
    "verify_bundle",
    "verify_file",
]
