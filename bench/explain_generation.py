"""Cost of explaining what a causal LM generates, against generating it.

The model is SmolLM2-135M-Instruct as it ships (converted from its GGUF, served
with its chat template), asked ``What is the capital of X? Answer in one
word.`` for ``--texts`` countries. For each prompt, in rotating order:

* ``predict``: one ``predict([prompt])`` call, a greedy generation (the unit of
  cost);
* ``occlusion``: the generated text's leave-one-word-out scores (the
  generation again, then one batched teacher-forced reading of the prompt's W
  one-word-shorter variants);
* ``integrated-gradients``: its attributions (``--steps`` points).

Medians per method and their ratios to ``predict`` (the table of
``bench/explain_ner.py``); the median |convergence delta|; the share of answers
that name the right capital; and, as checks that the scores mean something:

* of the generated answers' explanations, the share whose highest-scoring word
  is one of the prompt's two content words, the country or ``capital`` (the
  answer, "The capital of France is Paris.", repeats both);
* of the explanations of the right capital asked for as the continuation
  (``label="Paris"``: how much each word makes the model answer that), the
  share whose highest-scoring word is the country, per method, and integrated
  gradients' median |convergence delta| relative to f(prompt) − f(baseline).

    python bench/explain_generation.py [--texts 20] [--steps 50] [--threads 2]

Writes ``bench/results/explain-generation.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))
from explain_ner import measure, print_table, write  # bench/explain_ner.py

RESULTS = Path(__file__).parent / "results"
CAPITALS = {
    "France": "Paris",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Germany": "Berlin",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Austria": "Vienna",
    "Poland": "Warsaw",
    "Greece": "Athens",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Denmark": "Copenhagen",
    "Hungary": "Budapest",
    "Belgium": "Brussels",
    "Egypt": "Cairo",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Canada": "Ottawa",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Russia": "Moscow",
}


def prompt(country: str) -> str:
    """The question the model answers."""
    return f"What is the capital of {country}? Answer in one word."


def top_word(generated: dict[str, Any]) -> str:
    """The highest-scoring prompt word of an explained generation."""
    return str(max(generated["words"], key=lambda w: w["score"])["word"])


def content_word(generated: dict[str, Any]) -> bool:
    """Whether the highest-scoring prompt word is the country or ``capital``."""
    return top_word(generated) in CAPITALS or top_word(generated) == "capital"


def asked(model: Any, countries: list[str], steps: int) -> dict[str, Any]:
    """Explanations of the right capital as the continuation: does the country lead?"""
    country_first: dict[str, list[bool]] = {"occlusion": [], "integrated-gradients": []}
    relative = []
    for country in countries:
        for method, first in country_first.items():
            options = {"n_steps": steps} if method == "integrated-gradients" else {}
            (e,) = model.explain(
                [prompt(country)], method=method, label=CAPITALS[country], **options
            )
            (answer,) = e["entities"]
            first.append(top_word(answer) == country)
            if method == "integrated-gradients":
                d = answer["details"]
                span = abs(d["output_at_input"] - d["output_at_baseline"]) or 1.0
                relative.append(abs(d["convergence_delta"]) / span)
    return {
        "capital_asked_top_word_is_the_country": {
            m: sum(v) / len(v) for m, v in country_first.items()
        },
        "capital_asked_median_relative_delta": statistics.median(relative),
    }


def main() -> None:
    """Parse flags, load SmolLM2, time, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "explain-generation.json")
    args = parser.parse_args()

    import torch

    from aimass.serving.predictor import load_predictor
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    torch.set_num_threads(args.threads)
    countries = list(CAPITALS)[: args.texts]
    texts = [prompt(c) for c in countries]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home", device="cpu", num_threads=args.threads))
        try:
            base, _ = ws.bases.import_("smollm2")
            model = load_predictor(ws.artifacts.resolve(base.uri), device="cpu")
            result = measure(model, texts, args.steps, check=content_word)
            answers = [r["generated_text"] for r in model.predict(texts)]
            result.update(asked(model, countries, args.steps))
        finally:
            ws.close()
    del result["median_entities_per_sentence"]  # one generated text per prompt
    result["top_word_is_country_or_capital"] = result.pop("top_word_in_or_next_to_entity")
    right = [CAPITALS[c] in a for c, a in zip(countries, answers, strict=True)]
    result = {
        "benchmark": "explain-generation",
        "model": "smollm2 (SmolLM2-135M-Instruct, chat template)",
        "settings": {"texts": len(texts), "steps": args.steps, "threads": args.threads},
        "right_capital": sum(right) / len(right),
        "answers": dict(zip(countries, answers, strict=True)),
        **result,
    }
    print_table(
        f"smollm2, {len(texts)} prompts, right capital {result['right_capital']:.2f}", result
    )
    print(
        f"  |convergence delta| {result['median_abs_convergence_delta']}, "
        f"top word is the country or 'capital' {result['top_word_check_by_method']}"
    )
    print(
        f"  the right capital asked for: top word is the country "
        f"{result['capital_asked_top_word_is_the_country']}, integrated gradients' "
        f"|delta| / |f(x) - f(baseline)| {result['capital_asked_median_relative_delta']:.3f}"
    )
    write(args.out, result)


if __name__ == "__main__":
    main()
