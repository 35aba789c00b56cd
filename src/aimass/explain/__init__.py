"""Per-prediction explanations: integrated gradients, attention rollout, occlusion.

Light to import (no torch): the methods register on first use of
:func:`get_explainer` / :func:`list_explainers`.
"""

from aimass.explain.base import (
    Explainer,
    ExplainTarget,
    Explanation,
    Network,
    TokenScore,
    WordScore,
    explainers_for,
    get_explainer,
    list_explainers,
    register_explainer,
    resolve_target,
)
from aimass.explain.words import split_words, token_words

__all__ = [
    "ExplainTarget",
    "Explainer",
    "Explanation",
    "Network",
    "TokenScore",
    "WordScore",
    "explainers_for",
    "get_explainer",
    "list_explainers",
    "register_explainer",
    "resolve_target",
    "split_words",
    "token_words",
]
