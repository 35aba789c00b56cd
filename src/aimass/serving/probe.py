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


def _memory_mib() -> tuple[float, float]:
    """``(resident now, resident high-water mark)`` of this process, in MiB.

    Linux's ``/proc/self/status`` is read, not ``getrusage``: a child's ``ru_maxrss``
    starts from its parent's resident size at fork, so in a probe started by a big
    process it reports the parent's memory, not the probe's.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        return (
            int(fields["VmRSS"].split()[0]) / 1024,
            int(fields["VmHWM"].split()[0]) / 1024,
        )
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes vs KiB
        return peak_mib, peak_mib


def measure_serving_memory(
    directory: Path, texts: list[str], *, device: str = "cpu", threads: int = 0
) -> dict[str, Any]:
    """Resident memory (MiB) after importing the runtime and after loading, and the peak after
    predicting ``texts`` as one batch.

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
    runtime, _ = _memory_mib()
    predictor = load_predictor(directory, device=device)
    loaded, _ = _memory_mib()
    predictor.predict(texts, batch_size=max(len(texts), 1))
    _, peak = _memory_mib()
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
                "method": "resident memory of a fresh process: after importing the runtime, "
                f"after loading the bundle, and its peak (high-water mark) after predicting "
                f"{len(texts)} texts as one batch",
            }
        )
    )


if __name__ == "__main__":
    _main(sys.argv[1:])
