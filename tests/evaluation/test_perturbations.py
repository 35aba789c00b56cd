"""Perturbations: seeded, at their stated strengths, never empty; PII masking needs its engine."""

import math

import pytest

from aimass.errors import InvalidArgument
from aimass.evaluation import PiiMasking, get_perturbation, list_perturbations

TEXTS = [
    "The quiet film moves slowly but the ending is truly wonderful",
    "A dull, lifeless mess of a sequel",
    "ok",
    "東京 is busy",
]


def _edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_registered_in_order_with_stated_strengths():
    assert [p.name for p in list_perturbations()] == [
        "typos",
        "word-drop",
        "casing",
        "whitespace",
        "pii-masking",
    ]
    for p in list_perturbations():
        assert p.strengths and all(0 < s <= 1 for s in p.strengths)
        assert p.strength_meaning and p.description
    with pytest.raises(InvalidArgument, match="typos, word-drop"):
        get_perturbation("synonyms")


@pytest.mark.parametrize("name", ["typos", "word-drop", "casing", "whitespace"])
def test_seeded_and_never_empty(name):
    p = get_perturbation(name)
    strength = p.strengths[-1]
    first = p.perturb(TEXTS, strength=strength, seed=3)
    assert first == p.perturb(TEXTS, strength=strength, seed=3)
    assert all(t.strip() for t in first)
    others = [p.perturb(TEXTS, strength=strength, seed=s) for s in range(4, 10)]
    if name != "casing":  # casing at 1.0 upper-cases everything, whatever the seed
        assert any(o != first for o in others)


def test_typos_edit_the_stated_fraction_of_latin_words_by_one_character():
    p = get_perturbation("typos")
    text = TEXTS[0]  # 11 Latin words of 2+ letters
    out = p.perturb([text], strength=0.3, seed=0)[0]
    changed = [(a, b) for a, b in zip(text.split(), out.split(), strict=True) if a != b]
    assert len(changed) <= math.ceil(0.3 * 11)
    assert all(_edit_distance(a, b) <= 2 for a, b in changed)  # a swap counts as 2 edits
    assert changed
    assert p.perturb(["東京"], strength=1.0, seed=0) == ["東京"]  # no Latin words: unchanged


def test_word_drop_removes_the_stated_fraction_and_keeps_one_word():
    p = get_perturbation("word-drop")
    out = p.perturb([TEXTS[0]], strength=0.3, seed=0)[0]
    assert len(out.split()) == 11 - math.ceil(0.3 * 11)
    assert p.perturb(["single"], strength=1.0, seed=0) == ["single"]
    assert len(p.perturb(["two words"], strength=1.0, seed=0)[0].split()) == 1


def test_casing_and_whitespace_keep_the_words():
    casing, space = get_perturbation("casing"), get_perturbation("whitespace")
    assert casing.perturb(TEXTS, strength=1.0, seed=0) == [t.upper() for t in TEXTS]
    half = casing.perturb([TEXTS[0]], strength=0.5, seed=0)[0]
    assert half.lower() == TEXTS[0].lower() and half != TEXTS[0]
    for text, out in zip(TEXTS, space.perturb(TEXTS, strength=1.0, seed=0), strict=True):
        assert out.split() == text.split() and out != text


def test_strength_out_of_range():
    with pytest.raises(InvalidArgument, match="strength"):
        get_perturbation("typos").perturb(TEXTS, strength=0.0, seed=0)


def test_pii_masking_uses_the_deidentification_engine():
    texts = ["mail ann@example.org or call +1 202 555 0143", "no personal data here"]
    out = get_perturbation("pii-masking").perturb(texts, strength=1.0, seed=0)
    assert "ann@example.org" not in out[0] and "<EMAIL_ADDRESS>" in out[0]
    assert "555" not in out[0]
    assert out[1] == texts[1]


def test_pii_masking_with_a_masking_function():
    masking = PiiMasking(mask=lambda texts: [t.replace("Alice", "[PERSON]") for t in texts])
    assert masking.perturb(["Alice liked it", "Alice"], strength=1.0, seed=0) == [
        "[PERSON] liked it",
        "[PERSON]",
    ]
    blank = PiiMasking(mask=lambda texts: ["" for _ in texts])
    assert blank.perturb(["Alice"], strength=1.0, seed=0) == ["[MASKED]"]
    broken = PiiMasking(mask=lambda texts: [])
    with pytest.raises(InvalidArgument, match="returned 0 texts for 1"):
        broken.perturb(["Alice"], strength=1.0, seed=0)
