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
    # Under AIMASS_COMMERCIAL_USE_ONLY (m3e-small's weights are non-commercial).
    # Adapters on every linear layer of Gemma's blocks learn more per row than the
    # default query/value pair: one epoch on 6,000 rows scores 0.878 (validation 0.866;
    # bench/results/chinese-gemma-6000-1epoch-all-linear.json) against 0.868 for the
    # pair on all 13,928 (chinese-gemma-all.json); TF-IDF 0.841.
    "zh-commercial": Recipe(
        name="zh-commercial",
        base="gemma3",
        config={
            "mode": "finetune",
            "lora_rank": 16,
            "lora_targets": [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj",
            ],
            "epochs": 1,
            "max_length": 128,
        },
        why="Chinese text, commercial use: Gemma-3-270M (Gemma Terms of Use) with LoRA "
        "adapters, the best commercially usable base aimass ships for Chinese "
        "(bench/chinese.py --recipes gemma3-lora)",
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


def recommended_recipe(stats: dict[str, Any], *, commercial_use: bool = False) -> Recipe:
    """The recipe for a dataset, from its recorded statistics (``han_share``); with
    ``commercial_use``, one whose base is licensed for commercial use.

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
    if stats["han_share"] < CHINESE_HAN_SHARE:
        return RECIPES["en"]
    return RECIPES["zh-commercial" if commercial_use else "zh"]
