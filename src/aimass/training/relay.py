"""Callbacks across processes: rank 0 of a distributed run writes them, the job replays them.

The training loop of a data-parallel run executes in Ray workers, but the
callbacks that report progress, write TensorBoard events and notice a
cancellation belong to the job. Rank 0 appends each hook call to an event file
(JSON lines, on the run directory every node shares); the job tails the file
and calls its own callbacks in the same order. A cancellation goes the other
way: the job creates a marker file that rank 0 checks after every step.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from aimass.errors import AimassError, Cancelled, error_from_dict
from aimass.training.callbacks import Callback, CallbackList, LoopState

__all__ = ["EventReader", "EventWriter"]


def _state(state: LoopState) -> dict[str, Any]:
    return dataclasses.asdict(state)


class EventWriter(Callback):
    """Rank 0's callback: every hook becomes one JSON line in ``path``.

    It also raises :class:`Cancelled` once ``cancel_marker`` exists, so the job
    can stop the workers within a step.
    """

    def __init__(self, path: Path, *, cancel_marker: Path) -> None:
        self.path = path
        self.cancel_marker = cancel_marker

    def _write(self, event: str, **data: Any) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, **data}) + "\n")

    def _check_cancel(self, where: str) -> None:
        if self.cancel_marker.exists():
            raise Cancelled(f"training was cancelled {where}")

    def on_phase(self, name: str, total: int) -> None:
        self._write("phase", name=name, total=total)

    def on_phase_advance(self, done: int) -> None:
        self._write("advance", done=done)
        self._check_cancel("while preparing")

    def on_train_start(self, state: LoopState) -> None:
        self._write("start", state=_state(state))

    def on_step_end(self, state: LoopState) -> None:
        self._write("step", state=_state(state))
        self._check_cancel(f"at step {state.step}")

    def on_eval(self, state: LoopState, metrics: dict[str, Any]) -> None:
        self._write("eval", state=_state(state), metrics=metrics)

    def on_checkpoint(self, state: LoopState, epoch: int) -> None:
        self._write("checkpoint", state=_state(state), epoch=epoch)

    def on_train_end(self, state: LoopState) -> None:
        self._write("end", state=_state(state))

    def error(self, exc: AimassError) -> None:
        """Record the error that ended the run, for the job to raise as the same class."""
        self._write("error", error=exc.to_dict())


class EventReader:
    """The job's side: replays new events from ``path`` into ``callbacks``.

    ``state`` is one :class:`LoopState` updated in place, as the loop's own is,
    so callbacks that keep a reference see it change.
    """

    def __init__(self, path: Path, callbacks: CallbackList) -> None:
        self.path = path
        self.callbacks = callbacks
        self.state = LoopState()
        self.error: AimassError | None = None
        self.started = False
        self.ended = False
        self._offset = 0

    def poll(self) -> None:
        """Replay every complete line written since the last poll."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            # A line without its newline is still being written: read it next time.
            while (line := handle.readline()).endswith(b"\n"):
                self._offset += len(line)
                self._replay(json.loads(line))

    def _replay(self, event: dict[str, Any]) -> None:
        if "state" in event:
            for name, value in event["state"].items():
                setattr(self.state, name, value)
        kind = event["event"]
        if kind == "phase":
            self.callbacks.on_phase(event["name"], event["total"])
        elif kind == "advance":
            self.callbacks.on_phase_advance(event["done"])
        elif kind == "start":
            self.started = True
            self.callbacks.on_train_start(self.state)
        elif kind == "step":
            self.callbacks.on_step_end(self.state)
        elif kind == "eval":
            self.callbacks.on_eval(self.state, event["metrics"])
        elif kind == "checkpoint":
            self.callbacks.on_checkpoint(self.state, event["epoch"])
        elif kind == "end":
            self.ended = True
            self.callbacks.on_train_end(self.state)
        elif kind == "error":
            self.error = error_from_dict(event["error"])

    def finish(self) -> None:
        """Close what a run that died without saying so left open (``on_train_end``)."""
        if self.started and not self.ended:
            self.ended = True
            self.callbacks.on_train_end(self.state)
