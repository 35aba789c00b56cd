"""A smaller model from a pretrained one: fewer layers, narrower feed-forward blocks.

A distilled student learns more from a teacher when it starts from the
teacher's own weights than from random ones: DistilBERT (Sanh et al. 2019)
initialises its six layers from every other one of BERT's twelve. ``shrink``
keeps chosen layers of an encoder or a decoder and, optionally, the most
important neurons of each kept layer's feed-forward block (structured pruning
by weight magnitude: a neuron's importance is the product of the norms of the
weights into and out of it; no data is needed to choose). The feed-forward block holds
two thirds of a BERT layer's multiply-adds, so halving its width makes a
layer about 1.5x cheaper; a student still needs training (``aimass distill``)
to recover from the cut.

The layouts understood are those of ``models.layers``; others are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument
from aimass.models.layers import LAYOUTS, layer_stack

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedModel

__all__ = ["LAYER_PICKS", "ShrinkPlan", "layer_indices", "shrink"]

LAYER_PICKS = ("first", "spread")


@dataclass(frozen=True)
class ShrinkPlan:
    """What ``shrink`` did.

    Attributes:
        layers: Indices of the source's layers kept, in order.
        source_layers: How many layers the source had.
        intermediate_size: The feed-forward width after pruning.
        source_intermediate_size: The source's feed-forward width.
    """

    layers: tuple[int, ...]
    source_layers: int
    intermediate_size: int
    source_intermediate_size: int


def layer_indices(total: int, keep: int, pick: str) -> tuple[int, ...]:
    """Which of ``total`` layers to keep: the ``first`` ``keep``, or ``spread`` evenly.

    ``spread`` starts at layer 0 and steps by ``total / keep`` (six of twelve:
    0, 2, 4, 6, 8, 10, DistilBERT's choice), so the first kept layer still reads
    the embeddings it was trained on.
    """
    if pick not in LAYER_PICKS:
        raise InvalidArgument(
            f"layer pick {pick!r} is not one of {', '.join(LAYER_PICKS)}", pick=pick
        )
    if not 1 <= keep <= total:
        raise InvalidArgument(
            f"layers {keep}: keep between 1 and the source's {total} layers", layers=keep
        )
    if pick == "first":
        return tuple(range(keep))
    # i * total / keep rounded half up; the step is at least 1, so no layer repeats.
    return tuple((2 * i * total + keep) // (2 * keep) for i in range(keep))


def _keep_rows(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """``linear`` restricted to the output features ``index``."""
    from torch import nn

    out = nn.Linear(linear.in_features, len(index), bias=linear.bias is not None)
    out.weight.data = linear.weight.data[index].clone()
    if linear.bias is not None:
        out.bias.data = linear.bias.data[index].clone()
    return out


def _keep_columns(linear: nn.Linear, index: torch.Tensor) -> nn.Linear:
    """``linear`` restricted to the input features ``index``."""
    from torch import nn

    out = nn.Linear(len(index), linear.out_features, bias=linear.bias is not None)
    out.weight.data = linear.weight.data[:, index].clone()
    if linear.bias is not None:
        out.bias.data = linear.bias.data.clone()
    return out


def _prune_feed_forward(layer: Any, layout: str, width: int) -> None:
    """Keep the ``width`` feed-forward neurons of ``layer`` whose weights are largest.

    A neuron's importance is the norm of the weights into it (for a gated
    block, the gate's and the up-projection's) times the norm of the weights
    out of it: a neuron with small weights on either side moves the output
    little. The kept neurons stay in their original order.
    """
    import torch

    # (module, attribute) of the linears into the neurons and of the one out of them.
    if layout == "encoder":
        into = [(layer.intermediate, "dense")]
        out_of = (layer.output, "dense")
    else:
        into = [(layer.mlp, "gate_proj"), (layer.mlp, "up_proj")]
        out_of = (layer.mlp, "down_proj")
    score = getattr(*out_of).weight.norm(dim=0)
    for pair in into:
        score = score * getattr(*pair).weight.norm(dim=1)
    index = torch.topk(score, width).indices.sort().values
    for module, name in into:
        setattr(module, name, _keep_rows(getattr(module, name), index))
    setattr(out_of[0], out_of[1], _keep_columns(getattr(*out_of), index))
    if layout == "decoder" and hasattr(layer.mlp, "intermediate_size"):
        layer.mlp.intermediate_size = width


def shrink(
    model: PreTrainedModel, *, layers: int, pick: str = "first", intermediate_size: int = 0
) -> ShrinkPlan:
    """Cut ``model`` in place to ``layers`` of its layers and, if given, a narrower block.

    Args:
        model: A loaded encoder (``AutoModel``) or decoder (``AutoModelForCausalLM``).
        layers: How many layers to keep.
        pick: ``first`` (layers 0..n-1) or ``spread`` (evenly spaced from layer 0).
        intermediate_size: The feed-forward width to keep in every kept layer; 0
            keeps the source's.

    The config follows (``num_hidden_layers``, ``intermediate_size``, and a
    per-layer ``layer_types`` list where the architecture has one), so that
    ``save_pretrained`` writes a directory plain ``transformers`` loads.
    """
    import torch
    from torch import nn

    stack = layer_stack(model)
    if stack is None:
        raise InvalidArgument(
            f"cannot shrink a {model.config.model_type} model: shrinking understands "
            f"{LAYOUTS}; distil into a from-scratch base instead ('aimass bases scratch')",
            architecture=model.config.model_type,
        )
    holder, attribute, layout = stack.holder, stack.attribute, stack.layout
    config = model.config
    blocks = stack.layers
    kept = layer_indices(len(blocks), layers, pick)
    width = config.intermediate_size
    if intermediate_size:
        if not 1 <= intermediate_size <= width:
            raise InvalidArgument(
                f"intermediate size {intermediate_size}: keep between 1 and the source's "
                f"{width} feed-forward neurons",
                intermediate_size=intermediate_size,
            )
        width = intermediate_size
    with torch.no_grad():
        if width != config.intermediate_size:
            for index in kept:
                _prune_feed_forward(blocks[index], layout, width)
    setattr(holder, attribute, nn.ModuleList(blocks[i] for i in kept))
    # A decoder's key/value cache is indexed by each attention's layer_idx.
    for position, block in enumerate(getattr(holder, attribute)):
        for module in (block, getattr(block, "self_attn", None)):
            if module is not None and hasattr(module, "layer_idx"):
                module.layer_idx = position
    plan = ShrinkPlan(
        layers=kept,
        source_layers=len(blocks),
        intermediate_size=width,
        source_intermediate_size=config.intermediate_size,
    )
    config.num_hidden_layers = len(kept)
    config.intermediate_size = width
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == plan.source_layers:
        config.layer_types = [layer_types[i] for i in kept]
    return plan
