"""Read the tensors of a PyTorch zip checkpoint (``pytorch_model.bin``) without unpickling.

Some packaged weights ship only as a torch checkpoint: a zip archive whose
``data.pkl`` is a pickle describing a state dict and whose ``data/<key>`` entries
hold the raw tensor storages. Unpickling runs whatever the pickle names, so
aimass never does it (not even torch's ``weights_only`` loader, whose
restricted unpickler has had code-execution bypasses). Instead the pickle's
opcodes are walked with :func:`pickletools.genops`, which only *parses*, and a
small stack machine interprets the handful of opcodes a state dict uses. The only
names it resolves are the four a state dict needs (an ordered dict, the tensor
rebuild function and storage types); any other name, opcode or structure is
refused. Callers also pin the file's SHA-256 before reading it.

:func:`read_state_dict` gives ``name → tensor``; :func:`convert_checkpoint`
writes them as ``model.safetensors`` beside the model's JSON files.
"""

from __future__ import annotations

import pickletools
import shutil
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors.torch import save_file

from aimass.errors import InvalidArgument

__all__ = ["convert_checkpoint", "read_state_dict"]

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


@dataclass(frozen=True)
class _Global:
    """A name the pickle refers to, from the allow-list."""

    module: str
    name: str


@dataclass(frozen=True)
class _Storage:
    """A persistent id: which ``data/<key>`` entry holds a storage, and its type."""

    key: str
    dtype: torch.dtype


class _Mark:
    """The MARK opcode's place on the stack."""


_ORDERED_DICT = _Global("collections", "OrderedDict")
# Opcodes whose argument is the value they push.
_LITERALS = frozenset(
    {
        "BINUNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE8",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG1",
        "BINFLOAT",
    }
)
_REBUILD = _Global("torch._utils", "_rebuild_tensor_v2")


def _allowed_global(module: str, name: str) -> _Global:
    if (module, name) in {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2")}:
        return _Global(module, name)
    if module == "torch" and name in _STORAGE_DTYPES:
        return _Global(module, name)
    raise InvalidArgument(
        f"checkpoint names {module}.{name}, which a plain state dict never does; aimass "
        "refuses it (only tensors, storages and an ordered dict are read)",
        name=f"{module}.{name}",
    )


class _Reader:
    """The stack machine: each opcode's effect, for the opcodes a state dict uses."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str) -> None:
        self.archive = archive
        self.prefix = prefix
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.storages: dict[str, torch.Tensor] = {}

    def _pop_mark(self) -> list[Any]:
        items: list[Any] = []
        while not isinstance(top := self.stack.pop(), _Mark):
            items.append(top)
        items.reverse()
        return items

    def _storage(self, ref: _Storage) -> torch.Tensor:
        if ref.key not in self.storages:
            raw = bytearray(self.archive.read(f"{self.prefix}data/{ref.key}"))
            self.storages[ref.key] = (
                torch.frombuffer(raw, dtype=ref.dtype) if raw else torch.empty(0, dtype=ref.dtype)
            )
        return self.storages[ref.key]

    def _call(self, func: Any, args: tuple[Any, ...]) -> Any:
        if func == _ORDERED_DICT and not args:
            return {}
        if func == _REBUILD and len(args) >= 4 and isinstance(args[0], _Storage):
            storage, offset, size, stride = args[:4]
            flat = self._storage(storage)
            # Views into a shared storage become separate tensors: safetensors needs that.
            return torch.as_strided(flat, tuple(size), tuple(stride), int(offset)).clone()
        raise InvalidArgument(
            f"checkpoint calls {func} with {len(args)} arguments; not a state dict"
        )

    def run(self, data: bytes) -> Any:
        """Interpret ``data`` and return the object its STOP leaves on the stack."""
        for opcode, arg, _pos in pickletools.genops(data):
            op = opcode.name
            if op in {"PROTO", "FRAME"}:
                pass
            elif op == "STOP":
                return self.stack.pop()
            elif op == "MARK":
                self.stack.append(_Mark())
            elif op in _LITERALS:
                self.stack.append(arg)
            elif op in {"NONE", "NEWTRUE", "NEWFALSE"}:
                self.stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[op])
            elif op == "EMPTY_DICT":
                self.stack.append({})
            elif op == "EMPTY_TUPLE":
                self.stack.append(())
            elif op == "EMPTY_LIST":
                self.stack.append([])
            elif op == "TUPLE":
                self.stack.append(tuple(self._pop_mark()))
            elif op in {"TUPLE1", "TUPLE2", "TUPLE3"}:
                n = int(op[-1])
                packed = tuple(self.stack[-n:])
                del self.stack[-n:]
                self.stack.append(packed)
            elif op in {"BINPUT", "LONG_BINPUT"}:
                self.memo[cast(int, arg)] = self.stack[-1]
            elif op == "MEMOIZE":
                self.memo[len(self.memo)] = self.stack[-1]
            elif op in {"BINGET", "LONG_BINGET"}:
                self.stack.append(self.memo[cast(int, arg)])
            elif op == "GLOBAL":
                module, name = str(arg).split(" ", 1)
                self.stack.append(_allowed_global(module, name))
            elif op == "STACK_GLOBAL":
                name, module = self.stack.pop(), self.stack.pop()
                self.stack.append(_allowed_global(str(module), str(name)))
            elif op == "BINPERSID":
                self.stack.append(self._persistent(self.stack.pop()))
            elif op == "REDUCE":
                args = self.stack.pop()
                self.stack.append(self._call(self.stack.pop(), args))
            elif op == "SETITEM":
                value, key = self.stack.pop(), self.stack.pop()
                self.stack[-1][key] = value
            elif op == "SETITEMS":
                items = self._pop_mark()
                target = self.stack[-1]
                for key, value in zip(items[::2], items[1::2], strict=True):
                    target[key] = value
            elif op in {"APPEND", "APPENDS"}:
                items = [self.stack.pop()] if op == "APPEND" else self._pop_mark()
                self.stack[-1].extend(items)
            elif op == "BUILD":
                # A state dict's BUILD sets its ``_metadata`` (per-module versions): not needed.
                if not isinstance(self.stack.pop(), dict):
                    raise InvalidArgument("checkpoint sets object state; not a state dict")
            else:
                raise InvalidArgument(
                    f"checkpoint uses the pickle opcode {op}, which a state dict never needs; "
                    "aimass refuses it",
                    opcode=op,
                )
        raise InvalidArgument("checkpoint's data.pkl ends without STOP")

    def _persistent(self, pid: Any) -> _Storage:
        if (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _Global)
            and pid[1].name in _STORAGE_DTYPES
        ):
            return _Storage(str(pid[2]), _STORAGE_DTYPES[pid[1].name])
        raise InvalidArgument(f"checkpoint has a persistent id {pid!r}; not a tensor storage")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of the torch zip checkpoint at ``path``, read without unpickling.

    Raises:
        InvalidArgument: The file is not a torch zip checkpoint of a plain state dict.
    """
    if not zipfile.is_zipfile(path):
        raise InvalidArgument(
            f"{path} is not a zip-format torch checkpoint (the legacy format is not read)",
            path=str(path),
        )
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise InvalidArgument(f"{path} holds {len(pickles)} data.pkl entries, expected 1")
        prefix = pickles[0].removesuffix("data.pkl")
        state = _Reader(archive, prefix).run(archive.read(pickles[0]))
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise InvalidArgument(f"{path} does not hold a flat state dict of tensors")
    return state


def convert_checkpoint(
    source: Path,
    out: Path,
    *,
    checkpoint: str = "pytorch_model.bin",
    files: Iterable[str] = (),
    drop: Iterable[str] = (),
) -> Path:
    """Write ``source/checkpoint`` as ``out/model.safetensors``, beside copies of ``files``.

    Args:
        source: A model directory with a torch checkpoint (its digest already verified).
        out: Directory to write (created).
        checkpoint: The checkpoint's file name in ``source``.
        files: JSON/tokenizer files of ``source`` to copy next to the weights.
        drop: Tensor names left out (buffers that transformers rebuilds itself).

    Returns:
        ``out``, a directory ``transformers`` loads with ``use_safetensors=True``.
    """
    state = read_state_dict(source / checkpoint)
    for name in drop:
        state.pop(name, None)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    for name in files:
        shutil.copyfile(source / name, out / name)
    return out
