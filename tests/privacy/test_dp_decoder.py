"""DP-SGD on decoder bases (features, full fine-tuning) and on LoRA adapters."""

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.models.lora import ADAPTER_FILE
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import sentiment_rows, write_jsonl
from tests.tiny_decoder import make_tiny_decoder

RDP8 = {"target_epsilon": 8, "accountant": "rdp"}
FEATURES = {"mode": "features", "epochs": 5, "lr": 1e-2, "batch_size": 32}
FINETUNE = {"mode": "finetune", "epochs": 1, "lr": 1e-3, "batch_size": 16, "pooling": "last"}
LORA = {**FINETUNE, "epochs": 2, "lr": 1e-2, "lora_rank": 4}


@pytest.fixture(scope="module")
def gpt(tmp_path_factory):
    """A 400-row sentiment dataset 's' and the tiny causal LM 'gpt'."""
    tmp = tmp_path_factory.mktemp("dp-decoder")
    ws = Workspace(Settings(home=tmp / "home", device="cpu", num_threads=1))
    ws.datasets.import_file(write_jsonl(tmp / "s.jsonl", sentiment_rows(400)), name="s")
    ws.bases.import_(str(make_tiny_decoder(tmp / "gpt")), name="gpt")
    yield ws
    ws.close()


def _train(ws, config, privacy=RDP8, model="m"):
    return ws.jobs.train(
        TrainSpec(dataset="s", base="gpt", model=model, config=config, privacy=privacy)
    )


@pytest.mark.parametrize(
    ("config", "mode"), [(FEATURES, "hooks"), (FINETUNE, "ghost")], ids=["features", "finetune"]
)
def test_decoder_trains_privately_and_records_epsilon(gpt, config, mode):
    record = _train(gpt, config).privacy
    assert record["grad_sample_mode"] == mode
    assert 0 < record["epsilon"] <= 8 and record["steps"] > 0
    assert record["trained_embeddings"] is False


def _weights(ws, uri):
    return load_file(str(ws.artifacts.resolve(uri) / "model.safetensors"))


def test_dp_lora_trains_only_the_adapters_and_the_head(gpt):
    version = _train(gpt, LORA, model="lora")
    record = version.privacy
    assert 0 < record["epsilon"] <= 8 and record["grad_sample_mode"] == "ghost"
    bundle = gpt.artifacts.resolve(version.uri)
    adapters = load_file(str(bundle / ADAPTER_FILE))
    # What DP-SGD clipped and noised is exactly what the adapter file holds.
    assert record["trained_parameters"] == sum(v.numel() for v in adapters.values())
    assert record["trained_parameters"] < 3_000
    trained, base = _weights(gpt, version.uri), _weights(gpt, gpt.bases.get("gpt").uri)
    shared = sorted(set(trained) & set(base))
    changed = {k for k in shared if not torch.equal(trained[k], base[k])}
    assert shared and changed, "the merged adapters move the target projections"
    assert all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed), changed
    assert "score.weight" in trained and "score.weight" not in base


def test_dp_lora_refuses_training_the_embeddings(gpt):
    privacy = {**RDP8, "train_embeddings": True}
    with pytest.raises(InvalidArgument, match="--dp-train-embeddings with --lora-rank 4"):
        gpt.jobs.submit_training(
            TrainSpec(dataset="s", base="gpt", model="x", config=LORA, privacy=privacy)
        )


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_decoder_per_example_gradients_are_exact(tmp_path, lora):
    # Opacus samples LoRA's Linear layers with its own samplers and the decoder's
    # RMSNorm through functorch; the per-example gradients must sum to the batch one.
    from opacus.grad_sample import GradSampleModule

    from aimass.models.hf import load_pretrained
    from aimass.models.lora import LoraSettings, add_adapters
    from aimass.models.sequence import SequenceHeadConfig, SequenceModel

    torch.manual_seed(0)
    decoder = load_pretrained(make_tiny_decoder(tmp_path / "gpt"), family="backbone")
    head = SequenceHeadConfig(
        task="classification", num_outputs=2, family="decoder", pooling="last", dropout=0.0
    )
    model = SequenceModel(decoder, head)
    model.encoder.get_input_embeddings().requires_grad_(False)
    if lora:
        add_adapters(model.encoder, LoraSettings(4, 8.0, 0.0, ("q_proj", "v_proj")))
    model.train()
    model.explicit_ids = True
    ids = torch.randint(3, 20, (4, 7))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    y = torch.tensor([0, 1, 1, 0])
    gsm = GradSampleModule(model, loss_reduction="sum")
    nn.functional.cross_entropy(
        gsm(input_ids=ids, attention_mask=mask), y, reduction="sum"
    ).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if lora:
        assert all(".lora_" in n or n.startswith("classifier.") for n, _ in trainable)
    for name, param in trainable:
        assert param.grad_sample.shape[0] == 4, name
        torch.testing.assert_close(param.grad_sample.sum(0), param.grad, atol=1e-5, rtol=1e-4)
    gsm._close()
