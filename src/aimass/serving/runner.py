"""Model runners: a model version served from its own worker processes.

Why processes: in the server process the forward pass shares one interpreter
with the event loop (HTTP parsing, auth, audit). Under load the two fight over
the GIL and the cores, and a batch ran up to twice as slowly as alone
(``bench/serve.py``). A runner is a child process
(``python -m aimass.serving.runner BUNDLE_DIR``) that verifies and loads the
bundle itself, sets its torch thread count, warms up, and then answers one
batch at a time. The server keeps only the tokenizer (to bucket inputs by
length) and the micro-batcher, which hands each runner one batch at a time.

The wire (:mod:`aimass.serving.wire`) is the runner's stdin and stdout: every message is a 4-byte
big-endian length followed by that many bytes of UTF-8 JSON. No pickle crosses
it, and nothing else is written to it: the runner moves its own ``sys.stdout``
to stderr before importing anything, so a library that prints cannot corrupt
a frame. Messages::

    runner → server   {"ready": true, "pid": 123}          once, after loading
    server → runner   {"texts": ["...", ...]}                (op "predict", the default)
    runner → server   {"results": [{...}, ...]}  or  {"error": {"code": ..., "message": ...}}
    server → runner   {"op": "explain", "texts": [...], "results": [...], "method": "..."}
    runner → server   {"results": [{..., "explanation": {...}}, ...]}  or  {"error": ...}
    server → runner   {"op": "generate", "prompt": "...", "options": {...}, "model": "..."}
    runner → server   {"event": {"text": "..."}} ... {"event": {"done": true, ...}}
                      (or {"error": ...} in place of any event)
    server → runner   {"op": "cancel"}                        (mid-stream: the client left)
    runner → server   {"cancelled": true}                     (or the events it had already sent)

A runner of a generative model is *multiplexed*: several generations run in it at
once, so its decode steps batch them (continuous batching,
:mod:`aimass.serving.decode_batch`). Each carries a stream id, and so does every
frame of it; a reader thread in the server hands each frame to its stream, and
frames without an id to the one predict or explain call waiting::

    server → runner   {"op": "generate", "stream": 7, "prompt": "...", ...}
    runner → server   {"stream": 7, "event": {...}} ... (other streams' frames between)
    server → runner   {"op": "cancel", "stream": 7}
    runner → server   {"stream": 7, "cancelled": true}

Predict, explain and generate all run in the runners, so a served model is loaded
once per runner and the runners' limits, timeouts and metrics cover all three.

An error while loading is sent as ``{"error": ...}`` in place of ``ready``. A
runner exits when its stdin closes, so a server that dies, even by SIGKILL,
leaves no runner behind. A runner that dies fails only the batch it was running
(503, ``UNAVAILABLE``); the next batch starts a new one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aimass.artifacts.bundle import verify_bundle
from aimass.errors import InvalidArgument, Unavailable
from aimass.serving.predictor import LengthCounter, predictor_class
from aimass.serving.runner_process import RUNNER_PROGRAM, RunnerProcess
from aimass.serving.wire import Predicts, serve

__all__ = ["RUNNER_PROGRAM", "RunnerPool", "RunnerProcess", "default_runner_threads"]

log = logging.getLogger("aimass.serving")


def default_runner_threads(runners: int) -> int:
    """Torch threads per runner when not configured: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, runners))


class RunnerPool:
    """``count`` runner processes for one model version, each running one batch at a time.

    It is the micro-batcher's back end: :meth:`run` takes a free runner (the
    batcher never has more batches in flight than :attr:`concurrency`),
    :meth:`lengths` counts tokens with the bundle's tokenizer in this process.

    Args:
        directory: The bundle to serve.
        count: Runner processes (batches in flight).
        threads: Torch threads per runner.
        device: ``auto``, ``cpu`` or ``cuda``.
        name: Label for logs and errors.
        timeout: Per runner, seconds to load or to answer one batch (see
            :class:`RunnerProcess`).
        program: The runner command before its arguments (see :data:`RUNNER_PROGRAM`).
        backend: ``torch``, ``onnx`` or ``onnx-int8`` (the forward pass in each runner).
        graph: The version's ONNX graphs, for the ONNX backends.
        multiplex: A generative model: generations go to the runner with the fewest in
            flight, many per runner, and decode together there (see the module docstring).
    """

    def __init__(
        self,
        directory: Path,
        *,
        count: int,
        threads: int,
        device: str,
        name: str,
        timeout: float = 600.0,
        program: Sequence[str] = RUNNER_PROGRAM,
        backend: str = "torch",
        graph: Path | None = None,
        multiplex: bool = False,
    ) -> None:
        if count < 1 or threads < 1:
            raise InvalidArgument(
                f"a runner pool needs count >= 1 and threads >= 1, got {count}, {threads}"
            )
        self.directory = Path(directory)
        self.concurrency = count
        self.name = name
        self.backend = backend
        self.multiplex = multiplex
        self._runners = [
            RunnerProcess(
                directory,
                device=device,
                threads=threads,
                name=name,
                timeout=timeout,
                program=program,
                backend=backend,
                graph=graph,
                multiplex=multiplex,
            )
            for _ in range(count)
        ]
        # Last in, first out: at low load the runner that just ran (warm caches) runs again.
        self._free: queue.LifoQueue[RunnerProcess] = queue.LifoQueue()
        self._counter: LengthCounter | None = None
        self._lock = threading.Lock()
        self._restart_lock = threading.Lock()
        self.restarts = 0

    def open(self) -> None:
        """Load the tokenizer here and start every runner (in parallel); blocks until ready."""
        with self._lock:
            if self._counter is not None:
                return
            manifest = verify_bundle(self.directory)
            counter = predictor_class(manifest).length_counter(self.directory, manifest)
            for runner in self._runners:
                runner.spawn()
            try:
                for runner in self._runners:
                    runner.wait_ready()
            except BaseException:
                for runner in self._runners:
                    runner.close()
                raise
            for runner in self._runners:
                self._free.put(runner)
            self._counter = counter

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Token counts (the batcher's buckets); :meth:`open` first."""
        if self._counter is None:
            raise Unavailable(f"model {self.name} is not loaded yet; retry")
        return self._counter(texts)

    def run(self, texts: list[str]) -> list[dict[str, Any]]:
        """One batch on a free runner; a runner that died is replaced first."""
        with self._runner() as runner:
            return runner.predict(texts)

    def explain(
        self, texts: list[str], results: list[dict[str, Any]], method: str | bool | None
    ) -> list[dict[str, Any]]:
        """Explanations of one call's results, on a free runner (tens of forward passes:
        the batches of other callers go to the other runners meanwhile)."""
        with self._runner() as runner:
            return runner.explain(texts, results, method)

    def generate_stream(self, prompt: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """One generation: in a multiplexed pool on the runner with the fewest generations
        in flight (they decode together), else on a free runner held until the end."""
        if not self.multiplex:
            with self._runner() as runner:
                yield from runner.generate_stream(prompt, options)
            return
        runner = min(self._runners, key=lambda r: (not r.alive, r.streams))
        self._ensure_alive(runner)
        yield from runner.generate_multiplexed(prompt, options)

    @property
    def busy(self) -> int:
        """Calls running now: runners held by a caller, and generations in flight (a pool
        with busy runners is not closed)."""
        held = self.concurrency - self._free.qsize()
        return held + sum(runner.streams for runner in self._runners)

    def _ensure_alive(self, runner: RunnerProcess) -> None:
        """Start ``runner`` again if it died (once, when several callers find it dead)."""
        with self._restart_lock:
            if not runner.alive:
                self.restarts += 1
                log.warning("restarting model runner", extra={"model": self.name})
                runner.start()

    @contextlib.contextmanager
    def _runner(self) -> Iterator[RunnerProcess]:
        """A free runner for the block, started again first if it died."""
        runner = self._free.get()
        try:
            self._ensure_alive(runner)
            yield runner
        finally:
            self._free.put(runner)

    def pids(self) -> list[int]:
        """Process ids of the running runners."""
        return [r.pid for r in self._runners if r.alive and r.pid is not None]

    def close(self) -> None:
        """Stop every runner."""
        for runner in self._runners:
            runner.close()
            runner.stop_watchdog()


def _load_predictor(
    directory: Path, device: str, threads: int, backend: str, graph: Path | None
) -> Predicts:
    """Verify and load the bundle with ``threads`` threads (torch's, or ONNX Runtime's)."""
    import torch

    torch.set_num_threads(threads)
    from aimass.serving.predictor import load_predictor

    return load_predictor(directory, device=device, backend=backend, graph=graph, threads=threads)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aimass.serving.runner BUNDLE_DIR [--device D] [--threads N]
    [--backend torch|onnx|onnx-int8 --graph DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="aimass-runner", description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--graph", type=Path, default=None)
    args = parser.parse_args(argv)
    return serve(
        functools.partial(
            _load_predictor,
            args.directory,
            args.device,
            max(1, args.threads),
            args.backend,
            args.graph,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
