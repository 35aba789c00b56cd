"""The engine over fake models: each step once per batch, traces, abstain, fallback,
ensemble averages, label renames, explanations of the deciding step."""

from __future__ import annotations

import asyncio
import copy

import pytest

from aimass.data.deidentify import (
    create_project_key,
    deidentify_texts,
    key_fingerprint,
    load_project_key,
)
from aimass.errors import FailedPrecondition
from aimass.serving.pipelines import check_spec, pseudonym_key, run_pipeline


def pin(ref, labels=("neg", "pos")):
    return {
        "model": ref,
        "requested": ref,
        "digest": "d",
        "task": "classification",
        "labels": list(labels),
    }


def pinned(spec):
    check_spec(spec)
    for step in spec["steps"]:
        if step["type"] == "model":
            step["pin"] = pin(step["model"])
        elif step["type"] == "ensemble":
            step["pins"] = [pin(ref) for ref in step["models"]]
    return spec


class FakeModels:
    """Each model answers ``pos`` with a fixed probability; calls are recorded."""

    def __init__(self, **p_pos):
        self.p_pos = p_pos
        self.calls: list[tuple[str, list[str]]] = []

    async def predict(self, pin, texts):
        self.calls.append((pin["model"], list(texts)))
        p = self.p_pos[pin["model"].partition("@")[0]]
        label = "pos" if p >= 0.5 else "neg"
        return [
            {"label": label, "score": max(p, 1 - p), "probabilities": {"neg": 1 - p, "pos": p}}
            for _ in texts
        ]

    async def explain(self, pin, texts, results, method):
        return [
            {**r, "explanation": {"by": pin["model"], "text": t}}
            for t, r in zip(texts, results, strict=True)
        ]


def run(spec, texts, models, **kw):
    return asyncio.run(
        run_pipeline(pinned(spec), texts, predict=models.predict, explain=models.explain, **kw)
    )


ROUTED = {
    "steps": [
        {"name": "clean", "type": "deidentify", "recognizers": ["email"], "next": "lang"},
        {"name": "lang", "type": "route", "routes": {"zh": "zh"}, "default": "en"},
        {"name": "zh", "type": "model", "model": "zh-m@1", "next": "gate"},
        {"name": "en", "type": "model", "model": "en-m@1", "next": "gate"},
        {"name": "gate", "type": "threshold", "min_score": 0.7},
    ]
}


def test_inputs_are_cleaned_routed_batched_per_step_and_gated():
    models = FakeModels(**{"zh-m": 0.9, "en-m": 0.6})
    texts = ["mail ann@example.org, great", "这部电影很好", "a fine film"]
    run_ = run(ROUTED, texts, models)
    # one call per model step, holding every input routed to it, already de-identified
    assert models.calls == [
        ("zh-m@1", ["这部电影很好"]),
        ("en-m@1", ["mail <EMAIL_ADDRESS>, great", "a fine film"]),
    ]
    first, chinese, _ = run_.results
    assert chinese["label"] == "pos" and not chinese["abstained"]
    assert chinese["decided_by"] == {"step": "zh", "model": "zh-m@1"}
    assert [t["step"] for t in chinese["trace"]] == ["clean", "lang", "zh", "gate"]
    assert chinese["trace"][1] == {"step": "lang", "type": "route", "language": "zh", "to": "zh"}
    assert first["trace"][0]["changed"] is True
    assert first["label"] == "abstain" and first["abstained"]
    assert "below 0.7 at step 'gate'" in first["reason"] and "'en'" in first["reason"]
    assert first["probabilities"] == {"neg": 0.4, "pos": 0.6}
    assert [s["step"] for s in run_.steps] == ["clean", "lang", "zh", "en", "gate"]
    assert run_.steps[3] == {"step": "en", "type": "model", "inputs": 2, "model": "en-m@1"}


def test_a_low_score_falls_back_to_another_step():
    spec = {
        "steps": [
            {"name": "fast", "type": "model", "model": "small@1", "next": "gate"},
            {"name": "gate", "type": "threshold", "min_score": 0.8, "fallback": "big"},
            {"name": "big", "type": "model", "model": "large@3"},
        ]
    }
    models = FakeModels(small=0.6, large=0.95)
    result = run(spec, ["x"], models).results[0]
    assert result["label"] == "pos" and result["score"] == 0.95
    assert result["decided_by"] == {"step": "big", "model": "large@3"}
    assert result["trace"][1]["to"] == "big" and result["trace"][1]["passed"] is False


def test_an_ensemble_averages_probabilities_with_weights_then_labels_rename():
    spec = {
        "steps": [
            {
                "name": "avg",
                "type": "ensemble",
                "models": ["a@1", "b@1"],
                "weights": [3, 1],
                "next": "names",
            },
            {"name": "names", "type": "labels", "map": {"pos": "positive", "neg": "negative"}},
        ]
    }
    result = run(spec, ["x", "y"], FakeModels(a=0.8, b=0.2)).results[0]
    assert result["label"] == "positive"
    assert abs(result["probabilities"]["positive"] - 0.65) < 1e-9
    assert abs(result["score"] - 0.65) < 1e-9
    assert result["decided_by"] == {"step": "avg", "models": ["a@1", "b@1"]}
    assert result["trace"][-1] == {
        "step": "names",
        "type": "labels",
        "from": "pos",
        "to": "positive",
    }


def test_explanations_come_from_the_model_that_decided():
    models = FakeModels(**{"zh-m": 0.9, "en-m": 0.9})
    results = run(ROUTED, ["这部电影很好", "a good film"], models, method=True).results
    assert results[0]["explanation"] == {"by": "zh-m@1", "text": "这部电影很好"}
    assert results[1]["explanation"] == {"by": "en-m@1", "text": "a good film"}
    spec = {"steps": [{"name": "avg", "type": "ensemble", "models": ["a@1", "b@1"]}]}
    assert run(spec, ["x"], FakeModels(a=0.9, b=0.9), method=True).results[0]["explanation"] is None


def test_steps_that_ran_are_reported_even_when_a_later_step_fails():
    class Broken(FakeModels):
        async def predict(self, pin, texts):
            if pin["model"].startswith("en-m"):
                raise RuntimeError("runner died")
            return await super().predict(pin, texts)

    ran: list[dict] = []
    models = Broken(**{"zh-m": 0.9})
    with pytest.raises(RuntimeError):
        run(ROUTED, ["这部电影很好", "a good film"], models, ran=ran)
    assert [s["step"] for s in ran] == ["clean", "lang", "zh"]


PSEUDONYMIZED = {
    "steps": [
        {
            "name": "clean",
            "type": "deidentify",
            "mode": "pseudonymize",
            "recognizers": ["email"],
            "next": "m",
        },
        {"name": "m", "type": "model", "model": "en-m@1"},
    ]
}


def with_fingerprint(spec, key):
    spec = pinned(copy.deepcopy(spec))
    spec["steps"][0]["key_fingerprint"] = key_fingerprint(key)
    return spec


def test_a_pseudonymizing_step_gives_the_models_what_a_dataset_import_would():
    key = bytes(range(32))
    text = "write to ann@example.org"
    models = FakeModels(**{"en-m": 0.9})
    spec = with_fingerprint(PSEUDONYMIZED, key)
    asyncio.run(run_pipeline(spec, [text], predict=models.predict, key=key))
    [expected], _ = deidentify_texts([text], mode="pseudonymize", recognizers=["email"], key=key)
    assert expected.startswith("write to <EMAIL_ADDRESS_") and expected != text
    assert models.calls == [("en-m@1", [expected])]


def test_a_pseudonymizing_step_refuses_no_key_and_another_key():
    key = bytes(range(32))
    spec = with_fingerprint(PSEUDONYMIZED, key)
    models = FakeModels(**{"en-m": 0.9})
    with pytest.raises(FailedPrecondition, match="aimass pii key create"):
        asyncio.run(run_pipeline(spec, ["x"], predict=models.predict))
    with pytest.raises(FailedPrecondition, match="create a new pipeline version") as caught:
        asyncio.run(run_pipeline(spec, ["x"], predict=models.predict, key=bytes(32)))
    assert key_fingerprint(key) in caught.value.message
    assert models.calls == [], "no model saw text the step could not clean"


def test_only_a_pseudonymizing_spec_needs_the_project_key(tmp_path):
    assert pseudonym_key(pinned(copy.deepcopy(ROUTED)), tmp_path, "default") is None
    with pytest.raises(FailedPrecondition, match="aimass pii key create --project default"):
        pseudonym_key(PSEUDONYMIZED, tmp_path, "default")
    create_project_key(tmp_path, "default")
    assert pseudonym_key(PSEUDONYMIZED, tmp_path, "default") == load_project_key(
        tmp_path, "default"
    )
