"""The server's side of one model runner process: starting it, its pipe, its watchdog,
and the streams of a multiplexed runner.

:class:`RunnerProcess` is one child (``python -m aimass.serving.runner``) and the
pipe to it; :class:`~aimass.serving.runner.RunnerPool` holds several for one model
version. The messages are listed in :mod:`aimass.serving.runner`; the frames and the
runner's own side are in :mod:`aimass.serving.wire`.
"""

from __future__ import annotations

import contextlib
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

from aimass.errors import AimassError, Internal, Unavailable, error_from_dict
from aimass.serving._watchdog import Watchdog
from aimass.serving.wire import read_frame, write_frame

__all__ = ["RUNNER_PROGRAM", "RunnerProcess"]

log = logging.getLogger("aimass.serving")

# The runner a RunnerProcess starts, before its arguments (BUNDLE_DIR --device D
# --threads N). Tests substitute a child without torch that speaks the same wire.
RUNNER_PROGRAM: tuple[str, ...] = (sys.executable, "-m", "aimass.serving.runner")


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
        demux, proc = self._demux, self._proc
        if demux is None or proc is None or not self.multiplex:
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
                    raise self._stop_hung(proc) from None
                if answer is None:
                    # Not ``ended``: if the generate frame reached a runner started since,
                    # the cancel below stops it there.
                    raise self._lost(proc)
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

    def _stop_hung(self, proc: subprocess.Popen[bytes]) -> Unavailable:
        """Kill runner ``proc``, which sent a stream nothing for ``timeout`` seconds."""
        if self._proc is proc:
            self._timed_out = True
            proc.kill()
        return self._lost(proc)

    def _lost(self, proc: subprocess.Popen[bytes]) -> Unavailable:
        """The error of a stream whose runner ``proc`` ended. Only a stream of the current
        process handles its end: one of an earlier process must not stop the runner
        started since."""
        if self._proc is proc:
            return self._gone()
        return Unavailable(
            f"the model runner for {self.name} exited while generating; retry (a new runner "
            "has started)",
            model=self.name,
        )

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
