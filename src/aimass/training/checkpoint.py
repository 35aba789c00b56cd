"""Checkpoints of the training loop: model, optimizer, loop state and RNGs, no pickle.

At the end of every epoch :func:`~aimass.training.loop.fit` saves everything it
needs to continue as if it had never stopped::

    checkpoint/
      checkpoint.json          pointer to the newest complete epoch (replaced atomically)
      epoch-0003/
        model.safetensors      the trained module's weights
        best.safetensors       the best evaluation's weights so far
        optimizer.safetensors  optimizer state tensors, flattened as state.<param>.<name>
        rng.safetensors        torch (and CUDA) RNG states, NumPy's key
        state.json             loop counters, history, optimizer groups, Python RNG state

An epoch directory is written completely before the pointer moves to it, so a
crash mid-save leaves the previous checkpoint in force. With master keys, every
file of an epoch directory is encrypted before the directory takes its name (the
pointer holds only the epoch, the directory name and the run's fingerprint).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aimass.artifacts.envelope import MasterKeys, read_plaintext
from aimass.artifacts.storage import encrypt_tree, make_private, private_dir
from aimass.errors import FailedPrecondition

__all__ = ["Checkpoint", "Checkpointer", "flatten_optimizer", "unflatten_optimizer"]

POINTER = "checkpoint.json"


def _tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Clones break shared storage (tied weights), which safetensors refuses to save.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and plain JSON."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return _tensors(tensors), {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer`: a dict ``optimizer.load_state_dict`` accepts."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = state
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta = {
        "numpy": [kind, int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


@dataclass
class Checkpoint:
    """A loaded checkpoint: what :func:`fit` needs to continue."""

    epoch: int
    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    loop: dict[str, Any]
    rng: tuple[dict[str, torch.Tensor], dict[str, Any]]

    def restore_rng(self) -> None:
        """Put every random number generator back where it was at the save."""
        _set_rng_state(*self.rng)


class Checkpointer:
    """Saves and loads epoch-end checkpoints in ``directory``.

    Args:
        directory: Where checkpoints live (one per job: ``runs/<job-id>/checkpoint``).
        fingerprint: Identity of the run's inputs and configuration; a checkpoint
            with another fingerprint is refused instead of silently mixed in.
        keys: Master keys to encrypt checkpoints with (``None``: plaintext).
    """

    def __init__(
        self, directory: Path, *, fingerprint: str, keys: MasterKeys | None = None
    ) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.keys = keys

    def exists(self) -> bool:
        """Whether a complete checkpoint is there."""
        return (self.directory / POINTER).is_file()

    def save(
        self,
        *,
        epoch: int,
        model: dict[str, torch.Tensor],
        best: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        loop: dict[str, Any],
    ) -> Path:
        """Write the checkpoint after ``epoch`` epochs, then point at it."""
        from safetensors.torch import save_file

        name = f"epoch-{epoch:04d}"
        target = self.directory / name
        staging = self.directory / f".{name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        private_dir(staging)
        opt_tensors, opt_meta = flatten_optimizer(optimizer.state_dict())
        rng_tensors, rng_meta = _rng_state()
        save_file(_tensors(model), str(staging / "model.safetensors"))
        save_file(_tensors(best), str(staging / "best.safetensors"))
        save_file(opt_tensors, str(staging / "optimizer.safetensors"))
        save_file(_tensors(rng_tensors), str(staging / "rng.safetensors"))
        state = {"epoch": epoch, "loop": loop, "optimizer": opt_meta, "rng": rng_meta}
        (staging / "state.json").write_text(json.dumps(state), encoding="utf-8")
        if self.keys is not None:
            encrypt_tree(staging, self.keys)
        make_private(staging)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        pointer = {"epoch": epoch, "directory": name, "fingerprint": self.fingerprint}
        tmp = self.directory / f".{POINTER}.tmp"
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(pointer))
        os.replace(tmp, self.directory / POINTER)
        for old in self.directory.glob("epoch-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def load(self) -> Checkpoint | None:
        """The newest complete checkpoint, or ``None`` when there is none."""
        from safetensors.torch import load

        if not self.exists():
            return None
        pointer = json.loads((self.directory / POINTER).read_text(encoding="utf-8"))
        if pointer.get("fingerprint") != self.fingerprint:
            raise FailedPrecondition(
                f"the checkpoint in {self.directory} belongs to a run with other inputs or "
                "settings; delete it to start over",
                directory=str(self.directory),
            )
        source = self.directory / str(pointer["directory"])

        def read(name: str) -> bytes:
            return read_plaintext(source / name, self.keys)

        state = json.loads(read("state.json").decode("utf-8"))
        optimizer = unflatten_optimizer(load(read("optimizer.safetensors")), state["optimizer"])
        return Checkpoint(
            epoch=int(state["epoch"]),
            model=load(read("model.safetensors")),
            best=load(read("best.safetensors")),
            optimizer=optimizer,
            loop=state["loop"],
            rng=(load(read("rng.safetensors")), state["rng"]),
        )
