"""A transformer's stack of layers, and which of its weights train.

Two layouts are understood: BERT-style encoders (``encoder.layer[i]`` with
``intermediate.dense`` and ``output.dense``: BERT, RoBERTa, XLM-R, ELECTRA) and
Llama-style decoders (``layers[i].mlp`` with ``gate_proj``/``up_proj``/
``down_proj``: Llama, SmolLM2, Qwen2, Gemma-3), as bare models or inside a
model with a head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aimass.errors import InvalidArgument

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

__all__ = ["TRAINABLE", "LayerStack", "layer_depths", "layer_stack", "restrict_trainable"]

LAYOUTS = (
    "BERT-style encoders (BERT, RoBERTa, XLM-R, ELECTRA) and Llama-style decoders "
    "(Llama, SmolLM2, Qwen2, Gemma-3)"
)

TRAINABLE = re.compile(r"all|biases|top-([1-9][0-9]{0,3})")
"""The values of ``--trainable``; the group is top-N's N."""


@dataclass(frozen=True)
class LayerStack:
    """Where a model keeps its layers: ``getattr(holder, attribute)`` is the list.

    Attributes:
        holder: The module holding the list (``model.encoder``, ``model.model``).
        attribute: The list's attribute name (``layer``, ``layers``).
        layout: ``encoder`` (BERT-style) or ``decoder`` (Llama-style).
    """

    holder: nn.Module
    attribute: str
    layout: str

    @property
    def layers(self) -> nn.ModuleList:
        """The layer list itself."""
        layers: nn.ModuleList = getattr(self.holder, self.attribute)
        return layers


def layer_stack(model: nn.Module) -> LayerStack | None:
    """The layer stack of ``model``, or ``None`` when its layout is not one understood."""
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer") and len(encoder.layer):
        layer = encoder.layer[0]
        if hasattr(layer, "intermediate") and hasattr(layer, "output"):
            return LayerStack(encoder, "layer", "encoder")
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is not None and len(layers) and hasattr(getattr(layers[0], "mlp", None), "up_proj"):
        return LayerStack(inner, "layers", "decoder")
    return None


def restrict_trainable(backbone: PreTrainedModel, trainable: str) -> None:
    """Leave only the weights ``trainable`` names trainable in ``backbone``; never unfreeze.

    ``all`` changes nothing; ``biases`` keeps every bias (BitFit, Ben Zaken et al.
    2022); ``top-N`` freezes the embeddings and every layer below the last N, and
    keeps what follows them (a final norm, a pooler) as it was.
    """
    if trainable == "all":
        return
    if trainable == "biases":
        for name, param in backbone.named_parameters():
            if not name.endswith("bias"):
                param.requires_grad_(False)
        return
    found = TRAINABLE.fullmatch(trainable)
    if found is None or found.group(1) is None:
        raise InvalidArgument(f"trainable {trainable!r}: use all, biases or top-N")
    stack = layer_stack(backbone)
    if stack is None:
        raise InvalidArgument(
            f"--trainable {trainable} needs a model whose layers aimass can find ({LAYOUTS}); "
            f"a {type(backbone).__name__} is neither: use --trainable biases or all",
            field="trainable",
        )
    keep, total = int(found.group(1)), len(stack.layers)
    if keep > total:
        raise InvalidArgument(
            f"--trainable {trainable}: the base has {total} layers; use top-1 to top-{total} "
            "(or all)",
            field="trainable",
        )
    # A BERT's embeddings module holds the token, position and type tables and their
    # norm; a decoder has the token table alone.
    embeddings: nn.Module = getattr(backbone, "embeddings", None) or backbone.get_input_embeddings()
    embeddings.requires_grad_(False)
    for layer in stack.layers[: total - keep]:
        layer.requires_grad_(False)


def layer_depths(model: nn.Module) -> tuple[dict[int, int], int] | None:
    """How deep each of ``model``'s parameters sits, for layer-wise step sizes.

    Returns ``({id(parameter): depth}, layers)``: depth 0 for the embeddings
    (every parameter under a module whose name starts with ``embed``), ``i`` for
    the ``i``-th layer of the stack, ``layers + 1`` for what follows the stack (a
    final norm, a pooler, the head). The stack is searched for in ``model`` and
    every module inside it, so a task's wrapper or LoRA's does not hide it.
    ``None`` when no stack of a layout aimass understands is found.
    """
    stack = next((s for m in model.modules() if (s := layer_stack(m)) is not None), None)
    if stack is None:
        return None
    total = len(stack.layers)
    depths: dict[int, int] = {}
    for index, layer in enumerate(stack.layers, start=1):
        for param in layer.parameters():
            depths[id(param)] = index
    for name, param in model.named_parameters():
        if id(param) not in depths:
            embedding = any(part.startswith("embed") for part in name.split("."))
            depths[id(param)] = 0 if embedding else total + 1
    return depths, total
