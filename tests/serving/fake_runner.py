"""A runner child without torch: the real wire (``aimass.serving.wire.serve``) around a
fake predictor, so protocol and watchdog tests start in a fraction of a second.

Usage (as a ``RunnerPool(program=...)``): ``python fake_runner.py BUNDLE --device D --threads N``.
``AIMASS_FAKE_RUNNER=fail-load`` makes loading fail with ``BUNDLE_INVALID``;
``AIMASS_FAKE_RUNNER=classifier`` serves a predictor that does not generate text.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from aimass.errors import BundleFormatError, InvalidArgument
from aimass.serving.wire import serve


class KeywordPredictor:
    """'pos' when a text says 'good', else 'neg'; an empty text is refused like the real one."""

    task = "classification"

    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        if any(not text for text in texts):
            raise InvalidArgument("input 0 is empty")
        return [
            {"label": "pos" if "good" in t else "neg", "score": 1.0, "pid": os.getpid()}
            for t in texts
        ]

    def with_explanations(
        self, texts: Sequence[str], results: list[dict[str, Any]], explain: Any
    ) -> list[dict[str, Any]]:
        """Each result with the words of its text as the 'explanation', and this pid."""
        return [
            {**r, "explanation": {"method": explain, "words": t.split(), "pid": os.getpid()}}
            for t, r in zip(texts, results, strict=True)
        ]


class EchoGenerator(KeywordPredictor):
    """Generates the prompt's words back, one event each, ``delay`` seconds apart; each
    event says how many generations were running at once (``active``)."""

    task = "causal-lm"

    def __init__(self) -> None:
        self.active = 0
        self.lock = threading.Lock()

    def generate_stream(
        self, prompt: str, *, max_new_tokens: int = 8, delay: float = 0.0
    ) -> Iterator[dict[str, Any]]:
        if prompt == "crash":
            os._exit(3)  # the runner dies mid-stream
        with self.lock:
            self.active += 1
        try:
            words = (prompt.split() * max_new_tokens)[:max_new_tokens]
            for word in words:
                time.sleep(delay)
                yield {"text": word + " ", "pid": os.getpid(), "active": self.active}
            yield {"done": True, "text": " ".join(words), "finish_reason": "length"}
        finally:
            with self.lock:
                self.active -= 1


def load() -> KeywordPredictor:
    mode = os.environ.get("AIMASS_FAKE_RUNNER")
    if mode == "fail-load":
        raise BundleFormatError(f"fake runner refuses {sys.argv[1]}")
    return KeywordPredictor() if mode == "classifier" else EchoGenerator()


if __name__ == "__main__":
    raise SystemExit(serve(load))
