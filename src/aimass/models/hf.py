"""Safe, offline access to Hugging Face model directories.

Every load here passes ``local_files_only=True``, ``trust_remote_code=False``
and ``use_safetensors=True``: no hub request, no code from the model directory,
no pickle. Directories that only hold pickle weights are refused with the fix.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.errors import MissingExtra, UnsupportedModel

if TYPE_CHECKING:
    from torch import nn
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "family_of",
    "load_pretrained",
    "load_tokenizer",
    "num_parameters",
    "quiet_transformers",
    "read_config",
    "require_safetensors",
]

_ENCODER_DECODER_TYPES = {"bart", "t5", "mt5", "mbart", "marian", "pegasus", "led"}


def quiet_transformers() -> None:
    """Offline mode and no per-load progress bars (aimass draws its own)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MissingExtra("model code needs: pip install 'aimass[train]'") from exc
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()


_PRELOAD_LOCK = threading.Lock()


def preload_transformers() -> None:
    """Resolve the ``transformers`` names aimass uses, once, from one thread.

    ``transformers`` is a lazy module: its first ``from transformers import X``
    imports X's submodule on attribute access, and two threads doing that at
    once can fail with ``cannot import name 'AutoTokenizer'`` (seen in a server
    whose job thread started training while a request loaded a model's
    tokenizer). A server calls this before it starts its threads; without
    ``transformers`` installed there is nothing to race, and it does nothing.
    """
    import importlib.util

    if importlib.util.find_spec("transformers") is None:
        return
    with _PRELOAD_LOCK:
        quiet_transformers()
        import transformers

        for name in (
            "AutoConfig",
            "AutoTokenizer",
            "AutoModel",
            "AutoModelForCausalLM",
            "AutoModelForMaskedLM",
            "AutoModelForSeq2SeqLM",
            "AutoModelForTokenClassification",
            "AutoModelForSequenceClassification",
            "PreTrainedModel",
            "PreTrainedTokenizerFast",
        ):
            getattr(transformers, name)


def require_safetensors(directory: Path) -> None:
    """Refuse a model directory without safetensors weights, naming the fix."""
    names = {p.name for p in Path(directory).iterdir()}
    if "model.safetensors" in names or "model.safetensors.index.json" in names:
        return
    pickled = sorted(n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")))
    if pickled:
        raise UnsupportedModel(
            f"{directory} has only pickle-based weights ({', '.join(pickled)}); aimass never "
            "unpickles (it can run code). Convert them to safetensors in a trusted environment, "
            "e.g. model.save_pretrained(dir, safe_serialization=True)",
            path=str(directory),
        )
    raise UnsupportedModel(f"{directory} has no model.safetensors", path=str(directory))


def read_config(directory: Path) -> PretrainedConfig:
    """The Hugging Face config of ``directory`` (no remote code)."""
    quiet_transformers()
    from transformers import AutoConfig

    if not (Path(directory) / "config.json").is_file():
        raise UnsupportedModel(f"{directory} has no config.json", path=str(directory))
    try:
        return AutoConfig.from_pretrained(
            str(directory), local_files_only=True, trust_remote_code=False
        )
    except (ValueError, KeyError, OSError) as exc:
        raise UnsupportedModel(
            f"cannot read the model config in {directory}: {exc}", path=str(directory)
        ) from exc


def family_of(config: PretrainedConfig) -> str:
    """``encoder``, ``decoder`` or ``encoder-decoder`` for a config."""
    if getattr(config, "is_encoder_decoder", False) or config.model_type in _ENCODER_DECODER_TYPES:
        return "encoder-decoder"
    architectures = getattr(config, "architectures", None) or []
    if getattr(config, "is_decoder", False) or any(a.endswith("CausalLM") for a in architectures):
        return "decoder"
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    is_causal = config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    if is_causal and config.model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "decoder"
    return "encoder"


def load_pretrained(directory: Path, *, family: str, **kwargs: Any) -> PreTrainedModel:
    """Load weights from a local directory as the family's model class.

    ``family`` is ``encoder``, ``decoder`` or ``encoder-decoder``, or an encoder
    with a head: ``encoder-mlm`` (masked LM) or ``encoder-tokens`` (token
    classification; pass ``num_labels``/``id2label``), ``sequence``: a Hugging
    Face ``*ForSequenceClassification`` with its head, or ``backbone``: the bare
    model of any family without its head (``LlamaModel`` from a causal-LM
    directory). A head the directory lacks is initialised fresh.
    """
    quiet_transformers()
    require_safetensors(directory)
    from transformers import (
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSeq2SeqLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    loader = {
        "encoder": AutoModel,
        "backbone": AutoModel,
        "decoder": AutoModelForCausalLM,
        "encoder-decoder": AutoModelForSeq2SeqLM,
        "encoder-mlm": AutoModelForMaskedLM,
        "encoder-tokens": AutoModelForTokenClassification,
        "sequence": AutoModelForSequenceClassification,
    }[family]
    try:
        return loader.from_pretrained(
            str(directory),
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            **kwargs,
        )
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise UnsupportedModel(
            f"cannot load the {family} weights in {directory}: {exc}", path=str(directory)
        ) from exc


def load_tokenizer(directory: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``directory`` (fast tokenizers only, no remote code)."""
    quiet_transformers()
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True, trust_remote_code=False
        )
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise UnsupportedModel(
            f"cannot load a tokenizer from {directory}: {exc}; the directory needs "
            "tokenizer.json or a vocabulary file with tokenizer_config.json",
            path=str(directory),
        ) from exc
    return tokenizer


def num_parameters(model: nn.Module) -> int:
    """Number of parameters (tied weights counted once)."""
    seen: set[int] = set()
    total = 0
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total
