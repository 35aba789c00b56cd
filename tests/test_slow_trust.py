"""Slow: a report and explanations for the real quickstart model (MiniLM on Rotten Tomatoes).

Proves the trust features on real weights and data: the report's numbers are
sane for a model that really works, the uncased tokenizer makes casing and
whitespace perturbations harmless, and integrated gradients point at the
sentiment words.
"""

import json

import pytest

from aimass.jobs.evaluate import EvaluateSpec
from aimass.jobs.train import TrainSpec

pytestmark = pytest.mark.long


def test_report_and_explanations_for_the_quickstart_model(workspace):
    dataset, _ = workspace.datasets.import_sample("rotten-tomatoes")
    base, _ = workspace.bases.import_("minilm")
    version = workspace.jobs.train(
        TrainSpec(
            dataset=dataset.ref, base=base.ref, model="sentiment", config={"mode": "features"}
        )
    )
    attachment = workspace.jobs.evaluate(
        EvaluateSpec(
            model=version.ref,
            dataset=dataset.ref,
            group_field="movie",
            options={"min_group_size": 5, "robustness_sample": 300, "explain_examples": 4},
        )
    )
    document = json.loads(workspace.reports.report_file(attachment, fmt="json").read_text())
    sections = document["sections"]
    quality = sections["quality"]["data"]
    assert quality["count"] == 1275 and quality["accuracy"] >= 0.75
    assert sections["calibration"]["data"]["ece"] < 0.1
    fairness = sections["fairness"]["data"]
    assert len(fairness["groups"]) >= 20 and fairness["excluded_groups"]
    flips = {
        (r["perturbation"], r["strength"]): r["flip_rate"]
        for r in sections["robustness"]["data"]["results"]
    }
    # all-MiniLM-L6-v2 is uncased and its tokenizer ignores whitespace: these cannot flip anything.
    assert flips[("casing", 1.0)] == 0.0 and flips[("whitespace", 1.0)] == 0.0
    assert flips[("typos", 0.3)] > 0.0 and flips[("word-drop", 0.3)] > 0.0
    memory = sections["resources"]["data"]["memory"]
    assert memory["peak_mib"] - memory["runtime_mib"] > 50  # the 90 MB of MiniLM weights
    assert len(sections["explanations"]["data"]["examples"]) == 4

    explained = workspace.serving.predict(
        "sentiment", ["A wonderful, moving film.", "A dull and lifeless mess."], explain=True
    )
    fresh, rotten = (r["explanation"] for r in explained)
    assert (fresh["target"], rotten["target"]) == ("fresh", "rotten")
    for e, words in ((fresh, {"wonderful", "moving"}), (rotten, {"dull", "lifeless", "mess"})):
        top = max(e["words"], key=lambda w: w["score"])
        assert top["word"] in words, e["words"]
        gap = e["details"]["output_at_input"] - e["details"]["output_at_baseline"]
        assert abs(e["details"]["convergence_delta"]) < 0.05 * max(abs(gap), 1e-3)
    occlusion = workspace.serving.explain(
        "sentiment", ["A dull and lifeless mess."], method="occlusion"
    )[0]
    assert max(occlusion["words"], key=lambda w: w["score"])["word"] in {"dull", "lifeless", "mess"}
    attention = workspace.serving.explain(
        "sentiment", ["A dull and lifeless mess."], method="attention"
    )[0]
    assert sum(t["score"] for t in attention["tokens"]) == pytest.approx(1.0, abs=1e-4)
