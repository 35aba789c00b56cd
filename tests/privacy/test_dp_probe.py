"""DP-LP-FT: a private linear probe, then private fine-tuning, under one accountant."""

import pytest
import torch
from opacus.accountants import RDPAccountant
from torch import nn

from aimass.errors import PrivacyBudgetExceeded
from aimass.jobs.train import TrainSpec
from aimass.privacy import DPConfig, DPEngine, epsilon_spent, noise_for_epsilon

FINETUNE = {"mode": "finetune", "epochs": 1, "lr": 1e-3, "batch_size": 32}
PROBE = {"probe_epochs": 4, "probe_lr": 5e-2}
RDP8 = {"target_epsilon": 8, "accountant": "rdp"}


def test_a_schedule_composes_its_phases_as_the_accountant_does():
    schedule = ((0.1, 40), (0.02, 150))
    acc = RDPAccountant()
    for q, steps in schedule:
        for _ in range(steps):
            acc.step(noise_multiplier=1.3, sample_rate=q)
    spent = epsilon_spent(noise_multiplier=1.3, schedule=schedule, delta=1e-5, accountant="rdp")
    assert spent == pytest.approx(acc.get_epsilon(delta=1e-5), rel=1e-9)
    sigma = noise_for_epsilon(target_epsilon=3.0, delta=1e-5, schedule=schedule, accountant="rdp")
    composed = epsilon_spent(
        noise_multiplier=sigma, schedule=schedule, delta=1e-5, accountant="rdp"
    )
    assert 2.99 <= composed <= 3.0
    # The second phase alone needs less noise for the same budget.
    alone = noise_for_epsilon(
        target_epsilon=3.0, delta=1e-5, sample_rate=0.02, steps=150, accountant="rdp"
    )
    assert alone < sigma


def test_two_phases_share_one_accountant_and_each_is_capped():
    torch.manual_seed(0)
    head = nn.Linear(4, 2)
    engine = DPEngine(DPConfig(target_epsilon=4, accountant="rdp"))
    x, y = torch.randn(100, 4), torch.randint(0, 2, (100,))
    phases = [(50, 2), (20, 1)]
    for phase, steps in enumerate((4, 5)):
        optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
        with engine.make_private(
            head,
            optimizer=optimizer,
            num_examples=100,
            phases=phases,
            phase=phase,
            loss=nn.functional.cross_entropy,
            finetune=False,
        ) as run:
            for epoch in range(phases[phase][1]):
                for idx in run.batches(epoch):
                    run.loss(head(x[idx]), y[idx]).backward()
                    run.optimizer.step()
                    run.optimizer.zero_grad()
            with pytest.raises(PrivacyBudgetExceeded, match=f"allows {steps} steps of phase"):
                run.loss(head(x[:3]), y[:3])
    assert engine.steps_taken() == 9
    summary = engine.summary()
    assert [p["planned_steps"] for p in summary["phases"]] == [4, 5]
    assert summary["sample_rate"] == 0.2
    assert summary["epsilon"] == pytest.approx(
        epsilon_spent(
            noise_multiplier=summary["noise_multiplier"],
            schedule=((0.5, 4), (0.2, 5)),
            delta=summary["delta"],
            accountant="rdp",
        ),
        abs=1e-3,
    )
    assert 3.9 <= summary["epsilon"] <= 4


def test_a_private_probe_and_fine_tune_record_both_phases(ready):
    version = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="p", config={**FINETUNE, **PROBE}, privacy=RDP8)
    )
    record = version.privacy
    probe, finetune = record["phases"]
    assert (probe["grad_sample_mode"], finetune["grad_sample_mode"]) == ("hooks", "ghost")
    assert (
        probe["trained_parameters"] < finetune["trained_parameters"] == record["trained_parameters"]
    )
    assert record["steps"] == probe["planned_steps"] + finetune["planned_steps"] == 40 + 10
    assert record["epsilon"] <= 8
    assert record["epsilon"] == pytest.approx(
        epsilon_spent(
            noise_multiplier=record["noise_multiplier"],
            schedule=((probe["sample_rate"], 40), (finetune["sample_rate"], 10)),
            delta=record["delta"],
            accountant="rdp",
        ),
        abs=1e-3,
    )
    # The probe's steps cost noise: more than the fine-tune alone would need.
    alone = DPEngine(DPConfig(**RDP8)).plan(num_examples=320, phases=[(32, 1)])
    assert record["noise_multiplier"] > alone["noise_multiplier"]
    assert version.metrics["training"]["probe"]["epochs"] == 4
    card = ready.models.card(version.ref)
    assert "Trained in 2 private phases" in card
    assert "| 1 | " in card and "| 2 | " in card


def test_with_lora_the_probe_leaves_only_the_adapters_and_head_to_fine_tune(ready):
    config = {**FINETUNE, "lora_rank": 4, "lr": 1e-2}
    plain = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="l", config=config, privacy=RDP8)
    )
    probed = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="lp", config={**config, **PROBE}, privacy=RDP8)
    )
    assert probed.privacy["phases"][1]["trained_parameters"] == plain.privacy["trained_parameters"]
