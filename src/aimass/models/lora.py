"""LoRA adapters (``peft``) on a Hugging Face backbone: add, extract, merge.

LoRA (Hu et al. 2021) freezes a pretrained weight ``W`` (out, in) and trains a
low-rank update beside it: ``W x + (alpha / r) B A x`` with ``A`` (r, in) and
``B`` (out, r), ``B`` starting at zero so training starts from the base model.
Only ``A`` and ``B`` of the target projections (and the task head, which sits
outside the backbone) get gradients: a few hundred thousand weights instead of
tens of millions, which is also what DP-SGD has to noise.

aimass merges the adapters into ``W`` when training ends, so a LoRA model is
served, explained and exported like any other (``model.safetensors`` holds the
merged weights, a plain Hugging Face directory). The adapters themselves are
kept beside it in the bundle as ``lora_adapters.safetensors`` (keys as
:func:`adapter_state_dict` returns them), with their :class:`LoraSettings` in
``aimass.json``; :func:`load_adapters` puts them back on the base model.

Adapters are injected in place (``peft``'s tuner, not a ``PeftModel`` wrapper),
so the backbone keeps its class, its ``forward`` signature and its attributes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument, MissingExtra

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "ADAPTER_FILE",
    "DEFAULT_TARGETS",
    "LoraSettings",
    "adapter_state_dict",
    "add_adapters",
    "default_targets",
    "load_adapters",
    "merge_adapters",
]

ADAPTER_FILE = "lora_adapters.safetensors"

# Projections adapted when --lora-targets is not given: the query and value
# projections of attention, the LoRA paper's choice (its Table 5 finds them the
# best pair at a fixed budget). Keyed by model_type first, then by family.
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "encoder": ("query", "value"),  # BERT, RoBERTa, MiniLM, ...
    "decoder": ("q_proj", "v_proj"),  # Llama, SmolLM2, Gemma-3, Qwen, ...
    "encoder-decoder": ("q_proj", "v_proj"),  # BART, mBART, Marian, Pegasus
    "t5": ("q", "v"),
    "mt5": ("q", "v"),
    "umt5": ("q", "v"),
    "distilbert": ("q_lin", "v_lin"),
    "gpt2": ("c_attn",),
}


def default_targets(*, model_type: str, family: str) -> tuple[str, ...]:
    """The default adapted projections of a base (``model_type`` first, then ``family``)."""
    return DEFAULT_TARGETS.get(model_type) or DEFAULT_TARGETS.get(family, ())


@dataclass(frozen=True)
class LoraSettings:
    """The adapters of one model; saved in ``aimass.json`` ``task_config["lora"]``.

    Attributes:
        rank: ``r``, the rank of the update ``B A``.
        alpha: Scale numerator: the update is multiplied by ``alpha / rank``.
        dropout: Dropout on the adapter's input during training.
        targets: Names of the adapted ``nn.Linear`` modules (the last part of
            their dotted names, e.g. ``q_proj``).
    """

    rank: int
    alpha: float
    dropout: float
    targets: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples) for ``aimass.json``."""
        return {**asdict(self), "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraSettings:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rank=int(data["rank"]),
            alpha=float(data["alpha"]),
            dropout=float(data["dropout"]),
            targets=tuple(str(t) for t in data["targets"]),
        )

    def peft_config(self) -> Any:
        """The equivalent ``peft.LoraConfig``."""
        try:
            from peft import LoraConfig
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise MissingExtra("LoRA fine-tuning needs peft: pip install 'aimass[lm]'") from exc
        # peft annotates lora_alpha as int but only ever divides by it; a float is exact.
        alpha: Any = self.alpha
        return LoraConfig(
            r=self.rank,
            lora_alpha=alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.targets),
            bias="none",
        )


def _check_targets(module: nn.Module, targets: tuple[str, ...]) -> None:
    """Refuse targets that name no linear layer of ``module``, listing the ones it has."""
    from torch import nn

    linear = {
        name.rpartition(".")[2]
        for name, layer in module.named_modules()
        if isinstance(layer, nn.Linear) and name
    }
    missing = [t for t in targets if t not in linear]
    if not targets or missing:
        raise InvalidArgument(
            f"--lora-targets {','.join(targets) or '(none)'}: "
            f"{', '.join(missing) or 'no target'} names no linear layer of this base; "
            f"choose from {', '.join(sorted(linear))} (e.g. --lora-targets "
            f"{','.join(sorted(linear)[:2])})",
            field="lora_targets",
            targets=list(targets),
        )


def add_adapters(module: nn.Module, settings: LoraSettings) -> Any:
    """Inject fresh adapters into ``module`` in place; freeze everything else in it.

    Returns the ``peft`` tuner that :func:`merge_adapters` needs; ``module`` itself
    keeps its class and now carries ``lora_A``/``lora_B`` layers (the only weights
    of it that require grad).
    """
    _check_targets(module, settings.targets)
    from peft.tuners.lora import LoraModel

    return LoraModel(module, settings.peft_config(), adapter_name="default")


def adapter_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights of ``module`` (keys like ``layers.0.self_attn.q_proj.lora_A.weight``)."""
    from peft.utils import get_peft_model_state_dict

    state = get_peft_model_state_dict(module, adapter_name="default")
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def merge_adapters(tuner: Any) -> nn.Module:
    """Fold ``B A * alpha / r`` into each adapted weight; the module loses its adapter layers."""
    merged: nn.Module = tuner.merge_and_unload()
    return merged


def load_adapters(
    module: nn.Module, settings: LoraSettings, state: dict[str, torch.Tensor]
) -> nn.Module:
    """Put saved adapters back on a base ``module`` and merge them: the trained weights.

    ``state`` is what :func:`adapter_state_dict` returned; every adapter weight must
    be in it (a partial file would silently leave an adapter at its random start).
    """
    from peft.utils import set_peft_model_state_dict

    tuner = add_adapters(module, settings)
    result: Any = set_peft_model_state_dict(module, state, adapter_name="default")
    missing = [k for k in result.missing_keys if ".lora_" in k]
    if missing or result.unexpected_keys:
        raise InvalidArgument(
            f"the adapter weights do not fit this base: missing {missing[:3]}, "
            f"unexpected {list(result.unexpected_keys)[:3]}; load them onto the base the "
            "model was trained from (its lineage names it)"
        )
    return merge_adapters(tuner)
