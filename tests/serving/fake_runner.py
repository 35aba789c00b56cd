"""A runner child without torch: the real wire (``aimass.serving.wire.serve``) around a
fake predictor, so protocol and watchdog tests start in a fraction of a second.

Usage (as a ``RunnerPool(program=...)``): ``python fake_runner.py BUNDLE --device D --threads N``.
``AIMASS_FAKE_RUNNER=fail-load`` makes loading fail with ``BUNDLE_INVALID``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from aimass.errors import BundleFormatError, InvalidArgument
from aimass.serving.wire import serve


class KeywordPredictor:
    """'pos' when a text says 'good', else 'neg'; an empty text is refused like the real one."""

    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        if any(not text for text in texts):
            raise InvalidArgument("input 0 is empty")
        return [
            {"label": "pos" if "good" in t else "neg", "score": 1.0, "pid": os.getpid()}
            for t in texts
        ]


def load() -> KeywordPredictor:
    if os.environ.get("AIMASS_FAKE_RUNNER") == "fail-load":
        raise BundleFormatError(f"fake runner refuses {sys.argv[1]}")
    return KeywordPredictor()


if __name__ == "__main__":
    raise SystemExit(serve(load))
