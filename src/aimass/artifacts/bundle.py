"""The model bundle: the one on-disk format aimass reads and writes for models.

A bundle is a flat directory::

    aimass.json              the manifest below (written last)
    config.json              a Hugging Face model config
    model.safetensors        weights (or model-0000i-of-0000n.safetensors
                             + model.safetensors.index.json when sharded)
    generation_config.json   decoders only
    lora_adapters.safetensors  LoRA adapters (and head) of a LoRA fine-tune, beside
                             the merged weights in model.safetensors
    tokenizer files          tokenizer.json, tokenizer_config.json,
                             special_tokens_map.json, vocab.txt, vocab.json,
                             merges.txt, added_tokens.json, tokenizer.model,
                             chat_template.jinja

``aimass.json``::

    {
      "format": "aimass.bundle",
      "format_version": 1,
      "kind": "base" | "model" | "tokenizer",
      "architecture": "bert",            # config.json model_type (tokenizers: wordpiece/bpe)
      "family": "encoder" | "decoder" | "encoder-decoder" | "tokenizer",
      "task": "classification" | ... | null,
      "task_config": {...},              # labels, pooling, target scaling ...
      "provenance": {...},               # where the weights and data came from
      "privacy": {...} | null,           # DP accounting, when trained with DP
      "aimass_version": "0.1.0",
      "files": {"config.json": {"sha256": "<hex>", "size": 123}, ...}
    }

Rules (each one has a test in ``tests/artifacts/test_bundle.py``):

1. Only the files above are allowed. Pickle-based weights (``*.bin``, ``*.pt``,
   ``*.pkl``, ``*.ckpt``, ...) are refused with the reason: loading them can run code.
2. Every file is listed in ``files`` with its SHA-256 and size; a missing,
   changed or unlisted file, a symlink or a subdirectory fails verification.
3. The bundle *digest* is the SHA-256 of the canonical JSON of the manifest; it
   identifies the content and names the bundle in the artifact store.
4. A bundle is built in a staging directory and published by one rename, so a
   crash never leaves half a bundle.
5. Exported (copied out), a bundle is a valid Hugging Face model directory.
6. A bundle registered by a server carries ``aimass.sig``, an Ed25519 signature
   of its digest (see :mod:`aimass.artifacts.signing`); like ``aimass.json`` it is
   not listed in ``files``, and it is copied out with an exported bundle.
7. A *tokenizer bundle* (``kind`` and ``family`` ``tokenizer``) holds only
   tokenizer files (``tokenizer.json`` is required; no config or weights); it is
   what ``aimass tokenizers train`` stores and what from-scratch bases copy in.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass._version import __version__
from aimass.artifacts.signing import SIGNATURE, Signature, verify_digest
from aimass.errors import BundleFormatError, InvalidArgument

if TYPE_CHECKING:
    import torch

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "TOKENIZER_FILES",
    "BundleWriter",
    "Manifest",
    "bundle_digest",
    "canonical_json",
    "copy_bundle_files",
    "file_sha256",
    "verify_bundle",
    "verify_bundle_signature",
    "verify_manifest_signature",
]

FORMAT = "aimass.bundle"
FORMAT_VERSION = 1
MANIFEST = "aimass.json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

# The files a Hugging Face tokenizer can be saved as (a bundle keeps those present).
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "tokenizer.model",
    "chat_template.jinja",
)
ALLOWED_FILES = frozenset(
    {
        "config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "generation_config.json",
        "lora_adapters.safetensors",
        *TOKENIZER_FILES,
    }
)
_SHARD = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".h5", ".msgpack")
KINDS = ("base", "model", "tokenizer")
FAMILIES = ("encoder", "decoder", "encoder-decoder", "tokenizer")


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces) for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_allowed_file(name: str) -> bool:
    """Whether ``name`` may appear in a bundle."""
    return name in ALLOWED_FILES or bool(_SHARD.fullmatch(name))


def _refusal(name: str) -> str:
    if name.endswith(_PICKLE_SUFFIXES):
        return (
            f"file {name!r} is not allowed in a bundle: pickle-based weights can run code "
            "when loaded; convert the weights to safetensors (model.safetensors)"
        )
    allowed = ", ".join(sorted(ALLOWED_FILES))
    return f"file {name!r} is not allowed in a bundle (allowed: {allowed}, model shards)"


@dataclass(frozen=True)
class Manifest:
    """The parsed, verified ``aimass.json`` of a bundle."""

    kind: str
    architecture: str
    family: str
    task: str | None
    task_config: dict[str, Any]
    provenance: dict[str, Any]
    privacy: dict[str, Any] | None
    aimass_version: str
    files: dict[str, dict[str, Any]]
    format_version: int = FORMAT_VERSION
    digest: str = field(default="", compare=False)

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``aimass.json``."""
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "kind": self.kind,
            "architecture": self.architecture,
            "family": self.family,
            "task": self.task,
            "task_config": self.task_config,
            "provenance": self.provenance,
            "privacy": self.privacy,
            "aimass_version": self.aimass_version,
            "files": self.files,
        }


def _digest(manifest_json: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(manifest_json)).hexdigest()


class BundleWriter:
    """Builds a bundle in an empty (staging) directory.

    Example:
        >>> writer = BundleWriter(stage)  # doctest: +SKIP
        >>> writer.add_json("config.json", config)  # doctest: +SKIP
        >>> writer.add_tensors("model.safetensors", state_dict)  # doctest: +SKIP
        >>> manifest = writer.finish(kind="model", architecture="bert", family="encoder")
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        if any(self.directory.iterdir()):
            raise InvalidArgument(f"bundle directory {self.directory} is not empty")

    def _target(self, name: str) -> Path:
        if not is_allowed_file(name):
            raise BundleFormatError(_refusal(name), file=name)
        return self.directory / name

    def add_file(self, name: str, source: Path) -> None:
        """Copy ``source`` into the bundle as ``name``."""
        shutil.copyfile(source, self._target(name))

    def add_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` into the bundle as ``name``."""
        self._target(name).write_bytes(data)

    def add_json(self, name: str, value: Any) -> None:
        """Write ``value`` as pretty JSON (Hugging Face style)."""
        self.add_bytes(name, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())

    def add_tensors(
        self,
        name: str,
        tensors: dict[str, torch.Tensor],
        *,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Write weights as safetensors (contiguous copies; shared storage is split)."""
        from safetensors.torch import save_file

        contiguous = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
        save_file(
            contiguous, str(self._target(name)), metadata={"format": "pt", **(metadata or {})}
        )

    def finish(
        self,
        *,
        kind: str,
        architecture: str,
        family: str,
        task: str | None = None,
        task_config: dict[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        privacy: dict[str, Any] | None = None,
    ) -> Manifest:
        """Hash every file, write ``aimass.json`` and return the manifest (with digest)."""
        if kind not in KINDS:
            raise InvalidArgument(f"bundle kind {kind!r} is not one of {', '.join(KINDS)}")
        if family not in FAMILIES:
            raise InvalidArgument(f"model family {family!r} is not one of {', '.join(FAMILIES)}")
        if (kind == "tokenizer") != (family == "tokenizer"):
            raise InvalidArgument("a tokenizer bundle has kind and family 'tokenizer'")
        names = sorted(p.name for p in self.directory.iterdir())
        if kind == "tokenizer":
            if "tokenizer.json" not in names:
                raise BundleFormatError("a tokenizer bundle needs tokenizer.json")
        elif "config.json" not in names:
            raise BundleFormatError("a bundle needs config.json")
        elif not any(n == "model.safetensors" or _SHARD.fullmatch(n) for n in names):
            raise BundleFormatError("a bundle needs model.safetensors")
        files = {
            n: {
                "sha256": file_sha256(self.directory / n),
                "size": (self.directory / n).stat().st_size,
            }
            for n in names
        }
        manifest = Manifest(
            kind=kind,
            architecture=architecture,
            family=family,
            task=task,
            task_config=task_config or {},
            provenance=provenance or {},
            privacy=privacy,
            aimass_version=__version__,
            files=files,
        )
        data = manifest.to_json()
        (self.directory / MANIFEST).write_bytes(json.dumps(data, indent=2, sort_keys=True).encode())
        return Manifest(**{**manifest.__dict__, "digest": _digest(data)})


def _read_manifest_json(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file() or path.is_symlink():
        raise BundleFormatError(
            f"{directory} is not an aimass bundle (no {MANIFEST}); import Hugging Face "
            "directories with 'aimass bases import PATH'",
            path=str(directory),
        )
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleFormatError(f"{MANIFEST} in {directory} is implausibly large")
    return _parse_manifest(path.read_bytes(), directory)


def _parse_manifest(raw: bytes, directory: Path | str) -> dict[str, Any]:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleFormatError(f"{MANIFEST} in {directory} is implausibly large")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"{MANIFEST} in {directory} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleFormatError(f"{MANIFEST} in {directory} is not an aimass bundle manifest")
    version = data.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleFormatError(f"bundle format version {version!r} is invalid")
    if version > FORMAT_VERSION:
        raise BundleFormatError(
            f"bundle format {version} is newer than this aimass reads (<= {FORMAT_VERSION}); "
            "upgrade aimass to load it",
            format_version=version,
        )
    return data


def _check_entries(directory: Path, files: dict[str, Any]) -> None:
    for entry in directory.iterdir():
        if entry.name in (MANIFEST, SIGNATURE):
            continue
        if entry.is_symlink() or not entry.is_file():
            raise BundleFormatError(
                f"bundle entry {entry.name!r} is a link or directory; bundles hold plain files only"
            )
        if not is_allowed_file(entry.name):
            raise BundleFormatError(_refusal(entry.name), file=entry.name)
        if entry.name not in files:
            raise BundleFormatError(
                f"bundle file {entry.name!r} is not listed in {MANIFEST}: the bundle was modified"
            )


def verify_bundle(directory: Path) -> Manifest:
    """Check a bundle against its manifest and return the manifest.

    Raises:
        BundleFormatError: not a bundle, a newer format, a disallowed, missing,
            unlisted or modified file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleFormatError(f"bundle {directory} does not exist or is not a directory")
    data = _read_manifest_json(directory)
    files = data.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleFormatError(f"{MANIFEST} in {directory} lists no files")
    _check_entries(directory, files)
    for name, meta in files.items():
        if not isinstance(name, str) or not is_allowed_file(name):
            raise BundleFormatError(_refusal(str(name)), file=str(name))
        path = directory / name
        if not path.is_file():
            raise BundleFormatError(f"bundle file {name!r} is missing", file=name)
        if path.stat().st_size != meta.get("size") or file_sha256(path) != meta.get("sha256"):
            raise BundleFormatError(
                f"bundle file {name!r} does not match its SHA-256 in {MANIFEST}: "
                "the bundle was modified or corrupted",
                file=name,
            )
    try:
        manifest = Manifest(
            kind=data["kind"],
            architecture=data["architecture"],
            family=data["family"],
            task=data.get("task"),
            task_config=data.get("task_config") or {},
            provenance=data.get("provenance") or {},
            privacy=data.get("privacy"),
            aimass_version=data.get("aimass_version", "unknown"),
            files=files,
            format_version=data["format_version"],
        )
    except KeyError as exc:
        raise BundleFormatError(f"{MANIFEST} in {directory} lacks field {exc}") from exc
    return Manifest(**{**manifest.__dict__, "digest": _digest(data)})


def bundle_digest(directory: Path) -> str:
    """A bundle's digest from its manifest alone (no file is hashed)."""
    return _digest(_read_manifest_json(Path(directory)))


def verify_bundle_signature(
    directory: Path, *, trusted: dict[str, bytes] | None = None
) -> Signature:
    """Check a bundle's signature against its manifest; no weight is read.

    Args:
        directory: The bundle.
        trusted: Accepted public keys by key id; ``None`` checks the signature with
            the public key it carries (``Signature.trusted`` is then ``False``).

    Raises:
        BundleFormatError: not a bundle, unsigned, or a signature that does not hold.
    """
    directory = Path(directory)
    digest = _digest(_read_manifest_json(directory))
    path = directory / SIGNATURE
    content = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return verify_digest(content, digest, str(directory), trusted=trusted)


def verify_manifest_signature(
    manifest: bytes, signature: bytes | None, where: str, *, trusted: dict[str, bytes] | None
) -> Signature:
    """:func:`verify_bundle_signature` on the bytes of ``aimass.json`` and ``aimass.sig``."""
    return verify_digest(
        signature, _digest(_parse_manifest(manifest, where)), where, trusted=trusted
    )


def copy_bundle_files(directory: Path, destination: Path) -> list[str]:
    """Copy a verified bundle's files to ``destination`` (a Hugging Face directory).

    Returns the copied file names. ``destination`` must not exist or be empty.
    """
    verify_bundle(directory)
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise InvalidArgument(f"export destination {destination} is not empty")
    destination.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in Path(directory).iterdir())
    for name in names:
        shutil.copyfile(Path(directory) / name, destination / name)
    return names
