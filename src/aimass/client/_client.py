"""``aimass.Client`` and ``aimass.AsyncClient``: the REST API from Python.

::

    client = aimass.Client("http://127.0.0.1:8600", api_key="aimass_...")
    client.predict("sentiment@production", ["a moving film"])
    for event in client.generate_stream("assistant@production", "Hello!"):
        print(event.get("text", ""), end="")
    job = client.jobs.submit_training(dataset="reviews", base="minilm", model="churn")
    client.jobs.wait(job.id, progress=print)

Errors come back as the exception classes the server raised (``NotFound``,
``PermissionDenied``, ...; see :mod:`aimass.errors`); an unreachable server is
:class:`~aimass.errors.Unavailable`. Pass ``transport=`` to talk to an app in
process (``httpx.ASGITransport(app=create_app(settings))``).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter

from aimass.client._download import download, download_async
from aimass.client._export import download_bundle
from aimass.client._transport import (
    SSE_HEADERS,
    ServerSentEvents,
    headers,
    json_or_text,
    path,
    raise_for_error,
    tls_verify,
    translate_transport_error,
)
from aimass.errors import InvalidArgument, JobFailed
from aimass.schemas import (
    ApiKeyOut,
    AttachmentOut,
    AuditEventOut,
    AuditVerifyOut,
    BaseModelOut,
    BundleVerifyOut,
    DatasetVersionOut,
    GenerateResponse,
    JobLogLineOut,
    JobOut,
    KeyCreated,
    ModelVersionOut,
    PredictResponse,
    ProjectOut,
    RegisteredModelOut,
    SampleOut,
    WhoAmI,
)

__all__ = ["AsyncClient", "Client"]

_T = TypeVar("_T")

DEFAULT_TIMEOUT = 60.0
_FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".conll": "conll",
    ".bio": "conll",
    ".iob": "conll",
}


def _parse(kind: type[_T], data: Any) -> _T:
    return TypeAdapter(kind).validate_python(data)


def _upload_body(file: Path, name: str, fmt: str | None, options: dict[str, Any]) -> dict[str, Any]:
    fmt = fmt or _FORMATS.get(file.suffix.lower())
    if fmt is None:
        raise InvalidArgument(
            f"cannot tell the format of {file.name!r}; pass fmt=jsonl|csv|parquet|conll"
        )
    data = file.read_bytes()
    body: dict[str, Any] = {"name": name, "format": fmt, **options}
    if fmt == "parquet":
        body["content_base64"] = base64.b64encode(data).decode("ascii")
    else:
        body["content"] = data.decode("utf-8")
    return body


class Client:
    """A synchronous aimass client.

    Args:
        url: The server, e.g. ``http://127.0.0.1:8600``.
        api_key: An API key (``aimass_...``).
        project: Default project for every call (override per call).
        timeout: Seconds per request.
        transport: An httpx transport (tests pass an in-process one).
        verify: How an ``https://`` server's certificate is checked: a PEM CA bundle
            (path) or an ``ssl.SSLContext``; default the bundle in ``AIMASS_CA_BUNDLE``,
            else the system's trust store. ``False`` turns the check off.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        project: str = "default",
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str | Path | ssl.SSLContext | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.project = project
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers(api_key),
            timeout=timeout,
            transport=transport,
            verify=tls_verify(verify),
        )
        self.datasets = _Datasets(self)
        self.bases = _Bases(self)
        self.jobs = _Jobs(self)
        self.models = _Models(self)
        self.keys = _Keys(self)
        self.projects = _Projects(self)
        self.audit = _Audit(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One API call; returns the decoded body or raises the server's error."""
        return json_or_text(self._call(method, url, json=json, params=params))

    def request_bytes(self, method: str, url: str) -> bytes:
        """One API call whose body is a file (a report): the raw bytes."""
        return self._call(method, url).content

    def _call(
        self, method: str, url: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, url, json=json, params=query)
        except httpx.TransportError as exc:
            raise translate_transport_error(exc, self.url) from exc
        raise_for_error(response)
        return response

    def _p(self, template: str, project: str | None, **params: Any) -> str:
        return path("/v1/projects/{project}" + template, project=project or self.project, **params)

    def whoami(self) -> WhoAmI:
        """The caller as the server sees it."""
        return WhoAmI.model_validate(self.request("GET", "/v1/whoami"))

    def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Predictions for ``inputs`` with ``NAME@ALIAS`` or ``NAME@VERSION``.

        ``explain``: ``True`` (integrated gradients) or a method name adds a per-word
        ``explanation`` to each prediction.
        """
        return self.predict_full(ref, inputs, explain=explain, project=project).predictions

    def predict_full(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> PredictResponse:
        """Predictions plus the version that made them."""
        url = self._p("/models/{ref}:predict", project, ref=ref)
        body: dict[str, Any] = {"inputs": list(inputs)}
        if explain:
            body["explain"] = explain
        return PredictResponse.model_validate(self.request("POST", url, json=body))

    def generate(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Generate text with a causal-LM or seq2seq model: ``text``, ``finish_reason``,
        ``usage``, ``timing``.

        Options as :meth:`aimass.workspace.Workspace.generate`: ``max_new_tokens``,
        ``temperature`` (0 = greedy), ``top_p``, ``top_k``, ``stop``, ``seed``.
        """
        url = self._p("/models/{ref}:generate", project, ref=ref)
        body = self.request("POST", url, json=_generate_body(prompt, options, stream=False))
        return GenerateResponse.model_validate(body).model_dump()

    def generate_stream(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield ``{"text": piece}`` as the server decodes it, then the final
        ``{"done": True, "text", "finish_reason", "usage", "timing"}`` (server-sent events).

        Closing the iterator early closes the connection, which stops the generation.
        """
        url = self._p("/models/{ref}:generate", project, ref=ref)
        body = _generate_body(prompt, options, stream=True)
        try:
            with self._http.stream("POST", url, json=body, headers=SSE_HEADERS) as response:
                if not response.is_success:
                    response.read()
                    raise_for_error(response)
                events = ServerSentEvents(self.url)
                for line in response.iter_lines():
                    event = events.feed(line)
                    if event is not None:
                        yield event
                    if events.done:
                        return
                events.end()
        except httpx.TransportError as exc:
            raise translate_transport_error(exc, self.url) from exc


def _generate_body(prompt: str, options: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    if "stop" in options and options["stop"] is not None:
        options = {**options, "stop": list(options["stop"])}
    return {"prompt": prompt, **options, "stream": stream}


class _Resource:
    # Subclasses define a ``list`` method; annotations after it in the class body
    # would name that method, so they spell the type ``builtins.list``.

    def __init__(self, client: Client) -> None:
        self._c = client

    def _get(self, kind: type[_T], template: str, project: str | None, **kw: Any) -> _T:
        params = kw.pop("params", None)
        return _parse(
            kind, self._c.request("GET", self._c._p(template, project, **kw), params=params)
        )

    def _send(
        self,
        method: str,
        kind: type[_T],
        template: str,
        project: str | None,
        body: Any = None,
        **kw: Any,
    ) -> _T:
        return _parse(kind, self._c.request(method, self._c._p(template, project, **kw), json=body))


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
        body = _upload_body(Path(file), name, fmt, options)
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

    def samples(self) -> builtins.list[SampleOut]:
        """Packaged samples the server has."""
        return _parse(list[SampleOut], self._c.request("GET", "/v1/samples"))


class _Bases(_Resource):
    """``client.bases``: import (packaged name or allowed server path), list, show."""

    def list(self, *, project: str | None = None) -> list[BaseModelOut]:
        """Latest version of every base."""
        return self._get(list[BaseModelOut], "/bases", project)

    def get(self, name: str, *, project: str | None = None) -> BaseModelOut:
        """Latest version of a base."""
        return self._get(BaseModelOut, "/bases/{n}", project, n=name)

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
        model: str,
        dataset: str,
        split: str = "test",
        group_field: str | None = None,
        options: dict[str, Any] | None = None,
        project: str | None = None,
    ) -> JobOut:
        """Queue an evaluation report of ``model`` over a labelled ``dataset``."""
        body = {
            "kind": "evaluate",
            "model": model,
            "dataset": dataset,
            "split": split,
            "group_field": group_field,
            "options": options or {},
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
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id, project=project)
            if progress is not None:
                progress(job)
            if job.finished:
                return _outcome(job)
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout} s")
            time.sleep(poll)


def _outcome(job: JobOut) -> JobOut:
    if job.status == "failed":
        raise JobFailed(f"job {job.id} failed: {job.error}", job_id=job.id)
    return job


class _Models(_Resource):
    """``client.models``: list, versions, get, aliases, card, delete-version, batch predict."""

    def list(self, *, project: str | None = None) -> list[RegisteredModelOut]:
        """Registered models."""
        return self._get(list[RegisteredModelOut], "/models", project)

    def versions(self, name: str, *, project: str | None = None) -> builtins.list[ModelVersionOut]:
        """Every version of ``name``."""
        return self._get(list[ModelVersionOut], "/models/{n}/versions", project, n=name)

    def get(self, ref: str, *, project: str | None = None) -> ModelVersionOut:
        """``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS``."""
        name, _, selector = ref.partition("@")
        return self._get(
            ModelVersionOut, "/models/{n}/versions/{s}", project, n=name, s=selector or "latest"
        )

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """Point ``alias`` at ``version``."""
        return self._send(
            "PUT",
            ModelVersionOut,
            "/models/{n}/aliases/{a}",
            project,
            {"version": version},
            n=name,
            a=alias,
        )

    def delete_alias(self, name: str, alias: str, *, project: str | None = None) -> None:
        """Remove an alias."""
        self._c.request("DELETE", self._c._p("/models/{n}/aliases/{a}", project, n=name, a=alias))

    def card(self, ref: str, *, project: str | None = None) -> str:
        """The model card (Markdown)."""
        name, _, selector = ref.partition("@")
        url = self._c._p("/models/{n}/versions/{s}/card", project, n=name, s=selector or "latest")
        return str(self._c.request("GET", url))

    def verify(self, ref: str, *, project: str | None = None) -> BundleVerifyOut:
        """Check a version's signature and files on the server (the bundle is not sent)."""
        name, _, selector = ref.partition("@")
        return self._get(
            BundleVerifyOut,
            "/models/{n}/versions/{s}/verify",
            project,
            n=name,
            s=selector or "latest",
        )

    def import_(
        self,
        path: str,
        *,
        name: str,
        alias: str | None = None,
        project: str | None = None,
    ) -> ModelVersionOut:
        """Register a Hugging Face classifier directory, a path in the server's import
        dirs (``AIMASS_IMPORT_DIRS``), as a version of model ``name``."""
        body = {"path": path, "name": name, "alias": alias}
        return self._send("POST", ModelVersionOut, "/models", project, body)

    def export(
        self, ref: str, destination: str | Path, *, project: str | None = None
    ) -> builtins.list[str]:
        """Download a version's bundle into ``destination`` (new or empty); the file names.

        The server streams the decrypted bundle as a tar archive (it needs
        ``models:write`` on the model); it is unpacked safely (plain top-level files
        only) and every file is checked against the SHA-256 in ``aimass.json``
        before it lands in ``destination``. The result is a Hugging Face model
        directory, as ``aimass models export`` writes locally.
        """
        name, _, selector = ref.partition("@")
        url = self._c._p("/models/{n}/versions/{s}/export", project, n=name, s=selector or "latest")
        return download_bundle(self._c._http, url, Path(destination), server=self._c.url)

    def attachments(
        self, ref: str, *, kind: str | None = None, project: str | None = None
    ) -> builtins.list[AttachmentOut]:
        """Reports attached to a version (``kind``: ``evaluation``, ``privacy-audit``)."""
        name, _, selector = ref.partition("@")
        return self._get(
            list[AttachmentOut],
            "/models/{n}/versions/{s}/attachments",
            project,
            n=name,
            s=selector or "latest",
            params={"kind": kind},
        )

    def report(
        self, ref: str, report: str, *, fmt: str = "html", project: str | None = None
    ) -> bytes:
        """An evaluation report's ``report.html`` (or ``report.json``) as bytes."""
        name, _, selector = ref.partition("@")
        url = self._c._p(
            "/models/{n}/versions/{s}/reports/{r}/report.{f}",
            project,
            n=name,
            s=selector or "latest",
            r=report,
            f=fmt,
        )
        return self._c.request_bytes("GET", url)

    def delete_version(
        self, name: str, version: int, *, project: str | None = None
    ) -> ModelVersionOut:
        """Delete a version no alias points at."""
        return self._send(
            "DELETE", ModelVersionOut, "/models/{n}/versions/{v}", project, None, n=name, v=version
        )


class _Keys(_Resource):
    """``client.keys``: create (the key is returned once), list, get, update, revoke."""

    def create(
        self,
        name: str,
        *,
        scopes: Sequence[str],
        expires_in_days: float | None = None,
        predict_budget: int | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str] | None = None,
        project: str | None = None,
    ) -> KeyCreated:
        """A new key in the project.

        ``predict_budget``: inputs per UTC day (``None``: unlimited); ``output_policy``:
        ``labels``, ``top_k=N``, ``round=D`` or a comma-joined mix (``None``: full
        output); ``limits``: per-key limits such as ``{"max_streams_per_key": 2}``.
        """
        body = {
            "name": name,
            "scopes": list(scopes),
            "expires_in_days": expires_in_days,
            "predict_budget": predict_budget,
            "output_policy": output_policy,
            "limits": dict(limits or {}),
        }
        return self._send("POST", KeyCreated, "/keys", project, body)

    def list(self, *, project: str | None = None) -> list[ApiKeyOut]:
        """The project's keys."""
        return self._get(list[ApiKeyOut], "/keys", project)

    def get(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """One key's record: scopes, expiry, budget, output policy, limits."""
        return self._get(ApiKeyOut, "/keys/{k}", project, k=key_id)

    def update(
        self,
        key_id: str,
        *,
        predict_budget: int | str | None = None,
        output_policy: str | None = None,
        limits: Mapping[str, int | str | None] | None = None,
        project: str | None = None,
    ) -> ApiKeyOut:
        """Change what is given, leave the rest: ``predict_budget="unlimited"`` removes
        the budget, ``output_policy="full"`` the policy, a limit set to ``None`` that limit."""
        body: dict[str, Any] = {}
        if predict_budget is not None:
            unlimited = str(predict_budget).strip().lower() in ("unlimited", "none")
            body["predict_budget"] = None if unlimited else predict_budget
        if output_policy is not None:
            full = output_policy.strip().lower() in ("full", "none", "")
            body["output_policy"] = None if full else output_policy
        if limits:
            body["limits"] = dict(limits)
        return self._send("PATCH", ApiKeyOut, "/keys/{k}", project, body, k=key_id)

    def revoke(self, key_id: str, *, project: str | None = None) -> ApiKeyOut:
        """Revoke a key."""
        return self._send("DELETE", ApiKeyOut, "/keys/{k}", project, None, k=key_id)


class _Projects(_Resource):
    """``client.projects``: list and create."""

    def list(self) -> list[ProjectOut]:
        """Projects the key may see."""
        return _parse(list[ProjectOut], self._c.request("GET", "/v1/projects"))

    def create(self, name: str, *, description: str = "") -> ProjectOut:
        """Create a project (all-projects admin key)."""
        body = {"name": name, "description": description}
        return _parse(ProjectOut, self._c.request("POST", "/v1/projects", json=body))

    def get(self, name: str) -> ProjectOut:
        """One project, with the limits stored with it."""
        return _parse(ProjectOut, self._c.request("GET", path("/v1/projects/{p}", p=name)))

    def set_limits(self, name: str, limits: Mapping[str, int | str | None]) -> ProjectOut:
        """Set limits stored with a project (``None`` removes one; all-projects admin key)."""
        url = path("/v1/projects/{p}", p=name)
        return _parse(ProjectOut, self._c.request("PATCH", url, json={"limits": dict(limits)}))


class _Audit(_Resource):
    """``client.audit``: list and verify (all-projects admin key)."""

    def list(
        self,
        *,
        project: str | None = None,
        action: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[AuditEventOut]:
        """Newest events first."""
        params = {"project": project, "action": action, "before": before, "limit": limit}
        return _parse(list[AuditEventOut], self._c.request("GET", "/v1/audit", params=params))

    def verify(self) -> AuditVerifyOut:
        """Recompute the chain on the server."""
        return _parse(AuditVerifyOut, self._c.request("GET", "/v1/audit:verify"))


class AsyncClient:
    """The asynchronous client: the same calls, awaited.

    Covers what applications call at high concurrency: ``predict``, ``generate``
    and ``generate_stream`` (an async iterator), jobs
    (submit, get, wait, cancel, job_results) and ``whoami``. Args as :class:`Client`.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        project: str = "default",
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str | Path | ssl.SSLContext | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.project = project
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=headers(api_key),
            timeout=timeout,
            transport=transport,
            verify=tls_verify(verify),
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def request(
        self, method: str, url: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """One API call; returns the decoded body or raises the server's error."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, url, json=json, params=query)
        except httpx.TransportError as exc:
            raise translate_transport_error(exc, self.url) from exc
        raise_for_error(response)
        return json_or_text(response)

    def _p(self, template: str, project: str | None, **params: Any) -> str:
        return path("/v1/projects/{project}" + template, project=project or self.project, **params)

    async def whoami(self) -> WhoAmI:
        """The caller as the server sees it."""
        return WhoAmI.model_validate(await self.request("GET", "/v1/whoami"))

    async def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Predictions for ``inputs`` (``explain`` as in :meth:`Client.predict`)."""
        url = self._p("/models/{ref}:predict", project, ref=ref)
        payload: dict[str, Any] = {"inputs": list(inputs)}
        if explain:
            payload["explain"] = explain
        body = await self.request("POST", url, json=payload)
        return PredictResponse.model_validate(body).predictions

    async def generate(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Generated text, as :meth:`Client.generate`."""
        url = self._p("/models/{ref}:generate", project, ref=ref)
        body = await self.request("POST", url, json=_generate_body(prompt, options, stream=False))
        return GenerateResponse.model_validate(body).model_dump()

    async def generate_stream(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Text pieces as they are decoded, then the final event (as ``Client.generate_stream``)."""
        url = self._p("/models/{ref}:generate", project, ref=ref)
        body = _generate_body(prompt, options, stream=True)
        try:
            async with self._http.stream("POST", url, json=body, headers=SSE_HEADERS) as response:
                if not response.is_success:
                    await response.aread()
                    raise_for_error(response)
                events = ServerSentEvents(self.url)
                async for line in response.aiter_lines():
                    event = events.feed(line)
                    if event is not None:
                        yield event
                    if events.done:
                        return
                events.end()
        except httpx.TransportError as exc:
            raise translate_transport_error(exc, self.url) from exc

    async def submit_training(self, *, project: str | None = None, **spec: Any) -> JobOut:
        """Queue a training job (same fields as ``Client.jobs.submit_training``)."""
        body = {"kind": "train", "config": {}, **spec}
        return JobOut.model_validate(
            await self.request("POST", self._p("/jobs", project), json=body)
        )

    async def submit_batch_predict(self, *, project: str | None = None, **spec: Any) -> JobOut:
        """Queue a batch prediction (same fields as ``Client.jobs.submit_batch_predict``)."""
        body = {"kind": "batch-predict", **spec}
        return JobOut.model_validate(
            await self.request("POST", self._p("/jobs", project), json=body)
        )

    async def job(self, job_id: str, *, project: str | None = None) -> JobOut:
        """A job with live progress and metrics."""
        return JobOut.model_validate(
            await self.request("GET", self._p("/jobs/{j}", project, j=job_id))
        )

    async def cancel(self, job_id: str, *, project: str | None = None) -> JobOut:
        """Cancel a job."""
        return JobOut.model_validate(
            await self.request("POST", self._p("/jobs/{j}:cancel", project, j=job_id))
        )

    async def job_results(
        self,
        job_id: str,
        destination: str | Path = ".",
        *,
        fmt: str = "parquet",
        project: str | None = None,
    ) -> Path:
        """Download a batch prediction's results (as ``Client.jobs.results``)."""
        url = self._p("/jobs/{j}/results", project, j=job_id)
        return await download_async(
            self._http, url, Path(destination), params={"format": fmt}, server=self.url
        )

    async def wait(
        self,
        job_id: str,
        *,
        progress: Callable[[JobOut], None] | None = None,
        poll: float = 1.0,
        project: str | None = None,
    ) -> JobOut:
        """Poll until the job finishes; raise JobFailed if it failed."""
        while True:
            job = await self.job(job_id, project=project)
            if progress is not None:
                progress(job)
            if job.finished:
                return _outcome(job)
            await asyncio.sleep(poll)
