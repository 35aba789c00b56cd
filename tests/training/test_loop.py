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


def _problem(epochs=5, patience=0, eval_steps=0):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    model = torch.nn.Linear(4, 2)
    config = TrainConfig(
        mode="features",
        epochs=epochs,
        lr=0.1,
        batch_size=16,
        patience=patience,
        eval_steps=eval_steps,
    ).resolved()
    return model, x, y, config


def _fit_scored(model, x, y, config, scores):
    """Fit on 4 batches an epoch; evaluation returns ``scores`` in turn and snapshots the
    weights it scored."""
    snapshots = []
    scores = iter(scores)

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
    return result, snapshots


def test_fit_keeps_the_best_epoch_weights():
    model, x, y, config = _problem()
    result, snapshots = _fit_scored(model, x, y, config, [0.5, 0.9, 0.6, 0.7, 0.8])
    assert result.best_epoch == 2
    assert torch.equal(model.weight, snapshots[1])
    assert result.steps == 20


def test_eval_steps_evaluates_within_epochs_and_keeps_the_best_step():
    # 4 steps an epoch, every 3 steps: steps 3, (4 = epoch end), 6, (8 = end): never twice
    model, x, y, config = _problem(epochs=2, eval_steps=3)
    result, snapshots = _fit_scored(model, x, y, config, [0.6, 0.7, 0.9, 0.8])
    assert [(h["epoch"], h["step"]) for h in result.history] == [(1, 3), (1, 4), (2, 6), (2, 8)]
    assert result.best_epoch == 2
    assert result.best_metrics["step"] == 6
    assert torch.equal(model.weight, snapshots[2])  # the weights scored mid-epoch
    assert not torch.equal(model.weight, snapshots[3])
    assert result.steps == 8


def test_patience_counts_evaluations_within_an_epoch():
    model, x, y, config = _problem(epochs=3, patience=2, eval_steps=1)
    result, _ = _fit_scored(model, x, y, config, [0.9, 0.5, 0.5, 0.5])
    assert result.stopped_early
    assert result.steps == 3  # stopped at its third step, before the first epoch's end
    assert [h["step"] for h in result.history] == [1, 2, 3]


def test_eval_steps_is_checked_and_left_out_of_the_digest_when_off():
    assert "eval_steps" not in TrainConfig().resolved().to_dict()
    assert TrainConfig(eval_steps=50).resolved().to_dict()["eval_steps"] == 50
    for bad in (-1, True, 2.5):
        with pytest.raises(InvalidArgument, match="eval_steps"):
            TrainConfig(eval_steps=bad).resolved()


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
