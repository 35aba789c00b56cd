"""BERT masking, checked statistically over many draws (the oracle is the paper's numbers)."""

import pytest
import torch

from aimass.training.examples import IGNORE
from aimass.training.masked_lm import mask_tokens

VOCAB, MASK = 1000, 4
SPECIAL_IDS = 5  # ids 0..4 are special; ordinary tokens are 5..999


def batch(seed=0, rows=64, width=96):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(SPECIAL_IDS, VOCAB, (rows, width), generator=gen)
    lengths = torch.randint(width // 2, width + 1, (rows,), generator=gen)
    special = torch.zeros_like(ids, dtype=torch.bool)
    for r, n in enumerate(lengths.tolist()):
        ids[r, 0], ids[r, n - 1] = 2, 3  # [CLS] ... [SEP]
        ids[r, n:] = 0  # padding
        special[r, 0] = special[r, n - 1 :] = True
    return ids, special


def draws(n, **kwargs):
    ids, special = batch()
    gen = torch.Generator().manual_seed(123)
    random_ids = torch.arange(SPECIAL_IDS, VOCAB)
    for _ in range(n):
        inputs, labels = mask_tokens(
            ids, special, mask_id=MASK, random_ids=random_ids, generator=gen, **kwargs
        )
        yield ids, special, inputs, labels


def test_fifteen_percent_selected_then_80_10_10():
    selected = eligible = masked = randomised = kept = 0
    for ids, special, inputs, labels in draws(60):
        chosen = labels != IGNORE
        eligible += int((~special).sum())
        selected += int(chosen.sum())
        masked += int((inputs[chosen] == MASK).sum())
        kept += int((inputs[chosen] == ids[chosen]).sum())
        randomised += int(((inputs[chosen] != MASK) & (inputs[chosen] != ids[chosen])).sum())
        # labels hold the original token exactly where a position was selected
        assert torch.equal(labels[chosen], ids[chosen])
        # outside the selection nothing changes
        assert torch.equal(inputs[~chosen], ids[~chosen])
    assert selected / eligible == pytest.approx(0.15, abs=0.003)
    assert masked / selected == pytest.approx(0.80, abs=0.01)
    # a random replacement equals the original token with probability 1/995
    assert randomised / selected == pytest.approx(0.10 * (1 - 1 / 995), abs=0.006)
    assert kept / selected == pytest.approx(0.10 + 0.10 / 995, abs=0.006)


def test_special_and_padding_positions_are_never_selected():
    for ids, special, inputs, labels in draws(40, probability=0.9):
        assert (labels[special] == IGNORE).all()
        assert torch.equal(inputs[special], ids[special])


def test_random_replacements_are_ordinary_tokens():
    for _ids, _special, inputs, labels in draws(20, probability=0.5):
        chosen = labels != IGNORE
        assert (inputs[chosen & (inputs != MASK)] >= SPECIAL_IDS).all()


def test_whole_word_masking_selects_every_piece_of_a_word():
    ids, special = batch(rows=32)
    # words of three sub-tokens each; special/padding positions belong to no word (-1)
    word_ids = torch.arange(ids.shape[1]).div(3, rounding_mode="floor").expand_as(ids).clone()
    word_ids[special] = -1
    gen = torch.Generator().manual_seed(7)
    chosen_words = total_words = 0
    for _ in range(60):
        _inputs, labels = mask_tokens(
            ids,
            special,
            mask_id=MASK,
            random_ids=torch.arange(SPECIAL_IDS, VOCAB),
            generator=gen,
            word_ids=word_ids,
        )
        chosen = labels != IGNORE
        for row in range(ids.shape[0]):
            for word in word_ids[row].unique().tolist():
                if word < 0:
                    continue
                members = chosen[row][word_ids[row] == word]
                assert members.all() or not members.any()
                total_words += 1
                chosen_words += int(members.any())
        assert not chosen[special].any()
    assert chosen_words / total_words == pytest.approx(0.15, abs=0.01)


def test_same_seed_same_masks():
    first = [labels for *_rest, labels in draws(3)]
    second = [labels for *_rest, labels in draws(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
