"""Continuous batching on the tiny random decoder: batched decoding equals one-at-a-time.

The oracle is :func:`aimass.models.generation.generate_ids` (one sequence, its own
cache). The tiny decoder's weights are spread out (std 0.5) after loading, so its
greedy text varies from token to token instead of repeating one id, and a wrong
position, mask or cache row shows up as a different token.

Where the order of events matters, a gate on ``model.forward`` lets the
scheduler run only the forward passes a test allows, so joins happen at known
steps without timing assumptions.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import torch

from aimass.errors import InvalidArgument
from aimass.models.generation import SamplingParams, generate_ids
from aimass.serving.decode_batch import (
    DecodeBatch,
    DecodeRequest,
    DecodeScheduler,
    TokenStream,
    batchable,
)
from tests.tiny_decoder import make_tiny_decoder

VOCAB_IDS = range(3, 26)  # the tiny decoder's words (0-2 are <unk>, <s>, </s>)
EOS = 2


def _spread(model: torch.nn.Module, seed: int = 0) -> None:
    """Redraw the matrices with std 0.5 (the default init makes greedy repeat one token)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory):
    return make_tiny_decoder(tmp_path_factory.mktemp("batching") / "gpt")


@pytest.fixture(scope="module")
def model(decoder_dir):
    from transformers import LlamaForCausalLM

    loaded = LlamaForCausalLM.from_pretrained(str(decoder_dir)).eval()
    _spread(loaded)
    return loaded


def prompt(length: int, seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(len(VOCAB_IDS), (length,), generator=generator)
    return [1, *(VOCAB_IDS[int(i)] for i in picks)]  # <s> first, like the tokenizer


def oracle(model, ids: list[int], params: SamplingParams, eos: Iterable[int] = ()) -> list[int]:
    return list(generate_ids(model, ids, params, eos_ids=list(eos), device="cpu"))


def request(ids: list[int], params: SamplingParams, eos: Iterable[int] = ()) -> DecodeRequest:
    return DecodeRequest.new(ids, params, eos_ids=list(eos))


def decode_with_joins(
    model, requests: list[DecodeRequest], joins: dict[int, list[int]], steps: int = 20
) -> list[int]:
    """Decode ``steps`` steps of one batch, adding ``requests[i]`` before step ``s`` for
    every ``i`` in ``joins[s]``; the batch's size at each step."""
    batch = DecodeBatch(model, device="cpu")
    sizes = []
    for step in range(steps):
        for i in joins.get(step, []):
            batch.add(requests[i])
        sizes.append(batch.size)
        batch.step()
    return sizes


def drained(req: DecodeRequest) -> list[int]:
    """The tokens of a request that has ended (its stream does not block then)."""
    return list(TokenStream(req))


def collect(stream: Iterable[int], timeout: float = 60) -> list[int]:
    """The stream's tokens, read in a thread so a hung scheduler fails the test instead."""
    result: dict[str, Any] = {}

    def read() -> None:
        try:
            result["tokens"] = list(stream)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the stream never ended"
    if "error" in result:
        raise result["error"]
    return result["tokens"]


class Gate:
    """Lets ``model.forward`` run only as many times as the test allows; records the shapes."""

    def __init__(self, model, monkeypatch, fail: Callable[[tuple[int, ...]], bool] | None = None):
        self.permits = threading.Semaphore(0)
        self.shapes: list[tuple[int, ...]] = []
        forward = model.forward

        @functools.wraps(forward)
        def gated(*args, **kwargs):
            assert self.permits.acquire(timeout=60), "the test never opened the gate"
            shape = tuple(kwargs["input_ids"].shape)
            self.shapes.append(shape)
            if fail is not None and fail(shape):
                raise RuntimeError(f"forward failed on purpose for input shape {shape}")
            return forward(*args, **kwargs)

        monkeypatch.setattr(model, "forward", gated)

    def allow(self, n: int = 100_000) -> None:
        self.permits.release(n)


def test_batched_greedy_equals_unbatched_with_joins_and_leaves(model):
    lengths, limits = (3, 9, 5, 12, 2), (6, 14, 12, 7, 9)
    joins = {0: [0, 1], 3: [2], 5: [3, 4]}  # step -> the requests that join before it
    eos = {1: [], 4: [EOS]}  # one row also stops at </s>, if it comes
    params = [SamplingParams(max_new_tokens=n, temperature=0) for n in limits]
    requests = [
        request(prompt(n, seed=i), p, eos.get(i, []))
        for i, (n, p) in enumerate(zip(lengths, params, strict=True))
    ]
    sizes = decode_with_joins(model, requests, joins)
    assert max(sizes) >= 4 and sizes[-1] == 0  # they overlapped, and every row left
    for r in requests:
        assert drained(r) == oracle(model, r.ids, r.params, r.eos)


def test_seeded_sampling_is_reproducible_in_a_batch(model):
    ids = [prompt(4, seed=1), prompt(10, seed=2), prompt(4, seed=1)]
    params = [
        SamplingParams(max_new_tokens=12, temperature=1.0, seed=7),
        SamplingParams(max_new_tokens=12, temperature=0.8, top_p=0.9, top_k=8, seed=8),
        SamplingParams(max_new_tokens=12, temperature=1.0, seed=7),
    ]
    requests = [request(i, p) for i, p in zip(ids, params, strict=True)]
    batch = DecodeBatch(model, device="cpu")
    batch.add(requests[0])
    batch.add(requests[1])
    batch.step()
    batch.add(requests[2])  # same prompt and seed as the first, joining a step later
    while batch.size:
        batch.step()
    tokens = [drained(r) for r in requests]
    assert tokens[0] == tokens[2] == oracle(model, ids[0], params[0])
    assert tokens[1] == oracle(model, ids[1], params[1])


def test_a_finished_sequence_leaves_and_a_waiting_one_joins(model, monkeypatch):
    gate = Gate(model, monkeypatch)
    scheduler = DecodeScheduler(model, device="cpu", max_batch=2)
    ids = [prompt(3, seed=3), prompt(8, seed=4), prompt(6, seed=5)]
    params = [SamplingParams(max_new_tokens=n, temperature=0) for n in (3, 12, 5)]
    streams = [scheduler.submit(i, p, eos_ids=[]) for i, p in zip(ids, params, strict=True)]
    gate.allow()
    for stream, i, p in zip(streams, ids, params, strict=True):
        assert collect(stream) == oracle(model, i, p)
    assert max(rows for rows, _ in gate.shapes) == 2  # never more than max_batch rows
    # The third prompt was prefilled only after a two-row step, and decoded beside the second.
    third = gate.shapes.index((1, len(ids[2])))
    assert (2, 1) in gate.shapes[:third] and (2, 1) in gate.shapes[third:]


def test_closing_a_stream_frees_its_slot(model, monkeypatch):
    gate = Gate(model, monkeypatch)
    scheduler = DecodeScheduler(model, device="cpu", max_batch=1)
    endless = scheduler.submit(prompt(4, seed=6), SamplingParams(max_new_tokens=4096), eos_ids=[])
    gate.allow(2)  # its prefill and one decode step
    first_two = [next(endless), next(endless)]
    ids, params = prompt(5, seed=7), SamplingParams(max_new_tokens=6, temperature=0)
    waiting = scheduler.submit(ids, params, eos_ids=[])
    assert scheduler.waiting == 1  # the only row is taken (the scheduler is held at the gate)
    endless.close()
    gate.allow()
    assert collect(waiting) == oracle(model, ids, params)  # it got the only row
    assert len(first_two) == 2 and endless.produced < 10
    assert list(endless) == []  # a closed stream reads as ended


def test_an_error_in_the_model_reaches_every_caller(model, monkeypatch):
    # The step with all three rows fails. Not "any batched step": the scheduler thread may
    # take the first one or two prompts before the third is submitted, and the third would
    # then decode alone. All three are queued before the gate opens, so they share a step
    # by the second at the latest, long before any of them has its 8 tokens.
    gate = Gate(model, monkeypatch, fail=lambda shape: shape[0] == 3)
    scheduler = DecodeScheduler(model, device="cpu", max_batch=4)
    params = SamplingParams(max_new_tokens=8, temperature=0)
    streams = [scheduler.submit(prompt(n, seed=n), params, eos_ids=[]) for n in (3, 6, 9)]
    gate.allow()
    for stream in streams:
        with pytest.raises(RuntimeError, match="failed on purpose"):
            collect(stream)
    # The scheduler survives: a later generation alone (one row) runs normally.
    ids = prompt(4, seed=8)
    assert collect(scheduler.submit(ids, params, eos_ids=[])) == oracle(model, ids, params)


def test_a_prefill_error_reaches_its_caller(model, monkeypatch):
    Gate(model, monkeypatch, fail=lambda shape: True).allow()
    scheduler = DecodeScheduler(model, device="cpu")
    streams = [
        scheduler.submit(prompt(3, seed=n), SamplingParams(max_new_tokens=4), eos_ids=[])
        for n in range(3)
    ]
    for stream in streams:
        with pytest.raises(RuntimeError, match="failed on purpose"):
            collect(stream)


def test_closing_stops_the_decode_thread_and_ends_its_generations(model, monkeypatch):
    """What runs at interpreter exit: the loop stops after its step and its thread ends
    (a daemon thread left inside a forward pass aborted the exiting process)."""
    from aimass.errors import Unavailable
    from aimass.serving import decode_batch

    gate = Gate(model, monkeypatch)
    scheduler = DecodeScheduler(model, device="cpu", max_batch=1)
    assert scheduler in decode_batch._SCHEDULERS  # closed by the atexit hook
    endless = scheduler.submit(prompt(4, seed=6), SamplingParams(max_new_tokens=4096), eos_ids=[])
    waiting = scheduler.submit(prompt(4, seed=7), SamplingParams(max_new_tokens=8), eos_ids=[])
    gate.allow(2)
    assert [next(endless), next(endless)]
    closing = threading.Thread(target=scheduler.close)
    closing.start()
    gate.allow()
    closing.join(30)
    assert not closing.is_alive() and scheduler._thread is not None
    assert not scheduler._thread.is_alive()
    for stream in (endless, waiting):
        with pytest.raises(Unavailable, match="process is exiting"):
            collect(stream)
    with pytest.raises(Unavailable):
        scheduler.submit(prompt(3, seed=1), SamplingParams(max_new_tokens=2), eos_ids=[])


def test_max_batch_must_be_positive(model):
    with pytest.raises(InvalidArgument, match="max_batch must be at least 1, got 0") as info:
        DecodeScheduler(model, device="cpu", max_batch=0)
    assert info.value.details["field"] == "max_batch"


def test_full_and_sliding_window_decoders_are_batched_and_others_are_not(model):
    from transformers import BartConfig, Gemma3Config, Llama4TextConfig, Qwen3NextConfig

    class Stub:
        def __init__(self, config):
            self.config = config

    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 26}
    assert batchable(model)
    for name in WINDOWED:
        assert batchable(windowed_model(name))
    # Gemma-3 as its multimodal checkpoints configure it: the text decoder's layers decide.
    assert batchable(Stub(Gemma3Config(text_config=windowed_model("gemma3").config.to_dict())))
    # Chunks start at fixed positions, which left padding would move.
    assert not batchable(
        Stub(Llama4TextConfig(**tiny, intermediate_size=64, attention_chunk_size=8))
    )
    assert not batchable(Stub(Qwen3NextConfig(**tiny, intermediate_size=64)))  # linear attention
    assert not batchable(Stub(BartConfig(d_model=32, vocab_size=26)))


# -- sliding-window attention (Gemma-3, Mistral) ----------------------------------------

WINDOW = 4
WINDOWED = ("gemma3", "mistral")


def windowed_model(name: str, window: int = WINDOW, attention: str = "sdpa") -> torch.nn.Module:
    """A tiny random decoder whose attention reads the last ``window`` tokens (in some layers).

    Gemma-3 alternates sliding and full layers; Mistral slides in every layer.
    ``attention`` is the attention implementation (``eager`` applies the mask as it
    is built, where ``sdpa`` may drop it for one unpadded row).
    """
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        MistralConfig,
        MistralForCausalLM,
    )

    shape = {
        "vocab_size": 26,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 64,
        "sliding_window": window,
    }
    torch.manual_seed(0)
    if name == "gemma3":
        layers = ["sliding_attention", "full_attention"] * 2
        config = Gemma3TextConfig(
            **shape, num_hidden_layers=4, head_dim=16, layer_types=layers, tie_word_embeddings=False
        )
        loaded: torch.nn.Module = Gemma3ForCausalLM(config)
    else:
        loaded = MistralForCausalLM(MistralConfig(**shape, num_hidden_layers=2))
    loaded.set_attn_implementation(attention)
    loaded.eval()
    _spread(loaded)
    return loaded


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("name", WINDOWED)
def test_sliding_window_decoders_batch_exactly_as_they_decode_alone(name, attention):
    model = windowed_model(name, attention=attention)
    # Prompts longer and shorter than the window; the first decodes alone for a step.
    lengths, limits = (15, 2, 6, 11), (10, 12, 9, 14)
    joins = {0: [0], 1: [1], 4: [2, 3]}
    params = [SamplingParams(max_new_tokens=n, temperature=0) for n in limits]
    requests = [
        request(prompt(n, seed=20 + i), p)
        for i, (n, p) in enumerate(zip(lengths, params, strict=True))
    ]
    sizes = decode_with_joins(model, requests, joins)
    assert max(sizes) == 4 and sizes[-1] == 0
    for r in requests:
        assert drained(r) == oracle(model, r.ids, r.params)
    # The window decides the text: the same weights reading every token write another, so
    # a batch that let a row read past its window would have failed above.
    wide = windowed_model(name, window=1000, attention=attention)
    longest = requests[0]
    assert oracle(wide, longest.ids, longest.params) != oracle(model, longest.ids, longest.params)


@pytest.mark.parametrize("name", WINDOWED)
def test_concurrent_generations_of_a_sliding_window_decoder_share_steps(name, monkeypatch):
    model = windowed_model(name)
    gate = Gate(model, monkeypatch)
    scheduler = DecodeScheduler(model, device="cpu", max_batch=3)
    ids = [prompt(n, seed=30 + n) for n in (3, 13, 7, 10)]
    params = [SamplingParams(max_new_tokens=n, temperature=0) for n in (8, 12, 5, 9)]
    streams = [scheduler.submit(i, p, eos_ids=[]) for i, p in zip(ids, params, strict=True)]
    gate.allow()
    for stream, i, p in zip(streams, ids, params, strict=True):
        assert collect(stream) == oracle(model, i, p)
    assert max(rows for rows, _ in gate.shapes) == 3  # decoded together, max_batch at most


# -- through the predictor -----------------------------------------------------------------


@pytest.fixture(scope="module")
def predictors(decoder_dir, tmp_path_factory):
    """The tiny decoder as a served base: batched (max_batch 3) and one loop per call."""
    from aimass.artifacts.bundle import verify_bundle
    from aimass.serving.generation import GenerationPredictor
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=tmp_path_factory.mktemp("batching-home"), device="cpu"))
    base, _ = ws.bases.import_(str(decoder_dir), name="gpt")
    directory = ws.artifacts.resolve(base.uri)
    ws.close()
    manifest = verify_bundle(directory)
    batched = GenerationPredictor(directory, manifest, "cpu", max_batch=3)
    alone = GenerationPredictor(directory, manifest, "cpu", batching=False)
    for predictor in (batched, alone):
        _spread(predictor.model)
    return batched, alone


PROMPTS = ["good film", "bad awful movie and the plot", "great", "sad plot was poor and bad"]


def run_concurrently(fn: Callable[[str, int], dict], prompts: list[str]) -> list[dict]:
    results: list[dict] = [{} for _ in prompts]

    def work(i: int) -> None:
        results[i] = fn(prompts[i], i)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a generation never ended"
    return results


def _same(result: dict) -> dict:
    return {k: result[k] for k in ("text", "finish_reason", "usage")}


@pytest.mark.parametrize("options", [{"temperature": 0}, {"temperature": 1.2, "top_k": 10}])
def test_concurrent_generations_equal_one_at_a_time(predictors, options):
    batched, alone = predictors

    def through(predictor):
        return lambda text, i: predictor.generate(text, max_new_tokens=10 + i, seed=i, **options)

    got = run_concurrently(through(batched), PROMPTS)
    expected = [through(alone)(text, i) for i, text in enumerate(PROMPTS)]
    assert [_same(r) for r in got] == [_same(r) for r in expected]
    assert all(r["timing"]["time_to_first_token"] <= r["timing"]["seconds"] for r in got)


def test_a_served_gemma3_base_decodes_its_concurrent_calls_together(tmp_path):
    from aimass.artifacts.bundle import verify_bundle
    from aimass.serving.generation import GenerationPredictor
    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=tmp_path / "home", device="cpu"))
    source = make_tiny_decoder(tmp_path / "gemma", architecture="gemma3")
    base, _ = ws.bases.import_(str(source), name="gemma")
    directory = ws.artifacts.resolve(base.uri)
    ws.close()
    manifest = verify_bundle(directory)
    batched = GenerationPredictor(directory, manifest, "cpu", max_batch=4)
    alone = GenerationPredictor(directory, manifest, "cpu", batching=False)
    for predictor in (batched, alone):
        _spread(predictor.model)
    assert batched.info()["batching"] == {"enabled": True, "max_batch": 4}
    got = run_concurrently(lambda text, i: batched.generate(text, max_new_tokens=12), PROMPTS)
    expected = [alone.generate(text, max_new_tokens=12) for text in PROMPTS]
    assert [_same(r) for r in got] == [_same(r) for r in expected]
    assert len({r["text"] for r in expected}) > 1  # the prompts lead to different texts


def test_stop_strings_and_streams_stay_per_request(predictors):
    batched, alone = predictors
    full = alone.generate(PROMPTS[1], max_new_tokens=16, temperature=0)["text"]
    words = full.split()
    if len(words) < 2:
        pytest.skip("the random model stopped too early to test a stop string")

    def stream(text: str, i: int) -> dict:
        stop = [words[1]] if i == 1 else []
        events = list(batched.generate_stream(text, max_new_tokens=16, temperature=0, stop=stop))
        assert "".join(e["text"] for e in events[:-1]) == events[-1]["text"]
        return events[-1]

    finals = run_concurrently(stream, PROMPTS)
    assert finals[1]["text"] == full[: full.find(words[1])]
    assert finals[1]["finish_reason"] == "stop"
    assert finals[0]["text"] == alone.generate(PROMPTS[0], max_new_tokens=16, temperature=0)["text"]


def test_a_closed_stream_gives_its_row_back(predictors):
    batched, _ = predictors
    streams = [batched.generate_stream(p, max_new_tokens=40, temperature=0) for p in PROMPTS[:3]]
    for stream in streams:
        next(stream)  # all three rows are taken
    for stream in streams:
        stream.close()
    out = run_concurrently(lambda text, i: batched.generate(text, max_new_tokens=3), PROMPTS[3:])
    assert out[0]["usage"]["completion_tokens"] <= 3


def test_predict_decodes_its_texts_together_in_order(predictors, monkeypatch):
    batched, alone = predictors
    for predictor in predictors:  # predict asks for 128 tokens; the tiny config says 64
        monkeypatch.setattr(predictor, "context", 256)
    assert batched.predict(PROMPTS) == alone.predict(PROMPTS)


def test_info_shows_the_batching_settings(predictors):
    batched, alone = predictors
    assert batched.info()["batching"] == {"enabled": True, "max_batch": 3}
    assert alone.info()["batching"] == {"enabled": False, "max_batch": 1}


# -- through a runner process ------------------------------------------------------------


@pytest.fixture(scope="module")
def spread_bundle(decoder_dir, tmp_path_factory):
    """The tiny decoder with spread weights, imported as a base: its bundle directory."""
    import shutil

    from transformers import AutoModelForCausalLM

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    target = tmp_path_factory.mktemp("spread") / "gpt"
    shutil.copytree(decoder_dir, target)
    model = AutoModelForCausalLM.from_pretrained(decoder_dir)
    _spread(model)
    model.save_pretrained(target)
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("spread-home"), device="cpu"))
    base, _ = ws.bases.import_(str(target), name="gpt")
    directory = ws.artifacts.resolve(base.uri)
    ws.close()
    return directory


@pytest.mark.subprocess
def test_generations_in_one_multiplexed_runner_equal_one_at_a_time(spread_bundle):
    from aimass.artifacts.bundle import verify_bundle
    from aimass.serving.generation import GenerationPredictor
    from aimass.serving.runner import RunnerPool

    pool = RunnerPool(
        spread_bundle, count=1, threads=1, device="cpu", name="default/gpt@1", multiplex=True
    )
    alone = GenerationPredictor(spread_bundle, verify_bundle(spread_bundle), "cpu", batching=False)

    def options(i: int) -> dict:
        return {"max_new_tokens": 10 + i, "seed": i, "temperature": 0}

    def through_pool(text: str, i: int) -> dict:
        return list(pool.generate_stream(text, options(i)))[-1]

    try:
        pool.open()
        got = run_concurrently(through_pool, PROMPTS)
        expected = [alone.generate(text, **options(i)) for i, text in enumerate(PROMPTS)]
        assert [_same(r) for r in got] == [_same(r) for r in expected]
        assert pool.busy == 0 and pool.restarts == 0
    finally:
        pool.close()
