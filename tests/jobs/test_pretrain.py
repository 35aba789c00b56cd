"""Tokenizers as registered bundles, and from-scratch bases built around them."""

import pytest

from aimass.artifacts.bundle import verify_bundle
from aimass.errors import ErrorCode, InvalidArgument, NotFound
from tests.conftest import write_jsonl

ZH = [{"text": t} for t in ["服务很好，房间干净。", "物流太慢了。", "质量不错，推荐！"] * 20]


@pytest.fixture
def zh(workspace, tmp_path):
    workspace.datasets.import_file(write_jsonl(tmp_path / "zh.jsonl", ZH), name="zh")
    return workspace


def test_tokenizer_is_a_verified_bundle_in_the_registry(zh):
    tokenizer, created = zh.bases.train_tokenizer(
        "zh", name="zh-tok", vocab_size=200, min_frequency=1
    )
    assert created and tokenizer.family == "tokenizer" and tokenizer.architecture == "wordpiece"
    manifest = verify_bundle(zh.artifacts.resolve(tokenizer.uri))
    assert manifest.kind == "tokenizer"
    assert "tokenizer.json" in manifest.files and "model.safetensors" not in manifest.files
    prov = tokenizer.provenance
    assert prov["dataset"] == "zh@1" and prov["coverage"]["unk_rate"] == 0.0
    again, created_again = zh.bases.train_tokenizer(
        "zh", name="zh-tok", vocab_size=200, min_frequency=1
    )
    assert not created_again and again.version == 1


@pytest.mark.parametrize("architecture", ["bert", "llama", "bart"])
def test_scratch_base_carries_the_tokenizer(zh, architecture):
    zh.bases.train_tokenizer("zh", name="zh-tok", vocab_size=200, min_frequency=1)
    base, created = zh.bases.create_scratch(
        "b", architecture=architecture, tokenizer="zh-tok", overrides={"max_length": 64}
    )
    assert created and base.num_parameters > 0
    assert base.provenance["source"] == "scratch" and base.provenance["tokenizer"] == "zh-tok@1"
    directory = zh.artifacts.resolve(base.uri)
    assert (directory / "tokenizer.json").is_file()
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(directory).max_position_embeddings == 64
    # same seed, same weights: the existing version comes back
    assert (
        zh.bases.create_scratch(
            "b", architecture=architecture, tokenizer="zh-tok", overrides={"max_length": 64}
        )[1]
        is False
    )


def test_unknown_tokenizer_is_a_clear_error_and_stores_nothing(zh):
    with pytest.raises(NotFound) as info:
        zh.bases.create_scratch("b", architecture="bert", tokenizer="nope")
    assert info.value.code == ErrorCode.NOT_FOUND
    assert "aimass tokenizers train" in info.value.message
    assert zh.store.bases.list("default") == []


def test_a_model_base_is_not_a_tokenizer(zh):
    zh.bases.train_tokenizer("zh", name="zh-tok", vocab_size=200, min_frequency=1)
    zh.bases.create_scratch("b", architecture="bert", tokenizer="zh-tok")
    with pytest.raises(InvalidArgument, match="not a tokenizer"):
        zh.bases.create_scratch("c", architecture="bert", tokenizer="b")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"architecture": "gpt5"}, "bart, bert, llama"),
        ({"architecture": "bert", "preset": "huge"}, "tiny, mini, small"),
        ({"architecture": "bert", "overrides": {"depth": 3}}, "unknown bert options"),
        ({"architecture": "llama", "overrides": {"num_kv_heads": 3}}, "multiple of num_kv_heads"),
    ],
)
def test_bad_scratch_settings(zh, kwargs, match):
    zh.bases.train_tokenizer("zh", name="zh-tok", vocab_size=200, min_frequency=1)
    with pytest.raises(InvalidArgument, match=match):
        zh.bases.create_scratch("b", tokenizer="zh-tok", **kwargs)
    assert [b.name for b in zh.store.bases.list("default")] == ["zh-tok"]
