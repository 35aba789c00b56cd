"""The runner wire: length-prefixed JSON frames, and the runner's side of them.

Every message is a 4-byte big-endian length followed by that many bytes of
UTF-8 JSON; no pickle crosses the pipe. :func:`serve` is what a runner child
runs (see :mod:`aimass.serving.runner` for the messages and the server's side):
it moves ``sys.stdout`` to stderr before loading anything, so a library that
prints cannot corrupt a frame, then answers one batch at a time until its stdin
closes. It takes the predictor's loader as an argument, so tests run the real
wire around a predictor without torch.

One runner serves all three calls on a model, so one copy of it is loaded:
``predict`` (a batch), ``explain`` (a batch's explanations, added to its results)
and ``generate`` (a stream of events, which the server may cancel between two).

A ``generate`` (or ``cancel``) frame with a ``"stream"`` id is one of several
generations the runner runs at once, each in a thread of its own, so a causal
LM's decode steps batch them (:mod:`aimass.serving.decode_batch`); every frame
it sends back carries the same id. Frames without one are answered in order,
between them, as above.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import select
import struct
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any, Protocol

from aimass.errors import AimassError, Internal, InvalidArgument, UnsupportedModel

__all__ = ["Predicts", "read_frame", "require_generation", "serve", "write_frame"]

log = logging.getLogger("aimass.serving")

_HEADER = struct.Struct(">I")
# A frame larger than this is a protocol error, not a batch (256 inputs of the
# largest accepted text, with their results, stay far below it).
_MAX_FRAME = 1 << 30


def write_frame(stream: IO[bytes], message: dict[str, Any]) -> None:
    """Send one message (length-prefixed UTF-8 JSON) and flush."""
    data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> dict[str, Any] | None:
    """The next message, or None when the other side closed the stream."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_FRAME:
        raise Internal(f"runner protocol: a frame of {size:,} bytes is over the limit")
    data = stream.read(size)
    if len(data) < size:
        return None
    message = json.loads(data)
    if not isinstance(message, dict):
        raise Internal("runner protocol: a frame is not a JSON object")
    return message


class Predicts(Protocol):
    """What a runner serves: the predictor's batch call."""

    def predict(self, texts: Sequence[str], *, batch_size: int = ...) -> list[dict[str, Any]]:
        """Results for ``texts``, in order."""
        ...


def require_generation(predictor: Any, name: str) -> Any:
    """``predictor`` when it generates text; UnsupportedModel naming ``name`` otherwise."""
    if not hasattr(predictor, "generate_stream"):
        raise UnsupportedModel(
            f"model {name!r} is a {getattr(predictor, 'task', 'non-generative')} model and does "
            "not generate text; use a causal-lm or seq2seq model (or 'aimass predict')"
        )
    return predictor


def _explain(predictor: Any, message: dict[str, Any]) -> dict[str, Any]:
    texts, results = message.get("texts"), message.get("results")
    if not isinstance(texts, list) or not isinstance(results, list):
        raise InvalidArgument("runner protocol: 'explain' needs 'texts' and 'results'")
    if not hasattr(predictor, "with_explanations"):
        raise UnsupportedModel("this model has no explanations")
    return {"results": predictor.with_explanations(texts, results, message.get("method"))}


def _cancelled(inbox: IO[bytes]) -> bool:
    """Whether the server asked to stop (a frame, or its end of the pipe closed)."""
    if not select.select([inbox], [], [], 0)[0]:
        return False
    message = read_frame(inbox)
    return message is None or message.get("op") == "cancel"


Send = Callable[[dict[str, Any]], None]


def _generate(
    predictor: Any, message: dict[str, Any], send: Send, cancelled: Callable[[], bool]
) -> None:
    """Stream one generation as ``{"event": ...}`` frames; ``{"cancelled": true}`` ends one
    the server stopped (checked between two events). The frames carry the message's
    ``stream`` id when it has one."""
    prompt, options = message.get("prompt"), message.get("options") or {}
    if not isinstance(prompt, str) or not isinstance(options, dict):
        raise InvalidArgument("runner protocol: 'generate' needs 'prompt' and 'options'")
    tag = {"stream": message["stream"]} if "stream" in message else {}
    generator = require_generation(predictor, str(message.get("model") or "this"))
    events: Iterator[dict[str, Any]] = generator.generate_stream(prompt, **options)
    try:
        for event in events:
            send({**tag, "event": event})
            if event.get("done"):
                return
            if cancelled():
                send({**tag, "cancelled": True})
                return
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def _error_frame(exc: BaseException, what: str) -> dict[str, Any]:
    if isinstance(exc, AimassError):
        return {"error": exc.to_dict()}
    log.exception("model runner failed %s", what)
    return {"error": Internal(f"{what} failed: {type(exc).__name__}").to_dict()}


class _Streams:
    """The generations a runner runs at once, one thread each, by stream id."""

    def __init__(self, predictor: Any, send: Send) -> None:
        self.predictor = predictor
        self.send = send
        self.stops: dict[Any, threading.Event] = {}

    def handle(self, message: dict[str, Any]) -> None:
        """Start a tagged ``generate``, or stop the stream a tagged ``cancel`` names."""
        stream = message["stream"]
        if message.get("op") == "cancel":
            stop = self.stops.get(stream)
            if stop is not None:  # else it crossed the end of its stream: nothing to stop
                stop.set()
            return
        if message.get("op") != "generate":
            error = InvalidArgument(f"runner protocol: op {message.get('op')!r} has no stream")
            self.send({"stream": stream, "error": error.to_dict()})
            return
        stop = self.stops[stream] = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(message, stop), name=f"aimass-stream-{stream}", daemon=True
        )
        thread.start()

    def _run(self, message: dict[str, Any], stop: threading.Event) -> None:
        stream = message["stream"]
        try:
            _generate(self.predictor, message, self.send, stop.is_set)
        except Exception as exc:
            with contextlib.suppress(OSError, ValueError):  # the server has gone: nobody reads
                self.send({"stream": stream, **_error_frame(exc, "generation")})
        finally:
            self.stops.pop(stream, None)


def serve(load: Callable[[], Predicts]) -> int:
    """The runner's side of the wire (see :mod:`aimass.serving.runner`); returns the exit status.

    ``load`` builds the predictor once the wire is set up, so that anything it
    prints while importing lands on stderr. ``main`` passes the torch loader.
    """
    import signal

    # Frames go to a private copy of the original stdout; fd 1 becomes stderr, so
    # prints from any library land in the log, never inside a frame.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    inbox = os.fdopen(os.dup(0), "rb")
    # Ctrl-C reaches the whole process group; the server decides when runners stop
    # (it closes their stdin), so a runner finishes its batch instead of a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        predictor = load()
        warm_up = getattr(predictor, "warm_up", None)
        if callable(warm_up):
            warm_up()
        else:
            predictor.predict(["warm-up"])
    except AimassError as exc:
        write_frame(channel, {"error": exc.to_dict()})
        return 1
    except Exception as exc:
        log.exception("model runner could not load its model")
        error = Internal(f"the model runner could not load the model: {type(exc).__name__}")
        write_frame(channel, {"error": error.to_dict()})
        return 1
    # The model and every module stay loaded for the runner's life: out of the
    # collector's sight, a full collection (~200 ms over torch's objects here) no
    # longer stalls whichever batch it lands in.
    gc.collect()
    gc.freeze()
    write_frame(channel, {"ready": True, "pid": os.getpid()})
    lock = threading.Lock()

    def send(message: dict[str, Any]) -> None:
        with lock:  # stream threads and this loop share the channel
            write_frame(channel, message)

    streams = _Streams(predictor, send)
    while True:
        message = read_frame(inbox)
        if message is None:
            return 0
        if "stream" in message:
            streams.handle(message)
            continue
        op = message.get("op", "predict")
        if op == "cancel":
            continue  # it crossed a generation that had just ended: nothing to stop
        try:
            if op == "generate":
                _generate(predictor, message, send, lambda: _cancelled(inbox))
                continue
            if op == "explain":
                reply = _explain(predictor, message)
            elif op == "predict":
                texts = message.get("texts")
                if not isinstance(texts, list):
                    raise InvalidArgument("runner protocol: a request needs 'texts'")
                reply = {"results": predictor.predict(texts, batch_size=len(texts))}
            else:
                raise InvalidArgument(f"runner protocol: unknown op {op!r}")
        except Exception as exc:
            reply = _error_frame(exc, "prediction")
        send(reply)
