"""From-scratch architectures: a documented config dataclass per family, with size presets.

Each family file (``encoder``, ``decoder``, ``seq2seq``) defines a frozen
config dataclass registered here by architecture name. ``build_scratch`` turns
``(architecture, preset, tokenizer)`` into randomly initialised Hugging Face
weights; the tokenizer fixes the vocabulary size and the special token ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

from aimass.errors import InvalidArgument

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "PRESET_NAMES",
    "ScratchConfig",
    "build_scratch",
    "get_architecture",
    "list_architectures",
    "register_architecture",
]

PRESET_NAMES = ("tiny", "mini", "small")
MAX_LAYERS = 256
"""Most layers of one stack (the deepest published transformers have ~100): more is a
typo, and would take minutes even to count the parameters of."""


@dataclass(frozen=True)
class ScratchConfig:
    """Base of the family configs; subclasses add the size fields and ``PRESETS``.

    Attributes:
        max_length: Longest sequence (position embeddings / context), in tokens.
        dropout: Dropout probability in every layer while training.
    """

    architecture: ClassVar[str]
    family: ClassVar[str]
    description: ClassVar[str]
    PRESETS: ClassVar[dict[str, dict[str, Any]]]

    max_length: int = 128
    dropout: float = 0.1

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ScratchConfig:
        """The preset ``name`` (``tiny``, ``mini``, ``small``) with ``overrides`` applied."""
        if name not in cls.PRESETS:
            raise InvalidArgument(
                f"preset {name!r} is not one of {', '.join(cls.PRESETS)} for {cls.architecture}"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidArgument(
                f"unknown {cls.architecture} options {unknown}; valid: {', '.join(sorted(known))}"
            )
        config = cls(**{**cls.PRESETS[name], **overrides})
        config.validate()
        return config

    def validate(self) -> None:
        """Refuse sizes that cannot build a model, naming the field."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int) and value < 1:
                raise InvalidArgument(f"{self.architecture} option {f.name}={value} must be >= 1")
            if f.name.endswith("layers") and value > MAX_LAYERS:
                raise InvalidArgument(
                    f"{self.architecture} option {f.name}={value} is more than {MAX_LAYERS}"
                )
        if not 0 <= self.dropout < 1:
            raise InvalidArgument(f"dropout={self.dropout} must be in [0, 1)")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for provenance."""
        return asdict(self)

    def hf_config(self, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
        """The Hugging Face config for this size and ``tokenizer``'s vocabulary."""
        raise NotImplementedError


_ARCHITECTURES: dict[str, type[ScratchConfig]] = {}


def register_architecture(cls: type[ScratchConfig]) -> type[ScratchConfig]:
    """Class decorator: make ``cls.architecture`` buildable from scratch."""
    _ARCHITECTURES[cls.architecture] = cls
    return cls


def _load_families() -> None:
    from aimass.models import decoder, encoder, seq2seq  # noqa: F401  (they register)


def list_architectures() -> list[type[ScratchConfig]]:
    """Registered from-scratch architectures, by name."""
    _load_families()
    return [_ARCHITECTURES[n] for n in sorted(_ARCHITECTURES)]


def get_architecture(name: str) -> type[ScratchConfig]:
    """The config class of architecture ``name``; the error lists the valid ones."""
    _load_families()
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown architecture {name!r}; from-scratch architectures: "
            f"{', '.join(sorted(_ARCHITECTURES))}",
            architecture=name,
        ) from None


def build_scratch(
    config: ScratchConfig,
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int,
    max_parameters: int | None = None,
) -> PreTrainedModel:
    """Randomly initialised weights (seeded) for ``config`` and ``tokenizer``.

    With ``max_parameters``, the model is first laid out on the meta device (no memory
    for weights) and refused if it has more parameters than that: sizes are set by
    callers, and a server must not be made to allocate whatever they ask for.
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    loader = {
        "encoder": AutoModel,
        "decoder": AutoModelForCausalLM,
        "encoder-decoder": AutoModelForSeq2SeqLM,
    }[config.family]
    hf_config = config.hf_config(tokenizer)
    if max_parameters is not None:
        try:
            with torch.device("meta"):
                layout = loader.from_config(hf_config)
        except (ValueError, RuntimeError) as e:  # e.g. a width heads do not divide
            raise InvalidArgument(
                f"these sizes cannot build a {config.architecture}: {e}",
                sizes=config.to_dict(),
            ) from e
        count = sum(p.numel() for p in layout.parameters())
        if count > max_parameters:
            raise InvalidArgument(
                f"a {config.architecture} of these sizes has {count:,} parameters, more than "
                f"the {max_parameters:,} AIMASS_MAX_SCRATCH_PARAMETERS allows; choose a "
                "smaller preset or sizes, or raise the setting",
                parameters=count,
                limit=max_parameters,
            )
    torch.manual_seed(seed)
    return loader.from_config(hf_config)
