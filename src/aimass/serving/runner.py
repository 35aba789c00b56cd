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
import itertools
import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from aimass.artifacts.bundle import verify_bundle
from aimass.errors import AimassError, Internal, InvalidArgument, Unavailable, error_from_dict
from aimass.serving._watchdog import Watchdog
from aimass.serving.predictor import LengthCounter, predictor_class
from aimass.serving.wire import Predicts, read_frame, serve, write_frame

__all__ = ["RUNNER_PROGRAM", "RunnerPool", "RunnerProcess", "default_runner_threads"]

log = logging.getLogger("aimass.serving")

# The runner a RunnerProcess starts, before its arguments (BUNDLE_DIR --device D
# --threads N). Tests substitute a child without torch that speaks the same wire.
RUNNER_PROGRAM: tuple[str, ...] = (sys.executable, "-m", "aimass.serving.runner")


def default_runner_threads(runners: int) -> int:
    """Torch threads per runner when not configured: the cores shared out, at least one."""
    return max(1, (os.cpu_count() or 1) // max(1, runners))


class _Demux:
    """The one reader of a multiplexed runner's frames: each goes to the queue of its
    stream, a frame without one to :attr:`replies`. When the runner's output ends,
    every waiting queue gets ``None`` (the runner is gone)."""

    def __init__(self, stdout: IO[bytes], name: str) -> None:
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._streams: dict[int, queue.Queue[dict[str, Any] | None]] = {}
        self._lock = threading.Lock()
        self._ended = False
        self._thread = threading.Thread(
            target=self._read, args=(stdout,), name=f"aimass-demux-{name}", daemon=True
        )
        self._thread.start()

    @property
    def streams(self) -> int:
        """Generations in flight."""
        return len(self._streams)

    def open(self, stream: int) -> queue.Queue[dict[str, Any] | None]:
        """The queue stream ``stream``'s frames arrive in (``None`` at once if the runner ended)."""
        inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        with self._lock:
            if self._ended:
                inbox.put(None)
            else:
                self._streams[stream] = inbox
        return inbox

    def close(self, stream: int) -> None:
        """Stop routing to ``stream`` (its late frames are dropped)."""
        with self._lock:
            self._streams.pop(stream, None)

    def _read(self, stdout: IO[bytes]) -> None:
        while True:
            try:
                message = read_frame(stdout)
            except (OSError, ValueError, AimassError):
                message = None
            if message is None:
                break
            stream = message.get("stream")
            if stream is None:
                self.replies.put(message)
                continue
            with self._lock:
                inbox = self._streams.get(stream)
            if inbox is not None:  # else: a late frame of a stream its reader left
                inbox.put(message)
        with self._lock:
            self._ended = True
            waiting = list(self._streams.values())
        self.replies.put(None)
        for inbox in waiting:
            inbox.put(None)


class RunnerProcess:
    """One runner child process and the pipe to it (used by one thread at a time, apart
    from the generations of a multiplexed runner).

    Args:
        directory: The verified bundle to serve.
        device: ``auto``, ``cpu`` or ``cuda``, as in the settings.
        threads: Torch intra-op threads in the runner.
        name: Label for logs and errors (``project/model@version``).
        timeout: Seconds the runner may take to load, or to answer one batch (or, for
            a stream, to send its next event); past them it is killed (a hung runner
            must not hold its callers forever).
        multiplex: Run several generations in the runner at once (a generative model:
            its decode steps batch them), each tagged with a stream id.
    """

    def __init__(
        self,
        directory: Path,
        *,
        device: str,
        threads: int,
        name: str,
        timeout: float = 600.0,
        program: Sequence[str] = RUNNER_PROGRAM,
        backend: str = "torch",
        graph: Path | None = None,
        multiplex: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.program = tuple(program)
        self.device = device
        self.threads = threads
        self.backend = backend
        self.graph = graph
        self.name = name
        self.timeout = timeout
        self.multiplex = multiplex
        self._proc: subprocess.Popen[bytes] | None = None
        self._timed_out = False
        self._watch = Watchdog(name)
        self._demux: _Demux | None = None
        self._write_lock = threading.Lock()
        self._stream_ids = itertools.count(1)

    @property
    def streams(self) -> int:
        """Generations in flight in this (multiplexed) runner."""
        demux = self._demux
        return 0 if demux is None else demux.streams

    @property
    def alive(self) -> bool:
        """Started and not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The runner's process id, once started."""
        return None if self._proc is None else self._proc.pid

    def spawn(self) -> None:
        """Start the child process (returns at once; :meth:`wait_ready` waits for the load)."""
        self.close()  # a dead predecessor's pipes
        self._timed_out = False
        env = {**os.environ, "OMP_NUM_THREADS": str(self.threads)}
        command = [
            *self.program,
            str(self.directory),
            "--device",
            self.device,
            "--threads",
            str(self.threads),
        ]
        if self.backend != "torch":
            command += ["--backend", self.backend, "--graph", str(self.graph)]
        # The command is the runner program and a bundle path from the registry, never user text.
        self._proc = subprocess.Popen(  # noqa: S603
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    def wait_ready(self) -> None:
        """Block until the runner has loaded the model; raise what went wrong if it could not."""
        with self._watchdog():
            message = self._receive()
        if message.get("ready") is not True:
            self.close()  # it exits after reporting why
            raise self._error(message)
        if self.multiplex:
            proc = self._require()
            assert proc.stdout is not None
            self._demux = _Demux(proc.stdout, self.name)
        log.info("model runner ready", extra={"model": self.name, "pid": self.pid})

    def start(self) -> None:
        """Spawn and wait until ready."""
        self.spawn()
        self.wait_ready()

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Results for one batch, computed in the runner."""
        message = self._ask({"texts": list(texts)})
        if "results" not in message:
            raise self._error(message)
        results = message["results"]
        if not isinstance(results, list) or len(results) != len(texts):
            raise Internal(f"model runner for {self.name} answered a malformed batch")
        return results

    def explain(
        self, texts: Sequence[str], results: Sequence[dict[str, Any]], method: str | bool | None
    ) -> list[dict[str, Any]]:
        """``results`` of ``texts`` with their explanations, computed in the runner."""
        message = {"op": "explain", "texts": list(texts), "results": list(results)}
        answer = self._ask({**message, "method": method})
        found = answer.get("results")
        if not isinstance(found, list) or len(found) != len(texts):
            raise Internal(f"model runner for {self.name} answered a malformed explanation")
        return found

    def generate_stream(self, prompt: str, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The runner's generation events as they are decoded; closing the iterator early
        cancels the generation in the runner (within one token) before it returns."""
        message = {"op": "generate", "prompt": prompt, "options": options, "model": self.name}
        with self._watchdog():
            self._send(message)
        ended = False
        try:
            while True:
                with self._watchdog():
                    answer = self._receive()
                event = answer.get("event")
                if not isinstance(event, dict):
                    ended = True
                    raise self._error(answer)
                ended = bool(event.get("done"))
                yield event
                if ended:
                    return
        finally:
            if not ended:
                self._cancel()

    def generate_multiplexed(
        self, prompt: str, options: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """As :meth:`generate_stream`, as one of the runner's concurrent generations."""
        demux = self._demux
        if demux is None or not self.multiplex:
            raise Unavailable(f"model runner for {self.name} is not running; retry")
        stream = next(self._stream_ids)
        inbox = demux.open(stream)
        ended = False
        try:
            self._send(
                {
                    "op": "generate",
                    "stream": stream,
                    "prompt": prompt,
                    "options": options,
                    "model": self.name,
                }
            )
            while True:
                try:
                    answer = inbox.get(timeout=self.timeout)
                except queue.Empty:
                    ended = True
                    raise self._stop_hung() from None
                if answer is None:
                    ended = True
                    raise self._gone()
                event = answer.get("event")
                if not isinstance(event, dict):
                    ended = True
                    if answer.get("cancelled"):
                        return
                    raise self._error(answer)
                ended = bool(event.get("done"))
                yield event
                if ended:
                    return
        finally:
            demux.close(stream)
            if not ended:  # the caller left: stop it in the runner (late frames are dropped)
                with contextlib.suppress(AimassError):
                    self._send({"op": "cancel", "stream": stream})

    def _stop_hung(self) -> Unavailable:
        """Kill a runner that sent nothing for ``timeout`` seconds; the error says so."""
        self._timed_out = True
        proc = self._proc
        if proc is not None:
            proc.kill()
        return self._gone()

    def _cancel(self) -> None:
        """Stop the generation in progress and read up to its end, so the pipe is free."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            write_frame(proc.stdin, {"op": "cancel"})
            while True:
                with self._watchdog():
                    answer = self._receive()
                event = answer.get("event")
                if answer.get("cancelled") or "error" in answer:
                    return
                if isinstance(event, dict) and event.get("done"):
                    return
        except (AimassError, OSError, ValueError):
            self.close()  # a runner that cannot be stopped cleanly is replaced

    def _send(self, message: dict[str, Any]) -> None:
        """Write one frame to the runner (a closed pipe: the runner is gone)."""
        proc = self._require()
        assert proc.stdin is not None
        try:
            with self._write_lock:  # the generations of a multiplexed runner write too
                write_frame(proc.stdin, message)
        except (BrokenPipeError, OSError, ValueError):
            raise self._gone() from None

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one request and read its one answer (an error answer is raised)."""
        with self._watchdog():
            self._send(message)
            answer = self._receive()
        if "error" in answer:
            raise self._error(answer)
        return answer

    def close(self, timeout: float = 10.0) -> None:
        """Close the pipe (the runner exits on it); kill the runner if it does not."""
        proc, self._proc = self._proc, None
        self._demux = None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Closed once the runner is gone: a demultiplexing thread may be reading it until then.
        if proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()

    @contextlib.contextmanager
    def _watchdog(self) -> Iterator[None]:
        """Kill the runner if the block takes longer than ``timeout`` (the read then ends)."""
        proc = self._require()
        self._watch.arm(proc, self.timeout, self._expired)
        try:
            yield
        finally:
            self._watch.disarm()

    def _expired(self) -> None:
        self._timed_out = True

    def stop_watchdog(self) -> None:
        """End the watchdog thread (when this runner is retired for good)."""
        self._watch.stop()

    def _require(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise Unavailable(f"model runner for {self.name} is not running; retry")
        return self._proc

    def _receive(self) -> dict[str, Any]:
        proc = self._require()
        assert proc.stdout is not None
        demux = self._demux
        if demux is not None:  # its thread reads the frames; the untagged ones come here
            message = demux.replies.get()
            if message is None:
                raise self._gone()
            return message
        try:
            message = read_frame(proc.stdout)
        except (OSError, ValueError):
            message = None
        if message is None:
            raise self._gone()
        return message

    def _gone(self) -> Unavailable:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        self.close()
        if self._timed_out:
            self._timed_out = False
            return Unavailable(
                f"the model runner for {self.name} took longer than {self.timeout:g} s "
                "(AIMASS_SERVE_RUNNER_TIMEOUT_SECONDS) and was stopped; retry (a new runner "
                "starts), or raise the limit for a slow model",
                model=self.name,
            )
        return Unavailable(
            f"the model runner for {self.name} exited (code {code}) while serving; retry "
            "(a new runner starts) and see the server log for why",
            model=self.name,
        )

    def _error(self, message: dict[str, Any]) -> AimassError:
        error = message.get("error")
        if isinstance(error, dict):
            return error_from_dict(error)
        return Internal(f"model runner for {self.name} sent an unexpected message")


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
