"""Generation mechanics on a tiny random decoder base (served as it is)."""

import pytest

from aimass.errors import ErrorCode, InvalidArgument
from aimass.serving.predictor import load_predictor


@pytest.fixture(scope="module")
def llama(lm_home):
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=lm_home, device="cpu"))
    directory = ws.artifacts.resolve(ws.bases.get("llama").uri)
    ws.close()
    return load_predictor(directory, device="cpu")


def test_greedy_matches_transformers_generate(llama):
    import torch

    out = llama.generate("the cat sat", max_new_tokens=12, temperature=0)
    ids = llama.encode("the cat sat", llama_params(12))
    reference = llama.model.generate(
        torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=llama.eos
    )[0, len(ids) :].tolist()
    reference = [t for t in reference if t not in llama.eos]
    assert out["text"] == llama.tokenizer.decode(reference, skip_special_tokens=True)
    assert out["usage"]["prompt_tokens"] == len(ids)


def llama_params(n):
    from aimass.models.generation import SamplingParams

    return SamplingParams(max_new_tokens=n)


def test_stream_pieces_add_up_to_the_text(llama):
    events = list(llama.generate_stream("a dog", max_new_tokens=10, temperature=0.9, seed=3))
    final = events[-1]
    assert final["done"] and final["finish_reason"] in ("stop", "length")
    assert "".join(e["text"] for e in events[:-1]) == final["text"]
    assert final["timing"]["time_to_first_token"] <= final["timing"]["seconds"]


def test_same_seed_same_text_other_seed_differs(llama):
    kwargs = {"max_new_tokens": 16, "temperature": 1.5}
    first = llama.generate("the", seed=1, **kwargs)["text"]
    assert llama.generate("the", seed=1, **kwargs)["text"] == first
    others = {llama.generate("the", seed=s, **kwargs)["text"] for s in range(2, 6)}
    assert others - {first}


def test_top_k_one_is_greedy(llama):
    greedy = llama.generate("the cat", max_new_tokens=8, temperature=0)["text"]
    assert (
        llama.generate("the cat", max_new_tokens=8, temperature=1, top_k=1, seed=0)["text"]
        == greedy
    )


def test_stop_strings_end_the_text_before_them(llama):
    full = llama.generate("the cat", max_new_tokens=16, temperature=0)["text"]
    words = full.split()
    if len(words) < 2:
        pytest.skip("the random model stopped too early to test a stop string")
    stop = words[1]
    out = llama.generate("the cat", max_new_tokens=16, temperature=0, stop=[stop])
    assert out["finish_reason"] == "stop"
    assert out["text"] == full[: full.find(stop)]
    assert stop not in out["text"]


def test_prompt_longer_than_the_context_is_refused(llama):
    with pytest.raises(InvalidArgument, match="longer than the model's context of 256") as info:
        llama.generate("cat " * 400)
    assert info.value.code == ErrorCode.INVALID_ARGUMENT
    with pytest.raises(InvalidArgument, match="lower max_new_tokens"):
        llama.generate("cat " * 200, max_new_tokens=100)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"stop": [""]}, "stop"),
    ],
)
def test_bad_options(llama, options, field):
    with pytest.raises(InvalidArgument) as info:
        llama.generate("the cat", **options)
    assert info.value.details["field"] == field


def test_empty_prompt(llama):
    with pytest.raises(InvalidArgument, match="non-empty"):
        llama.generate("  ")


def test_predict_generates_per_text(llama):
    results = llama.predict(["the cat", "a dog"])
    assert [set(r) for r in results] == [{"generated_text", "finish_reason"}] * 2


def test_held_back_tail():
    from aimass.serving.generation import _held_back

    assert _held_back("hello wor", ["world"]) == 3
    assert _held_back("hello", ["xyz"]) == 0
