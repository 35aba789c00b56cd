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
"""

from __future__ import annotations

import json
import logging
import os
import select
import struct
import sys
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


def _generate(
    predictor: Any, message: dict[str, Any], inbox: IO[bytes], channel: IO[bytes]
) -> None:
    """Stream one generation as ``{"event": ...}`` frames; ``{"cancelled": true}`` ends one
    the server stopped (checked between two events)."""
    prompt, options = message.get("prompt"), message.get("options") or {}
    if not isinstance(prompt, str) or not isinstance(options, dict):
        raise InvalidArgument("runner protocol: 'generate' needs 'prompt' and 'options'")
    generator = require_generation(predictor, str(message.get("model") or "this"))
    events: Iterator[dict[str, Any]] = generator.generate_stream(prompt, **options)
    try:
        for event in events:
            write_frame(channel, {"event": event})
            if event.get("done"):
                return
            if _cancelled(inbox):
                write_frame(channel, {"cancelled": True})
                return
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


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
    write_frame(channel, {"ready": True, "pid": os.getpid()})
    while True:
        message = read_frame(inbox)
        if message is None:
            return 0
        op = message.get("op", "predict")
        if op == "cancel":
            continue  # it crossed a generation that had just ended: nothing to stop
        try:
            if op == "generate":
                _generate(predictor, message, inbox, channel)
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
        except AimassError as exc:
            reply = {"error": exc.to_dict()}
        except Exception as exc:
            log.exception("model runner failed a batch")
            reply = {"error": Internal(f"prediction failed: {type(exc).__name__}").to_dict()}
        write_frame(channel, reply)
