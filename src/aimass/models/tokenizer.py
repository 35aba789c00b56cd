"""Train subword tokenizers (Hugging Face ``tokenizers``) that work on Chinese as well as English.

Two kinds, both character-aware for CJK text so Chinese never floods into ``[UNK]``:

* ``wordpiece`` — BERT style: Unicode normalisation, whitespace and punctuation
  split, every CJK character its own word (``BertNormalizer(handle_chinese_chars)``),
  an alphabet that keeps *every* character seen in training (``limit_alphabet``
  off: the default of 1,000 would send the long tail of Chinese characters to
  ``[UNK]``). Special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]``.
* ``bpe`` — byte-level BPE (GPT-2/RoBERTa style): any byte sequence is
  representable, so there is no unknown token at all; CJK characters are
  isolated before the byte-level split so merges never cross a character
  boundary (one token per common character, as in BERT-Chinese). Special tokens
  ``<pad> <s> </s> <unk> <mask>``.

Both add ``CLS/<s>`` and ``SEP/</s>`` around single texts (encoders want them;
causal-LM code tokenises with ``add_special_tokens=False`` and places BOS/EOS
itself), and save as ``tokenizer.json`` + ``tokenizer_config.json``, which
``AutoTokenizer.from_pretrained`` loads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.errors import InvalidArgument

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["TOKENIZER_KINDS", "tokenizer_stats", "train_tokenizer"]

TOKENIZER_KINDS = ("wordpiece", "bpe")
# CJK ideographs (base, extension A, compatibility), CJK punctuation, full-width forms.
_CJK = r"[\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\u3000-\u303f\uff00-\uffef]"
_SPECIALS = {
    "wordpiece": {
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    },
    "bpe": {
        "pad_token": "<pad>",
        "cls_token": "<s>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    },
}
MIN_VOCAB, MAX_VOCAB = 100, 1_000_000


def _backend(kind: str, vocab_size: int, min_frequency: int) -> tuple[Any, Any]:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = list(_SPECIALS[kind].values())
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=_SPECIALS["wordpiece"]["unk_token"]))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=False
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        wordpiece = trainers.WordPieceTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            limit_alphabet=MAX_VOCAB,
        )
        return tok, wordpiece
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_CJK), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    return tok, trainer


def train_tokenizer(
    texts: Iterable[str], *, kind: str, vocab_size: int, min_frequency: int = 2
) -> PreTrainedTokenizerBase:
    """Train a ``kind`` tokenizer with up to ``vocab_size`` entries on ``texts``.

    Returns a Hugging Face fast tokenizer (save it with ``save_pretrained``).
    """
    if kind not in TOKENIZER_KINDS:
        raise InvalidArgument(
            f"tokenizer kind {kind!r} is not one of {', '.join(TOKENIZER_KINDS)}", kind=kind
        )
    if not MIN_VOCAB <= vocab_size <= MAX_VOCAB:
        raise InvalidArgument(
            f"vocabulary size {vocab_size} is out of range ({MIN_VOCAB}..{MAX_VOCAB})"
        )
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok, trainer = _backend(kind, vocab_size, min_frequency)
    tok.train_from_iterator(texts, trainer=trainer)
    specials = _SPECIALS[kind]
    cls, sep = specials["cls_token"], specials["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}",
        pair=f"{cls} $A {sep} $B:1 {sep}:1",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=cls, eos_token=sep, **specials)


def tokenizer_stats(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> dict[str, Any]:
    """How well ``tokenizer`` covers ``texts``: unknown-token rate and tokens per character."""
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    total = sum(len(row) for row in ids)
    unk = tokenizer.unk_token_id
    unknown = sum(1 for row in ids for i in row if i == unk) if unk is not None else 0
    chars = sum(len(t) for t in texts)
    return {
        "texts": len(texts),
        "tokens": total,
        "unk_rate": unknown / total if total else 0.0,
        "tokens_per_char": total / chars if chars else 0.0,
        "vocab_size": len(tokenizer),
    }


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, directory: Path) -> list[Path]:
    """Save ``tokenizer`` into ``directory``; returns the written files."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    return sorted(p for p in directory.iterdir() if p.is_file())
