"""Recipes: the packaged base and settings aimass recommends for a kind of text.

``aimass train`` without ``--base`` (and ``aimass quickstart --lang``) take the
recipe :func:`recommended_recipe` picks for the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aimass.errors import InvalidArgument

__all__ = ["CHINESE_HAN_SHARE", "RECIPES", "Recipe", "recommended_recipe"]


@dataclass(frozen=True)
class Recipe:
    """A packaged base and the settings that train it best for one kind of text.

    ``aimass train`` without ``--base`` (and ``aimass quickstart --lang``) take the
    recipe :func:`recommended_recipe` picks; the numbers behind each choice come
    from ``bench/chinese.py`` and ``bench/train.py`` (docs/measured.md).
    """

    name: str
    base: str
    config: dict[str, Any]
    why: str


RECIPES = {
    "zh": Recipe(
        name="zh",
        base="m3e-small",
        config={"mode": "finetune", "epochs": 2, "lr": 1e-4, "max_length": 128},
        why="Chinese text: the Chinese-pretrained m3e-small, fine-tuned, beats character "
        "TF-IDF and every multilingual base aimass ships (bench/chinese.py)",
    ),
    "en": Recipe(
        name="en",
        base="minilm",
        config={"mode": "features"},
        why="English (or other Latin-script) text: MiniLM features, minutes on a CPU",
    ),
}

# Datasets whose letters are at least this share Han ideographs count as Chinese.
CHINESE_HAN_SHARE = 0.3


def recommended_recipe(stats: dict[str, Any]) -> Recipe:
    """The recipe for a dataset, from its recorded statistics (``han_share``).

    Raises:
        InvalidArgument: The dataset was imported before aimass recorded its script.
    """
    if "han_share" not in stats:
        raise InvalidArgument(
            "the dataset has no recorded script share (imported by an older aimass), so no "
            "base can be recommended: give a base (--base minilm, or --base m3e-small for "
            "Chinese), or import the dataset again",
            field="base",
        )
    return RECIPES["zh" if stats["han_share"] >= CHINESE_HAN_SHARE else "en"]
