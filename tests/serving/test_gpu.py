"""The CUDA path of serving: mixed precision, same answers. Skips without a GPU."""

from __future__ import annotations

import pytest
import torch

from aimass.models.device import inference_autocast
from aimass.serving.predictor import load_predictor

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="gpu: no CUDA device here")


def test_the_cpu_serves_in_fp32():
    with inference_autocast(torch.device("cpu")):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.gpu
@gpu
def test_a_classifier_on_cuda_agrees_with_the_cpu(trust_workspace):
    ws = trust_workspace
    bundle = ws.artifacts.resolve(ws.models.get("m@1").uri)
    texts = ["good great fine", "bad awful poor", "fine"]
    cpu = load_predictor(bundle, device="cpu").predict(texts)
    cuda = load_predictor(bundle, device="cuda")
    assert cuda.info()["device"].startswith("cuda")
    for a, b in zip(cpu, cuda.predict(texts), strict=True):
        assert a["label"] == b["label"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-2)


@pytest.mark.gpu
@gpu
def test_autocast_on_cuda_runs_matmuls_in_half_precision():
    with inference_autocast(torch.device("cuda")):
        out = torch.ones(8, 8, device="cuda").matmul(torch.ones(8, 8, device="cuda"))
    assert out.dtype in (torch.bfloat16, torch.float16)
