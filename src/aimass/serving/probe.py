"""Peak memory of serving one model, measured in a fresh process.

``measure_serving_memory(bundle_dir, texts)`` starts ``python -m
aimass.serving.probe``, which imports the serving stack, loads the bundle and
predicts ``texts`` as one batch, reading its own resident-memory high-water
mark after each step. A fresh process is the only honest place to measure
this: in the caller's process the peak also holds whatever else ran before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from aimass.errors import Internal, Unavailable

__all__ = ["measure_serving_memory"]

TIMEOUT_S = 600


def _peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def measure_serving_memory(
    directory: Path, texts: list[str], *, device: str = "cpu", threads: int = 0
) -> dict[str, Any]:
    """Peak RSS (MiB) after importing the runtime, after loading, and after predicting ``texts``.

    Raises:
        Unavailable: the probe process failed or timed out (the message says why).
    """
    command = [sys.executable, "-m", "aimass.serving.probe", str(directory), device, str(threads)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            command,
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"the memory probe did not finish within {TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise Unavailable(f"the memory probe failed (exit {done.returncode}): {tail[0][:300]}")
    try:
        result = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        raise Internal(f"the memory probe printed no result: {done.stdout[-300:]!r}") from exc
    return dict(result)


def _main(argv: list[str]) -> None:
    directory, device, threads = Path(argv[0]), argv[1], int(argv[2])
    texts = json.loads(sys.stdin.read())
    import torch

    from aimass.serving.predictor import load_predictor
    from aimass.serving.sequence import SequencePredictor  # noqa: F401  (imports transformers)

    if threads:
        torch.set_num_threads(threads)
    runtime = _peak_rss_mib()
    predictor = load_predictor(directory, device=device)
    loaded = _peak_rss_mib()
    predictor.predict(texts, batch_size=max(len(texts), 1))
    peak = _peak_rss_mib()
    gpu = None
    if torch.cuda.is_available() and str(predictor.device).startswith("cuda"):
        gpu = torch.cuda.max_memory_allocated() / 2**20
    print(
        json.dumps(
            {
                "runtime_mib": runtime,
                "loaded_mib": loaded,
                "peak_mib": peak,
                "gpu_peak_mib": gpu,
                "method": f"peak resident set size (getrusage ru_maxrss) of a fresh process that "
                f"loads the bundle and predicts {len(texts)} texts as one batch",
            }
        )
    )


if __name__ == "__main__":
    _main(sys.argv[1:])
