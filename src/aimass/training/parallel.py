"""Data parallelism inside the one training loop: shard each batch, average gradients.

:func:`~aimass.training.loop.fit` takes a :class:`DataParallel` when it runs as
one of N processes of a ``torch.distributed`` group (Ray Train starts them, see
:mod:`aimass.training.distributed`). The batch size stays the global one: every
process computes the loss of its ``1/N`` share of each batch, weighted by the
share's size, and one all-reduce averages the gradients, so each process takes
the optimizer step one process would have taken on the whole batch.

Why not wrap the model in ``DistributedDataParallel``: the loop's loss function
closes over the task's model, so DDP's hooks would only fire if every task sent
its forward pass through the wrapper. The all-reduce below is DDP's reduction
in one flat bucket (no overlap with the backward pass), and it works for every
task unchanged, whatever module ``fit`` trains (a head, the whole model, LoRA
adapters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["DataParallel"]


class DataParallel:
    """One process's view of a data-parallel group (``torch.distributed`` initialised).

    Args:
        rank: This process's rank; rank 0 is the chief, the only one that
            evaluates, reports progress and writes checkpoints.
        world_size: Processes in the group.
    """

    def __init__(self, *, rank: int, world_size: int) -> None:
        self.rank = rank
        self.world_size = world_size

    @property
    def chief(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0

    def shard(self, batch: Any) -> Any:
        """This rank's share of a batch of indices (a list or a tensor): every N-th item.

        Batches are length-bucketed, so strided shares are of similar lengths.
        """
        return batch[self.rank :: self.world_size]

    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's weights (and buffers) to every rank, so all start equal."""
        import torch.distributed as dist

        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def broadcast_value(self, value: float, *, device: torch.device) -> float:
        """Rank 0's ``value`` on every rank (the validation score that picks the best weights)."""
        import torch.distributed as dist

        buffer = torch.tensor([value], dtype=torch.float64, device=device)
        dist.broadcast(buffer, src=0)
        return float(buffer.item())

    def average_gradients(self, params: Sequence[nn.Parameter], loss: float) -> float:
        """Average ``params``' gradients over the group; returns the whole batch's step loss.

        One all-reduce of a flat float32 buffer holding every gradient, one presence
        flag per parameter and this rank's share of the loss. A parameter without a
        gradient on any rank keeps ``grad=None`` (AdamW then skips it, as it does in
        one process); one without a gradient here counts as zeros.
        """
        import torch.distributed as dist

        device = params[0].device
        parts = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in params
        ]
        flags = torch.tensor([p.grad is not None for p in params], dtype=torch.float32)
        tail = torch.cat([flags, torch.tensor([loss], dtype=torch.float32)]).to(device)
        flat = torch.cat([*parts, tail])  # (sum of numels + P + 1,)
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        present = flat[-len(params) - 1 : -1]
        for index, p in enumerate(params):
            n = p.numel()
            if present[index] > 0:
                p.grad = flat[offset : offset + n].view_as(p).to(p.dtype).clone()
            else:
                p.grad = None
            offset += n
        # Each share's loss was scaled by N x its share of the batch: the mean is the batch's.
        return float(flat[-1])
