"""A decoder-backed classifier served and explained like an encoder one."""

import pytest
import torch

from aimass.jobs.train import TrainSpec
from aimass.serving.predictor import load_predictor
from aimass.serving.sequence import SequencePredictor
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import sentiment_rows, write_jsonl
from tests.tiny_decoder import make_tiny_decoder

CONFIG = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16, "pooling": "last"}


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    """The bundle of a tiny decoder classifier, loaded from its directory as a server would."""
    root = tmp_path_factory.mktemp("decoder-serving")
    ws = Workspace(Settings(home=root / "home", device="cpu", num_threads=1))
    ws.datasets.import_file(write_jsonl(root / "s.jsonl", sentiment_rows(160)), name="s")
    ws.bases.import_(str(make_tiny_decoder(root / "gpt")), name="gpt")
    version = ws.jobs.train(TrainSpec(dataset="s", base="gpt", model="m", config=CONFIG))
    loaded = load_predictor(ws.artifacts.resolve(version.uri), device="cpu")
    yield loaded
    ws.close()


def test_batches_with_padding_match_single_inputs(predictor):
    assert isinstance(predictor, SequencePredictor)
    assert predictor.info()["family"] == "decoder"
    texts = ["good", "bad awful movie and the plot was poor", "great film", "sad"]
    batched = predictor.outputs(texts, batch_size=4)
    single = torch.cat([predictor.outputs([t]) for t in texts])
    assert torch.allclose(batched, single, atol=1e-5)
    assert predictor.token_lengths(texts) == [2, 9, 3, 2]


def test_left_padding_gives_the_same_outputs(predictor):
    rows = [predictor.tokenizer(t)["input_ids"] for t in ["good film", "bad awful movie"]]
    width = max(map(len, rows))
    right = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    left = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    right_mask, left_mask = (right != 0).long(), (left != 0).long()
    with torch.inference_mode():
        a = predictor.model(input_ids=right, attention_mask=right_mask)
        b = predictor.model(input_ids=left, attention_mask=left_mask)
    assert torch.allclose(a, b, atol=1e-5)


def test_every_explainer_works_on_a_decoder(predictor):
    text = "good great film"
    ig = predictor.explain([text])[0]
    details = ig["details"]
    assert ig["method"] == "integrated-gradients"
    assert abs(details["convergence_delta"]) < 0.05 * max(
        1.0, abs(details["output_at_input"] - details["output_at_baseline"])
    )
    assert ig["tokens"][0]["special"] and ig["tokens"][0]["score"] == 0.0  # <s>
    attention = predictor.explain([text], method="attention")[0]
    assert attention["details"]["rows"] == "last token's row"
    assert sum(t["score"] for t in attention["tokens"]) == pytest.approx(1.0, abs=1e-4)
    occlusion = predictor.explain([text], method="occlusion")[0]
    assert [w["word"] for w in occlusion["words"]] == ["good", "great", "film"]
