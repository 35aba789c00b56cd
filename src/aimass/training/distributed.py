"""Data-parallel training on Ray Train: ``aimass train --workers N``.

The job hands :func:`train_distributed` the inputs it would have trained on in
process. Ray Train's ``TorchTrainer`` starts N workers and a
``torch.distributed`` group (gloo on CPU, NCCL on CUDA); each worker rebuilds
the inputs from paths and JSON, and runs the task's ordinary ``train`` with a
:class:`~aimass.training.parallel.DataParallel`, so the same loop, the same
checkpoints and the same metrics serve one worker or many::

    job (driver)                          Ray workers, ranks 0..N-1
    ------------                          --------------------------
    spec (JSON: paths, config) ---------> rebuild TrainInputs, task.train(...)
    replay callbacks <--- events.jsonl -- rank 0: progress, eval, checkpoints
    cancel marker ----------------------> rank 0 raises Cancelled at the next step
    read outcome <------ outcome/ ------- rank 0: model.safetensors + outcome.json

Nothing of ours is pickled through Ray: the workers get one JSON string, and
weights come back as safetensors files in the run directory (encrypted with
the job's keys when encryption at rest is on; the JSON names the job's key id and
where a node finds its keys, and each worker loads them from its own node, so no
secret enters Ray's control store). The run directory, the dataset
and the base must be on a filesystem every Ray node sees (one machine, or a
shared mount). Ray is imported only here, and only when ``workers`` > 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from aimass.artifacts.envelope import MasterKeys, read_plaintext
from aimass.artifacts.keyring import load_master_keys
from aimass.artifacts.storage import encrypt_tree, make_private, private_dir
from aimass.errors import AimassError, FailedPrecondition, InvalidArgument, Unavailable
from aimass.settings import Settings
from aimass.training.callbacks import CallbackList
from aimass.training.config import TrainConfig
from aimass.training.relay import EventReader, EventWriter
from aimass.training.tasks import TrainInputs, TrainOutcome

__all__ = ["train_distributed"]

EVENTS = "events.jsonl"
CANCEL = "cancel"
OUTCOME = "outcome"
# How often the job looks for new events from rank 0 (seconds).
POLL_SECONDS = 0.2


def train_distributed(inputs: TrainInputs, *, data_path: Path, settings: Settings) -> TrainOutcome:
    """Train ``inputs`` with ``inputs.config.workers`` data-parallel Ray workers.

    Args:
        inputs: What the job would train on in process (its callbacks get every
            event of rank 0; its ``train`` split is re-read by each worker).
        data_path: The dataset version's directory (each worker reads its splits).
        settings: Where Ray is (``AIMASS_RAY_ADDRESS``, else a local Ray) and the device.

    Returns:
        Rank 0's outcome, as the task would have returned it in process.

    Raises:
        InvalidArgument: Differential privacy was asked for, or the cluster has
            fewer CPUs than workers.
        Unavailable: Ray could not be reached, or the workers failed.
    """
    config = inputs.config
    if inputs.privacy is not None:
        raise InvalidArgument(
            f"--workers {config.workers} cannot be combined with --dp: DP-SGD's privacy "
            "accounting assumes one process sampling the whole training split; drop "
            "--workers (or --dp)",
            field="workers",
        )
    from aimass.cluster import connect

    ray = connect(settings)
    use_gpu = _use_gpu(ray, settings, config.workers)
    work = inputs.workdir / "distributed"
    shutil.rmtree(work, ignore_errors=True)
    private_dir(work)
    spec = _worker_spec(inputs, data_path=data_path, work=work, settings=settings, use_gpu=use_gpu)
    reader = EventReader(work / EVENTS, inputs.callbacks)
    failure = _run_trainer(spec, work=work, reader=reader, use_gpu=use_gpu)
    if reader.error is not None:
        raise reader.error
    if failure is not None:
        raise Unavailable(
            f"distributed training with {config.workers} workers failed: {failure}; see the "
            f"Ray worker logs (ray logs) for the traceback",
            workers=config.workers,
        ) from failure
    outcome = _read_outcome(work / OUTCOME, inputs.checkpoint_keys)
    shutil.rmtree(work / OUTCOME, ignore_errors=True)
    outcome.metrics.setdefault("training", {})["workers"] = config.workers
    return outcome


def _use_gpu(ray: Any, settings: Settings, workers: int) -> bool:
    """Whether the workers train on GPUs; refuses a cluster too small for ``workers``."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    use_gpu = settings.device == "cuda" or (settings.device == "auto" and gpus > 0)
    kind = "GPU" if use_gpu else "CPU"
    have = int(resources.get(kind, 0) - _held(ray).get(kind, 0))
    if have < workers:
        # Ray Train would wait forever for resources that are not there.
        raise InvalidArgument(
            f"--workers {workers} needs {workers} {kind}s in the Ray cluster, which has "
            f"{have} besides this job's own; use --workers {max(have, 1)} or fewer, or add "
            "nodes to the cluster" + (" (or train on CPUs: AIMASS_DEVICE=cpu)" if use_gpu else ""),
            field="workers",
        )
    return use_gpu


def _held(ray: Any) -> dict[str, float]:
    """What this process holds when it is itself a Ray task or actor (the Ray executor)."""
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:
        return {}
    return dict(context.get_assigned_resources())


def _worker_spec(
    inputs: TrainInputs, *, data_path: Path, work: Path, settings: Settings, use_gpu: bool
) -> dict[str, Any]:
    """Everything a worker needs, as plain JSON data (paths, config, schema)."""
    keys = inputs.checkpoint_keys
    return {
        "config": inputs.config.to_dict(),
        "base_dir": str(inputs.base_dir),
        "data_path": str(data_path),
        "schema": dataclasses.asdict(inputs.schema),
        "stats": inputs.stats,
        "workdir": str(inputs.workdir),
        "work": str(work),
        "checkpoint_dir": str(inputs.checkpoint_dir) if inputs.checkpoint_dir else None,
        # Which keys, never the keys: each worker loads them from its own node, as
        # the job's Ray actor does, so no secret enters Ray's control store.
        "keys": _key_source(keys, settings) if keys is not None else None,
        "threads": settings.num_threads,
        "use_gpu": use_gpu,
    }


def _key_source(keys: MasterKeys, settings: Settings) -> dict[str, Any]:
    """The job's active key id and where a node finds its keys (no secret in it)."""
    return {
        "active": keys.active,
        "master_key_file": str(settings.master_key_file) if settings.master_key_file else None,
        "master_key_command": settings.master_key_command,
    }


def _node_keys(wanted: dict[str, Any]) -> MasterKeys:
    """The master keys on this node (its ``AIMASS_MASTER_KEY``, or the same key file or
    command as the job's), refused unless they hold the job's active key."""
    source = {k: wanted[k] for k in ("master_key_file", "master_key_command") if wanted[k]}
    keys = load_master_keys(Settings(**source), create=False)
    if keys is None or wanted["active"] not in keys.keys:
        raise FailedPrecondition(
            f"this Ray node lacks the master key {wanted['active']!r} the job encrypts its "
            "checkpoints and model with; give every Ray node the server's AIMASS_MASTER_KEY "
            "(or the same AIMASS_MASTER_KEY_FILE or AIMASS_MASTER_KEY_COMMAND)"
        )
    return MasterKeys(active=wanted["active"], keys=keys.keys, source=keys.source)


def _run_trainer(
    spec: dict[str, Any], *, work: Path, reader: EventReader, use_gpu: bool
) -> BaseException | None:
    """Run the ``TorchTrainer`` in a thread while this one replays rank 0's events.

    Returns the trainer's failure, if any; raises what a callback raised (e.g. the
    job's cancellation), after the workers have stopped.
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    workers = int(spec["config"]["workers"])
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"spec": json.dumps(spec)},
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": 1}
        ),
        run_config=RunConfig(
            name="train",
            storage_path=str(work / "ray"),
            # A failed worker fails the job; the job's own retry resumes from the checkpoint.
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    failure: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as exc:  # reported to the job's thread below
            failure.append(exc)

    thread = threading.Thread(target=fit, name="aimass-ray-train", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            reader.poll()
            thread.join(POLL_SECONDS)
        reader.poll()
    except BaseException:
        # A callback refused to go on (a cancelled job): stop rank 0, then the rest.
        (work / CANCEL).touch()
        thread.join()
        raise
    finally:
        reader.finish()
    return failure[0] if failure else None


def _worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: rebuild the inputs, train, and (rank 0) write the outcome."""
    import ray.train
    import torch

    from aimass.training.parallel import DataParallel
    from aimass.training.tasks import get_task

    spec = json.loads(config["spec"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    # Ray gives each worker one CPU; torch may use this node's cores shared out evenly.
    threads = spec["threads"] or max(1, (os.cpu_count() or 1) // context.get_local_world_size())
    torch.set_num_threads(threads)
    device = ray.train.torch.get_device() if spec["use_gpu"] else torch.device("cpu")
    work = Path(spec["work"])
    keys = _node_keys(spec["keys"]) if spec["keys"] else None
    writer = EventWriter(work / EVENTS, cancel_marker=work / CANCEL) if rank == 0 else None
    inputs = _worker_inputs(spec, keys=keys, device=device, writer=writer)
    inputs.parallel = DataParallel(rank=rank, world_size=world)
    try:
        outcome = get_task(inputs.config.task).train(inputs)
    except AimassError as exc:
        if writer is not None:
            writer.error(exc)
        raise
    if rank == 0:
        _write_outcome(outcome, work / OUTCOME, keys)


def _worker_inputs(
    spec: dict[str, Any], *, keys: MasterKeys | None, device: Any, writer: EventWriter | None
) -> TrainInputs:
    """The job's :class:`TrainInputs`, rebuilt on a worker from the JSON spec."""
    from aimass.artifacts.bundle import verify_bundle
    from aimass.data.tables import read_split
    from aimass.entities import DatasetSchema
    from aimass.training.tasks import train_rows

    config = TrainConfig.from_dict(spec["config"])
    data_path = Path(spec["data_path"])
    base_dir = Path(spec["base_dir"])
    schema = spec["schema"]
    return TrainInputs(
        base_dir=base_dir,
        base_manifest=verify_bundle(base_dir),
        schema=DatasetSchema(**{**schema, "extra_fields": tuple(schema["extra_fields"])}),
        stats=spec["stats"],
        train=train_rows(read_split(data_path, "train"), config),
        validation=read_split(data_path, "validation"),
        test=read_split(data_path, "test"),
        config=config,
        device=device,
        # Only rank 0 reports: progress, TensorBoard and cancellation stay the job's.
        callbacks=CallbackList([writer] if writer is not None else []),
        workdir=Path(spec["workdir"]),
        checkpoint_dir=Path(spec["checkpoint_dir"]) if spec["checkpoint_dir"] else None,
        checkpoint_keys=keys,
    )


def _write_outcome(outcome: TrainOutcome, target: Path, keys: MasterKeys | None) -> None:
    """Rank 0's outcome as files: weights in safetensors, the rest in JSON; then rename."""
    from safetensors.torch import save_file

    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    private_dir(staging)

    def tensors(state: dict[str, Any]) -> dict[str, Any]:
        return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}

    save_file(tensors(outcome.state_dict), str(staging / "model.safetensors"))
    if outcome.adapters is not None:
        save_file(tensors(outcome.adapters), str(staging / "adapters.safetensors"))
    fields = {
        f.name: getattr(outcome, f.name)
        for f in dataclasses.fields(outcome)
        if f.name not in ("state_dict", "adapters", "tokenizer_files")
    }
    fields["tokenizer_files"] = {n: str(p) for n, p in outcome.tokenizer_files.items()}
    fields["has_adapters"] = outcome.adapters is not None
    (staging / "outcome.json").write_text(json.dumps(fields), encoding="utf-8")
    if keys is not None:
        encrypt_tree(staging, keys)
    make_private(staging)
    os.replace(staging, target)


def _read_outcome(source: Path, keys: MasterKeys | None) -> TrainOutcome:
    """Inverse of :func:`_write_outcome`, on the job's side."""
    from safetensors.torch import load

    if not (source / "outcome.json").is_file():
        raise Unavailable(
            f"the distributed run finished without writing its model to {source}; "
            "see the Ray worker logs"
        )
    fields = json.loads(read_plaintext(source / "outcome.json", keys).decode("utf-8"))
    adapters = None
    if fields.pop("has_adapters"):
        adapters = load(read_plaintext(source / "adapters.safetensors", keys))
    tokenizer_files = {n: Path(p) for n, p in fields.pop("tokenizer_files").items()}
    return TrainOutcome(
        state_dict=load(read_plaintext(source / "model.safetensors", keys)),
        tokenizer_files=tokenizer_files,
        adapters=adapters,
        **fields,
    )
