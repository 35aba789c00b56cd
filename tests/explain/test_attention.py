"""Attention rollout: shape, normalisation, a hand-computed case, and the served model untouched."""

import threading

import pytest
import torch

from aimass.errors import InvalidArgument
from aimass.explain.attention import attention_rollout


def _random_attention(layers, heads, length, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((layers, heads, length, length), generator=gen).softmax(dim=-1)


def test_rollout_is_a_row_stochastic_t_by_t_matrix():
    rollout = attention_rollout(_random_attention(3, 2, 7))
    assert rollout.shape == (7, 7)
    assert (rollout >= 0).all()
    assert rollout.sum(dim=-1) == pytest.approx(torch.ones(7), abs=1e-6)


def test_rollout_hand_computed_two_tokens():
    uniform = torch.full((1, 1, 2, 2), 0.5)
    # 0.5 * uniform + 0.5 * I = [[0.75, 0.25], [0.25, 0.75]] (rows already sum to 1).
    one = attention_rollout(uniform)
    assert one.flatten().tolist() == pytest.approx([0.75, 0.25, 0.25, 0.75])
    # Two layers multiply: [[0.75, 0.25], [0.25, 0.75]]^2 = [[0.625, 0.375], [0.375, 0.625]].
    two = attention_rollout(uniform.repeat(2, 1, 1, 1))
    assert two.flatten().tolist() == pytest.approx([0.625, 0.375, 0.375, 0.625])
    # Attention to oneself only leaves every token its own.
    assert attention_rollout(torch.eye(3).expand(4, 2, 3, 3)).tolist() == torch.eye(3).tolist()


def test_rollout_refuses_a_wrong_shape():
    with pytest.raises(InvalidArgument, match="layers, heads, T, T"):
        attention_rollout(torch.rand(2, 3, 4))


def test_explanation_matches_a_rollout_of_the_models_own_attentions(ws, predictor):
    from transformers import AutoModel

    text = "the film was good, not bad"
    e = predictor.explain([text], method="attention")[0]
    assert e["output"] == "attention"
    scores = [t["score"] for t in e["tokens"]]
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert min(scores) >= 0.0
    assert e["details"]["layers"] == 2 and e["details"]["pooling"] == "mean"
    # An independent eager copy of the encoder, loaded from the bundle on disk.
    directory = ws.artifacts.resolve(ws.models.get("m").uri)
    encoder = AutoModel.from_pretrained(str(directory), attn_implementation="eager").eval()
    enc = predictor.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        attentions = encoder(**enc, output_attentions=True).attentions
    expected = attention_rollout(torch.stack([a[0] for a in attentions])).mean(dim=0)
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert sum(w["score"] for w in e["words"]) == pytest.approx(
        1.0 - e["details"]["special_tokens_share"], abs=1e-5
    )


def test_explaining_does_not_change_the_served_model(predictor):
    texts = ["good great film", "bad awful movie", "the plot was very boring"] * 4
    before = predictor.predict(texts)
    assert predictor.model.encoder.config._attn_implementation == "sdpa"
    errors = []

    def explain():
        try:
            for method in ("attention", "integrated-gradients"):
                predictor.explain(
                    texts[:2], method=method, **({"n_steps": 8} if method != "attention" else {})
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=explain)
    thread.start()
    during = [predictor.predict(texts) for _ in range(3)]
    thread.join()
    assert not errors
    assert predictor.model.encoder.config._attn_implementation == "sdpa"
    for result in during:
        for a, b in zip(result, before, strict=True):
            assert a["probabilities"] == pytest.approx(b["probabilities"], abs=1e-5)
