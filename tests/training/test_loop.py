"""The loop: schedule shape, best-weight selection, early stopping, cancellation."""

import itertools

import pytest
import torch

from aimass.errors import Cancelled, InvalidArgument
from aimass.training.callbacks import CallbackList, CancelCallback
from aimass.training.config import TrainConfig
from aimass.training.loop import fit, lr_multiplier, param_groups


def test_lr_schedule_warms_up_then_decays_to_zero():
    values = [lr_multiplier(s, 100, 10) for s in range(100)]
    assert values[0] == pytest.approx(0.1)
    assert values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[-1] == pytest.approx(1 / 90)
    tail = values[10:]
    assert all(a >= b for a, b in itertools.pairwise(tail))


def test_biases_and_norms_are_not_decayed():
    module = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.LayerNorm(3))
    decay, no_decay = param_groups(module, 0.1)
    assert len(decay["params"]) == 1
    assert len(no_decay["params"]) == 3


def _problem(epochs=5, patience=0):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    config = TrainConfig(
        mode="features", epochs=epochs, lr=0.1, batch_size=16, patience=patience
    ).resolved()
    return model, x, y, config


def test_fit_keeps_the_best_epoch_weights():
    model, x, y, config = _problem()
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.8])
    snapshots = []

    def evaluate():
        snapshots.append(model.weight.detach().clone())
        return {"accuracy": next(scores)}

    result = fit(
        model,
        batches=lambda e: list(torch.arange(64).split(16)),
        loss_fn=lambda idx: torch.nn.functional.cross_entropy(model(x[idx]), y[idx]),
        evaluate=evaluate,
        config=config,
        metric="accuracy",
        greater_is_better=True,
        callbacks=CallbackList(),
    )
    assert result.best_epoch == 2
    assert torch.equal(model.weight, snapshots[1])
    assert result.steps == 20


def test_patience_stops_early():
    model, x, y, config = _problem(epochs=50, patience=2)
    result = fit(
        model,
        batches=lambda e: [torch.arange(64)],
        loss_fn=lambda idx: torch.nn.functional.cross_entropy(model(x[idx]), y[idx]),
        evaluate=lambda: {"accuracy": 0.5},
        config=config,
        metric="accuracy",
        greater_is_better=True,
        callbacks=CallbackList(),
    )
    assert result.stopped_early
    assert len(result.history) == 3


def test_cancellation_stops_within_one_step():
    model, x, y, config = _problem()
    steps = []

    def loss_fn(idx):
        steps.append(1)
        return torch.nn.functional.cross_entropy(model(x[idx]), y[idx])

    with pytest.raises(Cancelled, match="step 3"):
        fit(
            model,
            batches=lambda e: list(torch.arange(64).split(16)),
            loss_fn=loss_fn,
            evaluate=lambda: {"accuracy": 1.0},
            config=config,
            metric="accuracy",
            greater_is_better=True,
            callbacks=CallbackList([CancelCallback(lambda: len(steps) >= 3)]),
        )
    assert len(steps) == 3


def test_an_empty_training_split_is_an_error():
    model, _x, _y, config = _problem()
    with pytest.raises(InvalidArgument, match="empty"):
        fit(
            model,
            batches=lambda e: [],
            loss_fn=lambda b: torch.tensor(0.0),
            evaluate=dict,
            config=config,
            metric="accuracy",
            greater_is_better=True,
            callbacks=CallbackList(),
        )
