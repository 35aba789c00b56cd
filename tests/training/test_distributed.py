"""Data-parallel training (``workers`` > 1): the same loop, sharded batches, averaged gradients.

The math is checked without Ray (two gloo processes running ``fit`` against one
process on the whole batch); the job end to end runs on the session's real Ray
cluster (``ray_cluster``: a head and a worker node, one CPU each).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from aimass.errors import Cancelled, InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.models.lora import ADAPTER_FILE
from aimass.settings import Settings
from aimass.training.callbacks import Callback
from aimass.training.config import TrainConfig
from tests.conftest import sentiment_rows, write_jsonl
from tests.server.conftest import admin, app, client, settings_for, trained_home  # noqa: F401

# Ray Train copying Ray Data's context trips Ray Data's own deprecations, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

FINETUNE = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16, "seed": 3}


# -- the option ---------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 65, -1, "2", 1.5, True])
def test_workers_out_of_range_is_refused_naming_the_fix(workers):
    with pytest.raises(InvalidArgument, match=r"--workers .* from 1 to 64") as info:
        TrainConfig(workers=workers).resolved()
    assert info.value.details["field"] == "workers"


def test_one_worker_leaves_the_config_digest_as_it_was():
    assert "workers" not in TrainConfig().resolved().to_dict()
    assert TrainConfig(workers=4).resolved().to_dict()["workers"] == 4
    assert TrainConfig.from_dict({"workers": 2}).workers == 2


def test_dp_with_workers_is_refused_before_a_job_exists(ready):
    spec = TrainSpec(
        dataset="s",
        base="tiny",
        model="m",
        config={**FINETUNE, "workers": 2},
        privacy={"target_epsilon": 8.0},
    )
    with pytest.raises(InvalidArgument, match="--workers 2 cannot be combined with --dp"):
        ready.jobs.submit_training(spec)
    assert ready.store.jobs.list("default") == []


# -- the math, without Ray -------------------------------------------------------------


def _problem():
    import torch

    torch.manual_seed(0)
    x = torch.randn(61, 4)  # 61 rows: batches of 16 leave a last one of 13 (shares 7 + 6)
    y = (x[:, 0] + x[:, 1] > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    config = TrainConfig(
        mode="features", epochs=3, lr=0.05, batch_size=16, grad_accum=2, patience=0
    ).resolved()
    return model, x, y, config


def _fit_problem(rank: int, world: int, out: str, init_file: str) -> None:
    """Train the toy problem as rank ``rank`` of ``world`` (``world`` 0: no group)."""
    import torch
    import torch.distributed as dist
    from safetensors.torch import save_file

    from aimass.training.callbacks import CallbackList
    from aimass.training.loop import fit
    from aimass.training.parallel import DataParallel

    torch.set_num_threads(1)
    parallel = None
    if world:
        dist.init_process_group(
            "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
        )
        parallel = DataParallel(rank=rank, world_size=world)
    model, x, y, config = _problem()
    if parallel is not None and rank == 1:
        with torch.no_grad():  # a different start: fit must broadcast rank 0's weights
            for p in model.parameters():
                p.add_(1.0)
    losses = []

    def evaluate():
        with torch.no_grad():
            return {"loss": float(torch.nn.functional.cross_entropy(model(x), y))}

    class Losses(CallbackList):
        def on_step_end(self, state):
            losses.append(state.loss)

    result = fit(
        model,
        batches=lambda e: list(
            torch.randperm(61, generator=torch.Generator().manual_seed(e)).split(16)
        ),
        loss_fn=lambda idx: torch.nn.functional.cross_entropy(model(x[idx]), y[idx]),
        evaluate=evaluate,
        config=config,
        metric="loss",
        greater_is_better=False,
        callbacks=Losses(),
        parallel=parallel,
    )
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{out}/w{rank}.st")
    Path(f"{out}/r{rank}.json").write_text(
        json.dumps({"losses": losses, "history": result.history, "samples": result.samples})
    )
    if world:
        dist.destroy_process_group()


@pytest.mark.subprocess
def test_two_ranks_take_the_steps_one_process_takes_on_the_whole_batch(tmp_path):
    import torch
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    single, double = tmp_path / "one", tmp_path / "two"
    single.mkdir()
    double.mkdir()
    _fit_problem(0, 0, str(single), "")
    mp.start_processes(
        _fit_problem,
        args=(2, str(double), str(tmp_path / "rendezvous")),
        nprocs=2,
        start_method="spawn",
    )
    one = load_file(single / "w0.st")
    for rank in (0, 1):
        theirs = load_file(double / f"w{rank}.st")
        for key, value in one.items():
            torch.testing.assert_close(theirs[key], value, rtol=1e-5, atol=1e-6)
    reference = json.loads((single / "r0.json").read_text())
    chief = json.loads((double / "r0.json").read_text())
    # The reported loss is the whole batch's, and the sample count the global one.
    assert chief["losses"] == pytest.approx(reference["losses"], rel=1e-5)
    assert chief["samples"] == reference["samples"] == 3 * 61
    # Rank 0 evaluated; the other rank only followed its decisions.
    assert [h["loss"] for h in chief["history"]] == pytest.approx(
        [h["loss"] for h in reference["history"]], rel=1e-5
    )
    assert "loss" not in json.loads((double / "r1.json").read_text())["history"][0]


def _fit_from_a_probe(rank: int, world: int, out: str, init_file: str) -> None:
    """Rank ``rank`` fits from weights scored by rank 0 alone (as after a linear probe)."""
    import datetime

    import torch
    import torch.distributed as dist

    from aimass.training.callbacks import CallbackList
    from aimass.training.loop import fit
    from aimass.training.parallel import DataParallel

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=60),
    )
    start = _problem()[0].state_dict()  # rank 0's weights, which fit broadcasts
    model, x, y, config = _problem()
    if rank == 1:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
    result = fit(
        model,
        batches=lambda e: list(torch.arange(61).split(16)),
        loss_fn=lambda idx: torch.nn.functional.cross_entropy(model(x[idx]), y[idx]),
        evaluate=lambda: {"loss": 1.0},
        config=dataclasses.replace(config, patience=1),
        metric="loss",
        greater_is_better=False,
        callbacks=CallbackList(),
        parallel=DataParallel(rank=rank, world_size=world),
        # Only rank 0 evaluated the probe; a loss of 0 cannot be beaten.
        start_metrics={"loss": 0.0, "epoch": 4} if rank == 0 else {"epoch": 4},
    )
    kept = all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    Path(f"{out}/r{rank}.json").write_text(
        json.dumps({"best_epoch": result.best_epoch, "steps": result.steps, "kept": kept})
    )
    dist.destroy_process_group()


@pytest.mark.subprocess
def test_every_rank_keeps_the_start_weights_rank_0_scored(tmp_path):
    import torch.multiprocessing as mp

    mp.start_processes(
        _fit_from_a_probe,
        args=(2, str(tmp_path), str(tmp_path / "rendezvous")),
        nprocs=2,
        start_method="spawn",
    )
    ranks = [json.loads((tmp_path / f"r{rank}.json").read_text()) for rank in (0, 1)]
    # No epoch beat the start: every rank stopped together after one (patience 1).
    assert ranks[0] == ranks[1] == {"best_epoch": 0, "steps": 2, "kept": True}


# -- the job on a real Ray cluster ---------------------------------------------------


@pytest.fixture
def ray_ready(ray_cluster, tmp_path, tiny_bert_dir):
    """A workspace whose settings point at the test Ray cluster, with data 's' and base 'tiny'."""
    from aimass.workspace import Workspace

    settings = Settings(home=tmp_path / "home", device="cpu", ray_address=ray_cluster.address)
    ws = Workspace(settings)
    path = write_jsonl(tmp_path / "s.jsonl", sentiment_rows(240, seed=1))
    ws.datasets.import_file(path, name="s")
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    yield ws
    ws.close()


class Seen(Callback):
    """Counts what the job's callbacks hear (relayed from rank 0)."""

    def __init__(self):
        self.steps, self.evals, self.checkpoints, self.ends = [], [], [], 0

    def on_step_end(self, state):
        self.steps.append(state.step)

    def on_eval(self, state, metrics):
        self.evals.append(metrics)

    def on_checkpoint(self, state, epoch):
        self.checkpoints.append(epoch)

    def on_train_end(self, state):
        self.ends += 1


@pytest.mark.subprocess
@pytest.mark.services
def test_two_workers_reach_one_workers_metric_and_publish_a_working_bundle(ray_ready):
    ws = ray_ready
    one = ws.jobs.train(TrainSpec(dataset="s", base="tiny", model="one", config=FINETUNE))
    seen = Seen()
    two = ws.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="two", config={**FINETUNE, "workers": 2}),
        callbacks=[seen],
    )
    # Same global batch, averaged gradients: the same model up to rounding.
    acc1, acc2 = one.metrics["validation"]["accuracy"], two.metrics["validation"]["accuracy"]
    assert acc1 > 0.8
    assert abs(acc1 - acc2) <= 0.05
    # Dropout draws other masks for two half batches than for one whole: the losses
    # differ by that noise, both well under chance (ln 2).
    assert one.metrics["validation"]["loss"] < 0.6 and two.metrics["validation"]["loss"] < 0.6
    assert two.metrics["training"]["workers"] == 2
    assert "workers" not in one.metrics["training"]
    assert two.lineage.config["workers"] == 2
    assert two.metrics["training"]["steps"] == one.metrics["training"]["steps"]
    # Rank 0 alone reported and checkpointed: each step and epoch once, not per worker.
    assert seen.steps == list(range(1, one.metrics["training"]["steps"] + 1))
    assert seen.checkpoints == [1, 2, 3] and len(seen.evals) == 3 and seen.ends == 1
    job_dir = ws.artifacts.path(f"runs/{two.lineage.job_id}")
    logs = [line.message for line in ws.jobs.logs(two.lineage.job_id)]
    assert [m for m in logs if m.startswith("checkpoint saved")] == [
        f"checkpoint saved after epoch {e}" for e in (1, 2, 3)
    ]
    assert not (job_dir / "checkpoint").exists()  # removed when the job finished
    assert not (job_dir / "distributed" / "outcome").exists()  # the weights went to the bundle
    labels = [p["label"] for p in ws.serving.predict("two", ["good great film", "awful bad"])]
    assert labels == ["pos", "neg"]


@pytest.mark.subprocess
@pytest.mark.services
def test_lora_trains_with_two_workers(ray_ready):
    ws = ray_ready
    lora = {"mode": "finetune", "epochs": 4, "lr": 2e-2, "batch_size": 16, "lora_rank": 8}
    one = ws.jobs.train(TrainSpec(dataset="s", base="tiny", model="one", config=lora))
    two = ws.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="two", config={**lora, "workers": 2})
    )
    acc1, acc2 = one.metrics["validation"]["accuracy"], two.metrics["validation"]["accuracy"]
    assert acc2 > 0.8 and abs(acc1 - acc2) <= 0.1, (acc1, acc2)
    assert two.lineage.config["lora_rank"] == 8 and two.lineage.config["workers"] == 2
    assert (ws.artifacts.resolve(two.uri) / ADAPTER_FILE).is_file()
    assert ws.serving.predict("two", ["good great film"])[0]["label"] == "pos"


@pytest.mark.subprocess
@pytest.mark.services
def test_cancelling_a_distributed_job_stops_its_workers(ray_ready):
    from aimass.entities import JobStatus

    ws = ray_ready

    class CancelAt(Callback):
        def on_step_end(self, state):
            if state.step == 2:
                ws.store.jobs.request_cancel(job.id)

    spec = TrainSpec(
        dataset="s", base="tiny", model="c", config={**FINETUNE, "epochs": 40, "workers": 2}
    )
    job = ws.jobs.submit_training(spec)
    seen = Seen()
    with pytest.raises(Cancelled):
        ws.jobs.run(job.id, callbacks=[CancelAt(), seen])
    assert ws.store.jobs.get(job.id).status == JobStatus.CANCELLED
    assert len(seen.steps) < 40 * 12 // 2, "the workers stopped long before the end"
    assert seen.ends == 1
    assert ws.store.registry.list_models("default") == []


def test_one_worker_trains_without_ray(ready, monkeypatch):
    # None in sys.modules makes every `import ray...` fail, imported before or not.
    monkeypatch.setitem(sys.modules, "ray", None)
    version = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="m", config={**FINETUNE, "epochs": 1})
    )
    assert "workers" not in version.lineage.config


class ProcessDied(BaseException):
    """Not an Exception: the runner cannot record it, as when the job's process is killed."""


@pytest.mark.subprocess
@pytest.mark.services
def test_a_distributed_job_killed_after_a_checkpoint_resumes_on_every_rank(ray_ready):
    from aimass.entities import JobStatus
    from aimass.jobs.pool import recover_stale_jobs

    ws = ray_ready

    class DieInEpoch(Callback):
        def on_step_end(self, state):
            if state.epoch == 1:
                raise ProcessDied

    # Rank 0's events reach this process's callbacks a poll later, so the workers run
    # ahead of the kill; on a loaded machine they ran 4 epochs before it came, leaving
    # nothing to resume. Eight leave room for the driver to fall behind.
    spec = TrainSpec(
        dataset="s", base="tiny", model="r", config={**FINETUNE, "epochs": 8, "workers": 2}
    )
    job = ws.jobs.submit_training(spec)
    with pytest.raises(ProcessDied):
        ws.jobs.run(job.id, callbacks=[DieInEpoch()])
    recovered = recover_stale_jobs(ws.store, ws.artifacts, stale_after=0)
    assert [(j.id, action) for j, action in recovered] == [(job.id, "resumed")]
    seen = Seen()
    done = ws.jobs.run(job.id, callbacks=[seen])
    assert done.status == JobStatus.SUCCEEDED and done.attempt == 2
    messages = [line.message for line in ws.jobs.logs(job.id)]
    assert any(m.startswith("resumed from the checkpoint after epoch") for m in messages)
    # Both ranks continued from the checkpoint: the steps go on from there, not from 1,
    # and (their weights agreeing) the model is as good as an uninterrupted one.
    assert seen.steps, "the workers finished every epoch before the kill reached them"
    assert seen.steps[0] > 12 and seen.steps[-1] == 8 * 12
    assert done.metrics["validation"]["accuracy"] > 0.8


@pytest.mark.subprocess
@pytest.mark.services
def test_more_workers_than_the_cluster_has_cpus_is_refused_not_left_waiting(ray_ready):
    spec = TrainSpec(dataset="s", base="tiny", model="w", config={**FINETUNE, "workers": 3})
    with pytest.raises(InvalidArgument, match=r"--workers 3 needs 3 CPUs .* has 2") as info:
        ray_ready.jobs.train(spec)
    assert "--workers 2 or fewer" in info.value.message
    assert ray_ready.store.registry.list_models("default") == []


# -- the CLI and the SDK ask for it ----------------------------------------------------


def test_cli_workers_flag_reaches_the_config_check(tmp_path, monkeypatch, tiny_bert_dir):
    from tests.cli.test_cli import run

    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    run("datasets", "import", write_jsonl(tmp_path / "s.jsonl", sentiment_rows(60)), "--name", "s")
    run("bases", "import", tiny_bert_dir, "--name", "tiny")
    train = ("train", "--dataset", "s", "--base", "tiny", "--name", "w", "--epochs", "1")
    refused = run(*train, "--workers", "65", ok=False)
    assert refused.exit_code != 0
    assert "--workers 65 is out of range" in refused.output


def test_the_sdk_sends_workers_to_the_server_which_checks_them(client, admin):  # noqa: F811
    from aimass.client import Client
    from tests.server.test_trust_api import through

    key = admin["Authorization"].split()[1]
    with Client("http://localhost", key, transport=through(client)) as sdk:
        before = len(sdk.jobs.list())
        with pytest.raises(InvalidArgument, match="--workers 0 is out of range"):
            sdk.jobs.submit_training(
                dataset="reviews", base="tiny", model="w", config={"workers": 0}
            )
        assert len(sdk.jobs.list()) == before, "refused before a job was queued"


def test_workers_load_the_master_keys_on_their_node_never_from_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    from aimass.artifacts.envelope import MasterKeys
    from aimass.errors import FailedPrecondition
    from aimass.settings import Settings
    from aimass.training.distributed import _key_source, _node_keys

    keys = MasterKeys.generate()
    wanted = _key_source(keys, Settings(home=tmp_path, master_key_file=tmp_path / "no-such.json"))
    # The message names the key; it does not carry it.
    assert base64.b64encode(keys.keys[keys.active]).decode() not in json.dumps(wanted)
    with pytest.raises(FailedPrecondition, match="AIMASS_MASTER_KEY"):
        _node_keys(wanted)
    monkeypatch.setenv("AIMASS_MASTER_KEY", base64.b64encode(keys.keys[keys.active]).decode())
    assert _node_keys(wanted).keys[keys.active] == keys.keys[keys.active]
    monkeypatch.setenv("AIMASS_MASTER_KEY", base64.b64encode(b"x" * 32).decode())
    with pytest.raises(FailedPrecondition, match=keys.active):
        _node_keys(wanted)
