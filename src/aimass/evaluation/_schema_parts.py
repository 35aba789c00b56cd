"""The building blocks of the evaluation report's JSON schema: one schema per section's data.

JSON-schema fragments for the ``data`` of each built-in section (quality, calibration,
fairness, samples, robustness, explanations, resources, privacy) and the small
helpers they are written with. :mod:`aimass.evaluation.schema` assembles them into
``REPORT_SCHEMA``.
"""

from __future__ import annotations

from typing import Any

_NUM = {"type": "number"}
_RATE = {"type": "number", "minimum": 0, "maximum": 1}
_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_NUM_OR_NULL = {"type": ["number", "null"]}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


_PER_CLASS = {
    "type": "object",
    "additionalProperties": _obj(
        {"precision": _RATE, "recall": _RATE, "f1": _RATE, "support": _COUNT}
    ),
}
_CLASSIFICATION_QUALITY = _obj(
    {
        "accuracy": _RATE,
        "precision_macro": _RATE,
        "recall_macro": _RATE,
        "f1_macro": _RATE,
        "per_class": _PER_CLASS,
        "confusion_matrix": {"type": "array", "items": {"type": "array", "items": _COUNT}},
        "count": _COUNT,
        "labels": {"type": "array", "items": _STR, "minItems": 2},
        "top_confusions": {
            "type": "array",
            "items": _obj({"true": _STR, "predicted": _STR, "count": _COUNT}),
        },
        "majority_baseline_accuracy": _RATE,
    },
    # A model that can abstain (a pipeline): the share answered and their accuracy.
    {"coverage": _RATE, "answered_accuracy": _RATE},
)
_REGRESSION_QUALITY = _obj(
    {
        "mae": _NUM,
        "rmse": _NUM,
        "r2": _NUM,
        "count": _COUNT,
        "residuals": _obj({"bias": _NUM, "std": _NUM, "quantiles": {"type": "object"}}),
        "target_mean": _NUM,
        "target_std": _NUM,
        "mean_baseline_mae": _NUM,
    }
)
_CALIBRATION = _obj(
    {
        "n_bins": _COUNT,
        "ece": _RATE,
        "mce": _RATE,
        "brier": {"type": "number", "minimum": 0, "maximum": 2},
        "log_loss": {"type": "number", "minimum": 0},
        "mean_confidence": _RATE,
        "bins": {
            "type": "array",
            "items": _obj(
                {
                    "lower": _RATE,
                    "upper": _RATE,
                    "count": _COUNT,
                    "confidence": _RATE,
                    "accuracy": _RATE,
                }
            ),
        },
    }
)
_INTERVAL = {"type": ["array", "null"], "items": _NUM, "minItems": 2, "maxItems": 2}
_FAIRNESS_COMMON = {
    "group_field": _STR,
    "min_group_size": _COUNT,
    "excluded_groups": {"type": "array", "items": _obj({"group": _STR, "count": _COUNT})},
    "rows_compared": _COUNT,
    "definitions": {"type": "object", "additionalProperties": _STR},
}
_CLASSIFICATION_FAIRNESS = _obj(
    {
        **_FAIRNESS_COMMON,
        "groups": {
            "type": "array",
            "minItems": 2,
            "items": _obj(
                {
                    "group": _STR,
                    "count": _COUNT,
                    "accuracy": _RATE,
                    "accuracy_ci": _INTERVAL,
                    "f1_macro": _RATE,
                    "selection_rate": {"type": "object", "additionalProperties": _RATE},
                }
            ),
        },
        "overall": _obj({"accuracy": _RATE, "f1_macro": _RATE}),
        "accuracy_difference": _RATE,
        "demographic_parity_difference": _obj(
            {"per_class": {"type": "object", "additionalProperties": _RATE}, "max": _RATE}
        ),
        "equalized_odds_difference": _obj(
            {
                "per_class": {
                    "type": "object",
                    "additionalProperties": {"type": ["number", "null"]},
                },
                "max": _NUM_OR_NULL,
            }
        ),
    }
)
_REGRESSION_FAIRNESS = _obj(
    {
        **_FAIRNESS_COMMON,
        "groups": {
            "type": "array",
            "minItems": 2,
            "items": _obj(
                {
                    "group": _STR,
                    "count": _COUNT,
                    "mae": _NUM,
                    "mae_ci": _INTERVAL,
                    "rmse": _NUM,
                    "mean_prediction": _NUM,
                    "mean_target": _NUM,
                }
            ),
        },
        "overall": _obj({"mae": _NUM, "rmse": _NUM}),
        "mae_difference": _NUM,
        "mean_prediction_difference": _NUM,
        "mean_target_difference": _NUM,
    }
)
_LM_QUALITY = _obj(
    {
        "loss": {"type": "number", "minimum": 0},
        "perplexity": {"type": "number", "minimum": 1},
        "tokens": _COUNT,
        "rows": _COUNT,
        "rows_scored": _COUNT,
        "loss_definition": _STR,
        "seed": {"type": "integer"},
        "row_perplexity_quantiles": {"type": "object", "additionalProperties": _NUM},
    }
)
_ENTITY_QUALITY = _obj(
    {
        "precision": _RATE,
        "recall": _RATE,
        "f1": _RATE,
        "per_type": _PER_CLASS,
        "entities": _COUNT,
        "predicted_entities": _COUNT,
        "count": _COUNT,
        "sentence_accuracy": _RATE,
        "token_accuracy": _RATE,
        "tokens": _COUNT,
        "labels": {"type": "array", "items": _STR, "minItems": 1},
        "confusion_matrix": {"type": "array", "items": {"type": "array", "items": _COUNT}},
        "scoring": _STR,
    }
)
_SAMPLES = _obj(
    {
        "decoding": _STR,
        "max_new_tokens": {"type": "integer", "minimum": 1},
        "prompt_source": _STR,
        "samples": {
            "type": "array",
            "minItems": 1,
            "items": _obj(
                {
                    "row": _COUNT,
                    "prompt": _STR,
                    "reference": _STR,
                    "generated": _STR,
                    "seconds": {"type": "number", "minimum": 0},
                }
            ),
        },
    }
)
_LM_FAIRNESS = _obj(
    {
        **_FAIRNESS_COMMON,
        "groups": {
            "type": "array",
            "minItems": 2,
            "items": _obj(
                {"group": _STR, "count": _COUNT, "tokens": _COUNT, "loss": _NUM, "perplexity": _NUM}
            ),
        },
        "overall": _obj({"loss": _NUM, "perplexity": _NUM}),
        "loss_difference": {"type": "number", "minimum": 0},
        "perplexity_ratio": _NUM_OR_NULL,
    }
)
_ENTITY_FAIRNESS = _obj(
    {
        **_FAIRNESS_COMMON,
        "groups": {
            "type": "array",
            "minItems": 2,
            "items": _obj(
                {
                    "group": _STR,
                    "count": _COUNT,
                    "entities": _COUNT,
                    "precision": _RATE,
                    "recall": _RATE,
                    "f1": _RATE,
                }
            ),
        },
        "overall": _obj({"f1": _RATE, "precision": _RATE, "recall": _RATE}),
        "f1_difference": _RATE,
        "recall_difference": _RATE,
    }
)
_ROBUSTNESS_ROW = _obj(
    {
        "perturbation": _STR,
        "strength": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "strength_meaning": _STR,
        "changed_rate": _RATE,
    },
    {
        "accuracy": _RATE,
        "f1_macro": _RATE,
        "accuracy_drop": _NUM,
        "flip_rate": _RATE,
        "mae": _NUM,
        "rmse": _NUM,
        "r2": _NUM,
        "mae_increase": _NUM,
        "mean_abs_change": _NUM,
        "loss": _NUM,
        "loss_increase": _NUM,
        "perplexity": _NUM,
        "perplexity_ratio": _NUM,
        "tokens": _COUNT,
        "f1": _RATE,
        "precision": _RATE,
        "recall": _RATE,
        "f1_drop": _NUM,
        "example": _obj({"original": _STR, "perturbed": _STR}),
    },
)
_ROBUSTNESS = _obj(
    {
        "sample_size": _COUNT,
        "rows_available": _COUNT,
        "seed": {"type": "integer"},
        "clean": {"type": "object"},
        "perturbed_input": _STR,
        "results": {"type": "array", "items": _ROBUSTNESS_ROW},
        "unavailable": {"type": "array", "items": _obj({"perturbation": _STR, "reason": _STR})},
        "perturbations": {
            "type": "object",
            "additionalProperties": _obj(
                {
                    "description": _STR,
                    "strengths": {"type": "array", "items": _NUM},
                    "strength_meaning": _STR,
                }
            ),
        },
    }
)
_WORD = _obj({"word": _STR, "start": _COUNT, "end": _COUNT, "score": _NUM})
_EXPLAINED_ENTITY = _obj(
    {
        "label": _STR,
        "start": _COUNT,
        "end": _COUNT,
        "text": _STR,
        "words": {"type": "array", "items": _WORD},
        "details": {"type": "object"},
    }
)
_EXPLANATIONS = _obj(
    {
        "method": _STR,
        "examples": {
            "type": "array",
            "items": _obj(
                {
                    "row": _COUNT,
                    "text": _STR,
                    "true": {"type": ["string", "number"]},
                    "predicted": {"type": ["string", "number"]},
                    "explanation": _obj(
                        {
                            "method": _STR,
                            "target": _STR,
                            # -1: a tagger's explanation of every entity type
                            "target_index": {"type": "integer", "minimum": -1},
                            "output": {"enum": ["logit", "probability", "value", "attention"]},
                            "words": {"type": "array", "items": _WORD},
                            "truncated": {"type": "boolean"},
                            "details": {"type": "object"},
                        },
                        {"entities": {"type": "array", "items": _EXPLAINED_ENTITY}},
                    ),
                },
                {"confidence": _RATE},
            ),
        },
    }
)
_ENERGY_AMOUNT = _obj({"joules": _NUM, "wh": _NUM, "low_wh": _NUM, "high_wh": _NUM})
_RESOURCES = _obj(
    {
        "unit": _STR,
        "parameters": _COUNT,
        "bundle_bytes": _COUNT,
        "bundle_mib": _NUM,
        "memory": _obj(
            {"status": {"enum": ["ok", "skipped", "failed"]}},
            {
                "reason": _STR,
                "runtime_mib": _NUM,
                "loaded_mib": _NUM,
                "peak_mib": _NUM,
                "gpu_peak_mib": _NUM_OR_NULL,
                "method": _STR,
            },
        ),
        "latency": _obj(
            {
                "single": _obj(
                    {
                        "runs": _COUNT,
                        "median_ms": _NUM,
                        "p90_ms": _NUM,
                        "min_ms": _NUM,
                        "throughput_per_s": _NUM,
                        "mean_chars": _NUM,
                    }
                ),
                "batched": _obj(
                    {
                        "runs": _COUNT,
                        "batch_size": _COUNT,
                        "median_ms": _NUM,
                        "per_item_ms": _NUM,
                        "throughput_per_s": _NUM,
                        "mean_chars": _NUM,
                    }
                ),
            }
        ),
        "training": {"type": ["object", "null"]},
        "energy": _obj(
            {
                "method": _STR,
                "assumed_watts": _NUM,
                "inference_per_1000": _ENERGY_AMOUNT,
                "training": {"oneOf": [_ENERGY_AMOUNT, {"type": "null"}]},
            }
        ),
        "machine": _obj(
            {
                "cpu": _STR,
                "logical_cpus": _COUNT,
                "threads": _COUNT,
                "device": _STR,
                "platform": _STR,
            }
        ),
    }
)
_PRIVACY = _obj({"record": {"type": "object"}})
# A section's or the whole report's verdict (see aimass.evaluation.verdicts). Optional in
# the schema: reports stored before verdicts existed have none and stay valid.
_VERDICT = _obj(
    {"status": {"enum": ["pass", "warn", "fail"]}, "reasons": {"type": "array", "items": _STR}},
    {"thresholds": {"type": "object", "additionalProperties": _NUM}},
)
