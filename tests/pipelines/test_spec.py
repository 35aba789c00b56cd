"""The spec checks: every problem named with its step, value and fix; the flow of
predictions; label sets once pinned."""

from __future__ import annotations

import copy

import pytest

from aimass.errors import ErrorCode, InvalidArgument
from aimass.serving.pipelines import (
    STEP_TYPES,
    check_labels,
    check_spec,
    detect_language,
    model_refs,
    output_labels,
    topological_order,
)

GOOD = {
    "steps": [
        {"name": "clean", "type": "deidentify", "recognizers": ["email"], "next": "lang"},
        {"name": "lang", "type": "route", "routes": {"zh": "zh", "en": "en"}, "default": "en"},
        {"name": "zh", "type": "model", "model": "zh-m@production", "next": "gate"},
        {"name": "en", "type": "model", "model": "en-m@2", "next": "gate"},
        {"name": "gate", "type": "threshold", "min_score": 0.7, "fallback": "abstain"},
    ]
}


def problems(spec) -> str:
    with pytest.raises(InvalidArgument) as info:
        check_spec(spec)
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    return info.value.message


def edited(**changes):
    spec = copy.deepcopy(GOOD)
    for name, fields in changes.items():
        step = next(s for s in spec["steps"] if s["name"] == name)
        step.update(fields)
        for key in [k for k, v in fields.items() if v is None]:
            del step[key]
    return spec


def test_a_good_spec_passes_and_orders_its_steps():
    assert check_spec(copy.deepcopy(GOOD)) == GOOD
    assert topological_order(GOOD) == ["clean", "lang", "zh", "en", "gate"]
    assert [ref for _, ref in model_refs(GOOD)] == ["zh-m@production", "en-m@2"]
    assert set(STEP_TYPES) == {"model", "ensemble", "deidentify", "route", "threshold", "labels"}


def test_unknown_types_and_fields_are_named_with_the_valid_ones():
    message = problems(edited(gate={"type": "vote"}))
    assert "step 'gate': unknown type 'vote'" in message and "threshold" in message
    message = problems(edited(en={"nxt": "gate"}))
    assert "unknown field 'nxt'" in message and "fields: model, next, pin" in message


def test_every_problem_comes_back_at_once():
    spec = edited(gate={"min_score": 3}, clean={"mode": "shuffle"})
    message = problems(spec)
    assert "min_score 3 must be a number from 0 to 1" in message
    assert "mode 'shuffle' is not one of mask, redact, pseudonymize" in message


def test_dangling_references_name_the_field_and_the_steps():
    message = problems(edited(zh={"next": "gaet"}))
    assert "step 'zh': next names 'gaet', which is not a step" in message
    assert "steps: clean, lang, zh, en, gate" in message


def test_a_cycle_is_refused_naming_its_steps():
    spec = edited(gate={"next": "lang"})
    message = problems(spec)
    assert "form a cycle" in message and "lang" in message and "gate" in message


def test_unreachable_steps_are_refused():
    spec = copy.deepcopy(GOOD)
    spec["steps"].append({"name": "spare", "type": "model", "model": "x@1"})
    assert "reaches the steps spare" in problems(spec)


def test_names_are_validated():
    message = problems(edited(gate={"name": "../gate"}))
    assert "invalid pipeline step name" in message
    dup = copy.deepcopy(GOOD)
    dup["steps"][3]["name"] = "zh"
    assert "defined twice" in problems(dup)
    assert "is not a model reference" in problems(edited(en={"model": "En M"}))


def test_a_threshold_before_any_model_is_refused():
    spec = {
        "steps": [
            {"name": "gate", "type": "threshold", "min_score": 0.5, "next": "m"},
            {"name": "m", "type": "model", "model": "m@1"},
        ]
    }
    assert "before any model or ensemble step" in problems(spec)


def test_a_path_that_ends_without_a_prediction_is_refused():
    spec = {"steps": [{"name": "clean", "type": "deidentify"}]}
    assert "a deidentify step needs 'next'" in problems(spec)


def test_routes_must_cover_every_language_or_have_a_default():
    message = problems(edited(lang={"default": None, "routes": {"zh": "zh", "fr": "en"}}))
    assert "route key 'fr'" in message
    assert "have nowhere to go; add 'default'" in message


def test_deidentify_recognizers_are_checked():
    assert "unknown recognizer 'emails'" in problems(edited(clean={"recognizers": ["emails"]}))


def test_top_level_shape():
    assert "'steps' must be a non-empty list" in problems({"steps": []})
    assert "unknown top-level field 'stpes'" in problems({"stpes": [], "steps": GOOD["steps"]})
    assert "entry 'nope' is not a step" in problems({**GOOD, "entry": "nope"})


def pin(ref, labels):
    return {
        "model": ref,
        "requested": ref,
        "digest": "d",
        "task": "classification",
        "labels": labels,
    }


def test_an_ensemble_needs_one_label_set():
    spec = {
        "steps": [
            {"name": "avg", "type": "ensemble", "models": ["a@1", "b@1"], "next": "names"},
            {"name": "names", "type": "labels", "map": {"pos": "positive", "meh": "x"}},
        ]
    }
    check_spec(spec)
    spec["steps"][0]["pins"] = [pin("a@1", ["neg", "pos"]), pin("b@1", ["neg", "neutral", "pos"])]
    with pytest.raises(InvalidArgument) as info:
        check_labels(spec)
    assert "a@1 has ['neg', 'pos'] and b@1 has ['neg', 'neutral', 'pos']" in info.value.message
    assert "map renames 'meh', which no model before it predicts" in info.value.message


def test_an_ensemble_lists_distinct_models_and_matching_weights():
    spec = {"steps": [{"name": "avg", "type": "ensemble", "models": ["a@1", "a@1"]}]}
    assert "lists a reference twice" in problems(spec)
    # two versions of one model (a retrained one with its elder) may be averaged
    check_spec({"steps": [{"name": "avg", "type": "ensemble", "models": ["a@1", "a@2"]}]})
    spec = {
        "steps": [{"name": "avg", "type": "ensemble", "models": ["a@1", "b@1"], "weights": [1]}]
    }
    assert "must be 2 positive numbers" in problems(spec)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("a good film", "en"),
        ("这部电影很好", "zh"),
        ("这部 film 很好看", "zh"),
        ("Отличный фильм", "other"),
        ("12345 !!", "other"),
    ],
)
def test_language_is_detected_by_script(text, language):
    assert detect_language(text) == language


def test_values_of_the_wrong_json_type_are_problems_not_crashes():
    assert "unknown type \"['model']\"" in problems(edited(gate={"type": ["model"]}))
    assert "next must be the name of a step, not '5'" in problems(edited(zh={"next": 5}))
    assert "fallback must be the name of a step" in problems(edited(gate={"fallback": 1}))
    assert "routes must map languages" in problems(edited(lang={"routes": {"zh": 3}}))
    assert "entry \"['clean']\" is not a step" in problems({**GOOD, "entry": ["clean"]})


def _pinned(spec, labels):
    """``spec`` with each model step pinned to a model predicting ``labels[step name]``."""
    spec = copy.deepcopy(spec)
    for step in spec["steps"]:
        if step["type"] == "model":
            step["pin"] = {"model": step["model"], "labels": labels[step["name"]]}
    return spec


def test_output_labels_are_what_the_pipeline_can_answer_with():
    # Both models' labels reach the end; the threshold may abstain.
    assert output_labels(_pinned(GOOD, {"zh": ["负", "正"], "en": ["neg", "pos"]})) == [
        "负",
        "正",
        "neg",
        "pos",
        "abstain",
    ]
    # A labels step renames the Chinese model's labels; a fallback model replaces abstaining.
    mapped = {
        "steps": [
            {"name": "lang", "type": "route", "routes": {"zh": "zh"}, "default": "en"},
            {"name": "zh", "type": "model", "model": "zh-m@1", "next": "names"},
            {"name": "names", "type": "labels", "map": {"负": "neg", "正": "pos"}},
            {"name": "en", "type": "model", "model": "en-m@1", "next": "gate"},
            {"name": "gate", "type": "threshold", "min_score": 0.9, "fallback": "big"},
            {"name": "big", "type": "model", "model": "big@1"},
        ]
    }
    labels = {"zh": ["负", "正"], "en": ["neg", "pos"], "big": ["neg", "pos", "mixed"]}
    assert output_labels(_pinned(mapped, labels)) == ["neg", "pos", "mixed"]
