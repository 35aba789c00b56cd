#!/bin/bash
# The GPU check (issue 17) on a lent machine with no network, from the repo root there,
# after bench/gpu/pack.sh here and with .whl and .gpu carried along:
#   bash .gpu/run.sh                        (or THREADS="default 1 2" bash .gpu/run.sh)
# The CUDA tests, bench/train.py and bench/serve.py on the GPU, then the serving and
# training suites with CUDA as the default device. The packages the CUDA image lacks
# install into /tmp/site; its own torch and transformers are used (not the lock's).
# Results land in bench/results/ and are copied to $OUT when it is set.
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp}
S=$(date +%s)
step() { echo "=== $1 [$(($(date +%s) - S)) s]"; }
step install
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
python3 .gpu/prep.py /tmp/minilm /tmp/site || exit 1
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'cuda', torch.cuda.is_available()); import aimass.server.app"
pytest=(python3 -m pytest -o addopts= -p no:warnings -p no:cacheprovider -q)
step gpu-tests
timeout 90 "${pytest[@]}" -rA -m gpu tests/serving/test_gpu.py 2>&1 | tail -8
step train-bench
timeout 150 python3 bench/train.py --device cuda --minilm /tmp/minilm --repeats 3 \
    --threads 8 --out train-gpu.json 2>&1 | tail -10
cp bench/results/train-gpu.json "$OUT/" 2>/dev/null
# The runner's torch threads on CUDA (default: cores / runners) are the suspect of
# docs/measured.md#on-a-gpu; THREADS="default 1 2" compares them, one run each.
for threads in ${THREADS:-default}; do
    step "serve-bench threads=$threads"
    name=serve-gpu-threads-$threads.json
    [ "$threads" = default ] && name=serve-gpu.json
    (
        [ "$threads" = default ] || export AIMASS_SERVE_RUNNER_THREADS=$threads
        timeout 210 python3 bench/serve.py --device cuda --base /tmp/minilm --seconds 5 \
            --out "$name" 2>&1 | tail -8
    )
    cp "bench/results/$name" "$OUT/" 2>/dev/null
done
step suites
timeout 150 "${pytest[@]}" --suite=test -n 8 --continue-on-collection-errors \
    tests/serving tests/training 2>&1 | tail -40 | cut -c1-400
step done
