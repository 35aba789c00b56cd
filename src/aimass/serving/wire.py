"""The runner wire: length-prefixed JSON frames, and the runner's side of them.

Every message is a 4-byte big-endian length followed by that many bytes of
UTF-8 JSON; no pickle crosses the pipe. :func:`serve` is what a runner child
runs (see :mod:`aimass.serving.runner` for the messages and the server's side):
it moves ``sys.stdout`` to stderr before loading anything, so a library that
prints cannot corrupt a frame, then answers one batch at a time until its stdin
closes. It takes the predictor's loader as an argument, so tests run the real
wire around a predictor without torch.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, Protocol

from aimass.errors import AimassError, Internal, InvalidArgument

__all__ = ["Predicts", "read_frame", "serve", "write_frame"]

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
        try:
            texts = message.get("texts")
            if not isinstance(texts, list):
                raise InvalidArgument("runner protocol: a request needs 'texts'")
            reply: dict[str, Any] = {"results": predictor.predict(texts, batch_size=len(texts))}
        except AimassError as exc:
            reply = {"error": exc.to_dict()}
        except Exception as exc:
            log.exception("model runner failed a batch")
            reply = {"error": Internal(f"prediction failed: {type(exc).__name__}").to_dict()}
        write_frame(channel, reply)
