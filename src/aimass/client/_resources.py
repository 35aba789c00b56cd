"""The namespaces of :class:`aimass.Client` (``client.datasets``, ``client.jobs``, ...)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.client._download import download
from aimass.client._wire import (
    T,
    parse,
    upload_body,
)
from aimass.operations import wait_for
from aimass.schemas import (
    BaseModelOut,
    DatasetVersionOut,
    JobLogLineOut,
    JobOut,
    PackagedBaseOut,
    SampleOut,
)

if TYPE_CHECKING:
    from aimass.client._client import Client


class _Resource:
    # Subclasses define a ``list`` method; annotations after it in the class body
    # would name that method, so they spell the type ``builtins.list``.

    def __init__(self, client: Client) -> None:
        self._c = client

    def _get(self, kind: type[T], template: str, project: str | None, **kw: Any) -> T:
        params = kw.pop("params", None)
        return parse(
            kind, self._c.request("GET", self._c._p(template, project, **kw), params=params)
        )

    def _send(
        self,
        method: str,
        kind: type[T],
        template: str,
        project: str | None,
        body: Any = None,
        **kw: Any,
    ) -> T:
        return parse(kind, self._c.request(method, self._c._p(template, project, **kw), json=body))


class _Datasets(_Resource):
    """``client.datasets``: upload, import, list, show, versions, samples."""

    def list(self, *, project: str | None = None) -> list[DatasetVersionOut]:
        """Latest version of every dataset."""
        return self._get(list[DatasetVersionOut], "/datasets", project)

    def get(self, ref: str, *, project: str | None = None) -> DatasetVersionOut:
        """``NAME`` (latest) or ``NAME@VERSION``."""
        name, _, version = ref.partition("@")
        if version and version != "latest":
            return self._get(
                DatasetVersionOut, "/datasets/{n}/versions/{v}", project, n=name, v=version
            )
        return self._get(DatasetVersionOut, "/datasets/{n}", project, n=name)

    def versions(
        self, name: str, *, project: str | None = None
    ) -> builtins.list[DatasetVersionOut]:
        """Every version, oldest first."""
        return self._get(list[DatasetVersionOut], "/datasets/{n}/versions", project, n=name)

    def upload(
        self,
        file: str | Path,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> DatasetVersionOut:
        """Send a local JSONL/CSV/Parquet/CoNLL file.

        Options: ``kind`` (``text``, ``tokens`` for tokens + BIO tags, ``pairs`` for
        prompt/response or source/target), ``text_field``, ``label_field``,
        ``split_field``, ``label_type``, ``seed``, ``splits``, ``deidentify``.
        """
        body = upload_body(Path(file), name, fmt, options)
        return self._send("POST", DatasetVersionOut, "/datasets", project, body)

    def import_path(
        self,
        server_path: str,
        *,
        name: str,
        fmt: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> DatasetVersionOut:
        """Import a file the server may read (inside its AIMASS_IMPORT_DIRS)."""
        body = {"name": name, "path": server_path, "format": fmt, **options}
        return self._send("POST", DatasetVersionOut, "/datasets:import", project, body)

    def import_sample(
        self,
        sample: str,
        *,
        name: str | None = None,
        seed: int = 0,
        deidentify: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> DatasetVersionOut:
        """Import a packaged sample dataset on the server (``deidentify`` as for ``upload``)."""
        body = {"sample": sample, "name": name, "seed": seed, "deidentify": deidentify}
        return self._send("POST", DatasetVersionOut, "/datasets:import-sample", project, body)

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> DatasetVersionOut:
        """Delete a version (its file goes with ``aimass gc``; models keep its lineage)."""
        template = "/datasets/{n}/versions/{v}"
        return self._send("DELETE", DatasetVersionOut, template, project, None, n=name, v=version)

    def samples(self) -> builtins.list[SampleOut]:
        """Packaged samples the server has."""
        return parse(list[SampleOut], self._c.request("GET", "/v1/samples"))


class _Bases(_Resource):
    """``client.bases``: import (packaged name or allowed server path), list, show."""

    def list(self, *, project: str | None = None) -> list[BaseModelOut]:
        """Latest version of every base."""
        return self._get(list[BaseModelOut], "/bases", project)

    def get(self, name: str, *, project: str | None = None) -> BaseModelOut:
        """``NAME`` (latest) or ``NAME@VERSION`` of a base."""
        return self._get(BaseModelOut, "/bases/{n}", project, n=name)

    def versions(self, name: str, *, project: str | None = None) -> builtins.list[BaseModelOut]:
        """Every version, oldest first."""
        return self._get(list[BaseModelOut], "/bases/{n}/versions", project, n=name)

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> BaseModelOut:
        """Delete a version no model version was trained from (Conflict naming them)."""
        template = "/bases/{n}/versions/{v}"
        return self._send("DELETE", BaseModelOut, template, project, None, n=name, v=version)

    def packaged(self) -> builtins.list[PackagedBaseOut]:
        """Packaged bases the server knows, and whether their packages are installed there."""
        return parse(list[PackagedBaseOut], self._c.request("GET", "/v1/packaged-bases"))

    def import_(
        self,
        source: str | None = None,
        *,
        path: str | None = None,
        name: str | None = None,
        project: str | None = None,
    ) -> BaseModelOut:
        """Import a packaged base (``minilm``) or a directory in the server's import dirs."""
        body = {"source": source, "path": path, "name": name}
        return self._send("POST", BaseModelOut, "/bases", project, body)

    def from_model(self, ref: str, *, name: str, project: str | None = None) -> BaseModelOut:
        """Register a trained model version as base ``name``, its task head dropped."""
        body = {"model": ref, "name": name}
        return self._send("POST", BaseModelOut, "/bases:from-model", project, body)

    def shrink(
        self,
        ref: str,
        *,
        name: str,
        layers: int,
        pick: str = "first",
        intermediate_size: int = 0,
        project: str | None = None,
    ) -> BaseModelOut:
        """Base ``ref`` cut to ``layers`` layers (``first`` or ``spread``) as ``name``."""
        body = {
            "base": ref,
            "name": name,
            "layers": layers,
            "pick": pick,
            "intermediate_size": intermediate_size,
        }
        return self._send("POST", BaseModelOut, "/bases:shrink", project, body)

    def train_tokenizer(
        self,
        dataset: str,
        *,
        name: str,
        kind: str = "wordpiece",
        vocab_size: int = 8000,
        min_frequency: int = 2,
        project: str | None = None,
    ) -> BaseModelOut:
        """Train a tokenizer on ``dataset``'s training split; register it as ``name``."""
        body = {
            "dataset": dataset,
            "name": name,
            "kind": kind,
            "vocab_size": vocab_size,
            "min_frequency": min_frequency,
        }
        return self._send("POST", BaseModelOut, "/bases:train-tokenizer", project, body)

    def create_scratch(
        self,
        name: str,
        *,
        architecture: str,
        tokenizer: str,
        preset: str = "tiny",
        seed: int = 0,
        overrides: Mapping[str, int | float] | None = None,
        project: str | None = None,
    ) -> BaseModelOut:
        """A randomly initialised base of ``preset`` size around a registered tokenizer."""
        body = {
            "name": name,
            "architecture": architecture,
            "tokenizer": tokenizer,
            "preset": preset,
            "seed": seed,
            "overrides": dict(overrides or {}),
        }
        return self._send("POST", BaseModelOut, "/bases:scratch", project, body)


class _Jobs(_Resource):
    """``client.jobs``: submit training or batch prediction, list, get, logs, cancel, wait,
    results."""

    def submit_training(
        self,
        *,
        dataset: str,
        model: str,
        base: str | None = None,
        config: dict[str, Any] | None = None,
        alias: str | None = None,
        reuse: bool = False,
        privacy: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Queue a training job (``privacy``: DP-SGD options, e.g. ``{"target_epsilon": 8}``).

        Without ``base`` the server picks the dataset's recommended recipe.
        """
        body = {
            "kind": "train",
            "dataset": dataset,
            "base": base,
            "model": model,
            "config": config or {},
            "alias": alias,
            "reuse": reuse,
            "privacy": privacy,
        }
        return self._send("POST", JobOut, "/jobs", project, body)

    def submit_batch_predict(
        self,
        *,
        model: str,
        dataset: str,
        output: str,
        split: str | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Queue a batch prediction writing the result dataset ``output``."""
        body = {
            "kind": "batch-predict",
            "model": model,
            "dataset": dataset,
            "output": output,
            "split": split,
        }
        return self._send("POST", JobOut, "/jobs", project, body)

    def submit_evaluation(
        self,
        *,
        model: str | None = None,
        dataset: str,
        split: str = "test",
        group_field: str | None = None,
        options: dict[str, Any] | None = None,
        pipeline: str | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Queue an evaluation report of ``model`` (or of ``pipeline``, a pipeline
        version) over a labelled ``dataset``."""
        body = {
            "kind": "evaluate",
            "model": model,
            "dataset": dataset,
            "split": split,
            "group_field": group_field,
            "options": options or {},
            "pipeline": pipeline,
        }
        return self._send("POST", JobOut, "/jobs", project, body)

    def submit_optimization(
        self,
        *,
        model: str,
        dataset: str | None = None,
        split: str = "test",
        threshold: float = 0.5,
        project: str | None = None,
    ) -> JobOut:
        """Queue ONNX graphs (fp32, int8) and a parity run for ``model``; ``dataset``
        defaults to the one it was trained on, ``threshold`` is the int8 gate."""
        body = {
            "kind": "optimize",
            "model": model,
            "dataset": dataset,
            "split": split,
            "threshold": threshold,
        }
        return self._send("POST", JobOut, "/jobs", project, body)

    def submit_audit(
        self,
        *,
        model: str,
        dataset: str,
        max_examples: int = 1000,
        calibrated: bool = True,
        project: str | None = None,
    ) -> JobOut:
        """Queue a membership-inference audit of ``model`` against ``dataset``, the data it
        was trained on; the report is the finished job's ``result["report"]``."""
        body = {
            "kind": "audit-privacy",
            "model": model,
            "dataset": dataset,
            "max_examples": max_examples,
            "calibrated": calibrated,
        }
        return self._send("POST", JobOut, "/jobs", project, body)

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        project: str | None = None,
    ) -> list[JobOut]:
        """Newest first."""
        params = {"status": status, "kind": kind, "limit": limit}
        return self._get(list[JobOut], "/jobs", project, params=params)

    def get(self, job_id: str, *, project: str | None = None) -> JobOut:
        """A job with live progress and metrics."""
        return self._get(JobOut, "/jobs/{j}", project, j=job_id)

    def logs(
        self, job_id: str, *, after: int = 0, project: str | None = None
    ) -> builtins.list[JobLogLineOut]:
        """Log lines after sequence number ``after``."""
        return self._get(
            list[JobLogLineOut], "/jobs/{j}/logs", project, j=job_id, params={"after": after}
        )

    def cancel(self, job_id: str, *, project: str | None = None) -> JobOut:
        """Cancel (queued: at once; running: within one step)."""
        return self._send("POST", JobOut, "/jobs/{j}:cancel", project, None, j=job_id)

    def results(
        self,
        job_id: str,
        destination: str | Path = ".",
        *,
        fmt: str = "parquet",
        project: str | None = None,
    ) -> Path:
        """Download a finished batch prediction's result dataset; returns the file written.

        ``fmt``: ``parquet``, ``csv`` or ``jsonl``. ``destination``: the file, or a
        folder to write ``NAME-vVERSION.FMT`` in. Streamed to disk, never held whole.
        """
        url = self._c._p("/jobs/{j}/results", project, j=job_id)
        params = {"format": fmt}
        return download(self._c._http, url, Path(destination), params=params, server=self._c.url)

    def wait(
        self,
        job_id: str,
        *,
        progress: Callable[[JobOut], None] | None = None,
        poll: float = 1.0,
        timeout: float | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Poll until the job finishes; raise JobFailed if it failed.

        Args:
            progress: Called with every polled job record (progress bars).
            poll: Seconds between polls.
            timeout: Give up after this many seconds (TimeoutError).
        """
        return wait_for(
            lambda: self.get(job_id, project=project),
            progress=progress,
            poll=poll,
            timeout=timeout,
        )
