"""Tokenizer training: both kinds cover Chinese without a flood of unknown tokens."""

import pytest

from aimass.errors import InvalidArgument
from aimass.models.tokenizer import tokenizer_stats, train_tokenizer

ZH = [
    "这家酒店的服务非常好，房间干净整洁。",
    "物流太慢了，等了一个星期才到货。",
    "质量不错，价格也便宜，推荐购买！",
    "书的内容很精彩，但是印刷质量一般。",
] * 25
EN = ["The quick brown fox jumps over the lazy dog.", "Hello world, hello tokenizer!"] * 25


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_chinese_characters_are_known(kind):
    tokenizer = train_tokenizer(ZH + EN, kind=kind, vocab_size=400, min_frequency=1)
    stats = tokenizer_stats(tokenizer, ["服务很好，价格便宜。", "The dog jumps."])
    assert stats["unk_rate"] == 0.0
    # CJK characters are split one by one: never merged across characters
    pieces = tokenizer.tokenize("服务很好")
    assert len(pieces) == 4
    assert (
        tokenizer.decode(tokenizer("价格便宜")["input_ids"], skip_special_tokens=True).replace(
            " ", ""
        )
        == "价格便宜"
    )


def test_unseen_characters_are_unknown_only_for_wordpiece():
    wordpiece = train_tokenizer(EN, kind="wordpiece", vocab_size=200, min_frequency=1)
    bpe = train_tokenizer(EN, kind="bpe", vocab_size=300, min_frequency=1)
    assert tokenizer_stats(wordpiece, ["龙"])["unk_rate"] == 1.0
    assert tokenizer_stats(bpe, ["龙"])["unk_rate"] == 0.0  # bytes always encode


def test_specials_frame_single_texts():
    tokenizer = train_tokenizer(EN, kind="wordpiece", vocab_size=200, min_frequency=1)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("hello")["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert tokenizer.mask_token == "[MASK]" and tokenizer.bos_token == "[CLS]"


@pytest.mark.parametrize(
    ("kind", "size", "match"), [("sentencepiece", 400, "wordpiece, bpe"), ("bpe", 10, "range")]
)
def test_bad_settings(kind, size, match):
    with pytest.raises(InvalidArgument, match=match):
        train_tokenizer(EN, kind=kind, vocab_size=size)
