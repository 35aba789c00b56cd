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

import ssl
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from aimass.client._async import (
    AsyncAudit,
    AsyncJobs,
    AsyncKeys,
    AsyncModels,
    AsyncProjects,
)
from aimass.client._async_data import AsyncBases, AsyncDatasets
from aimass.client._pipelines import AsyncPipelines, _Pipelines
from aimass.client._registry import _Audit, _Keys, _Models, _Projects
from aimass.client._resources import _Bases, _Datasets, _Jobs
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
from aimass.client._wire import DEFAULT_TIMEOUT, generate_body, predict_body
from aimass.schemas import (
    AboutOut,
    GarbageReportOut,
    GenerateResponse,
    JobOut,
    PredictResponse,
    WhoAmI,
)

__all__ = ["AsyncClient", "Client"]


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
        self.pipelines = _Pipelines(self)
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

    def about(self) -> AboutOut:
        """The server: its aimass version and the policies a client adapts to
        (``commercial_use_only``: it trains and serves only commercially usable weights)."""
        return AboutOut.model_validate(self.request("GET", "/v1/about"))

    def collect_garbage(
        self, *, older_than: float = 3600.0, dry_run: bool = False
    ) -> GarbageReportOut:
        """Remove the artifacts nothing refers to on the server's home (``aimass gc``),
        written more than ``older_than`` seconds ago (at least 60 through a server)."""
        body = {"older_than_seconds": older_than, "dry_run": dry_run}
        return GarbageReportOut.model_validate(self.request("POST", "/v1/artifacts:gc", json=body))

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
        body = predict_body(inputs, explain)
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
        body = self.request("POST", url, json=generate_body(prompt, options, stream=False))
        return GenerateResponse.model_validate(body).model_dump()

    def generate_stream(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield ``{"text": piece}`` as the server decodes it, then the final
        ``{"done": True, "text", "finish_reason", "usage", "timing"}`` (server-sent events).

        Closing the iterator early closes the connection, which stops the generation.
        """
        url = self._p("/models/{ref}:generate", project, ref=ref)
        body = generate_body(prompt, options, stream=True)
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


class AsyncClient:
    """The asynchronous client: every call of :class:`Client`, awaited.

    The same namespaces (``datasets``, ``bases``, ``models``, ``pipelines``, ``jobs``, ``keys``,
    ``projects``, ``audit``), the same method names, arguments and options (the
    operations contract, :mod:`aimass.operations`); ``generate_stream`` is an async
    iterator. Args as :class:`Client`.
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
        self.datasets = AsyncDatasets(self)
        self.bases = AsyncBases(self)
        self.jobs = AsyncJobs(self)
        self.models = AsyncModels(self)
        self.pipelines = AsyncPipelines(self)
        self.keys = AsyncKeys(self)
        self.projects = AsyncProjects(self)
        self.audit = AsyncAudit(self)

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
        return json_or_text(await self._call(method, url, json=json, params=params))

    async def request_bytes(self, method: str, url: str) -> bytes:
        """One API call whose body is a file (a report): the raw bytes."""
        return (await self._call(method, url)).content

    async def _call(
        self, method: str, url: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(method, url, json=json, params=query)
        except httpx.TransportError as exc:
            raise translate_transport_error(exc, self.url) from exc
        raise_for_error(response)
        return response

    def _p(self, template: str, project: str | None, **params: Any) -> str:
        return path("/v1/projects/{project}" + template, project=project or self.project, **params)

    async def whoami(self) -> WhoAmI:
        """The caller as the server sees it."""
        return WhoAmI.model_validate(await self.request("GET", "/v1/whoami"))

    async def about(self) -> AboutOut:
        """As ``Client.about``."""
        return AboutOut.model_validate(await self.request("GET", "/v1/about"))

    async def collect_garbage(
        self, *, older_than: float = 3600.0, dry_run: bool = False
    ) -> GarbageReportOut:
        """As ``Client.collect_garbage``."""
        body = {"older_than_seconds": older_than, "dry_run": dry_run}
        return GarbageReportOut.model_validate(
            await self.request("POST", "/v1/artifacts:gc", json=body)
        )

    async def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Predictions for ``inputs`` (``explain`` as in :meth:`Client.predict`)."""
        full = await self.predict_full(ref, inputs, explain=explain, project=project)
        return full.predictions

    async def predict_full(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> PredictResponse:
        """Predictions plus the version that made them."""
        url = self._p("/models/{ref}:predict", project, ref=ref)
        body = predict_body(inputs, explain)
        return PredictResponse.model_validate(await self.request("POST", url, json=body))

    async def generate(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Generated text, as :meth:`Client.generate`."""
        url = self._p("/models/{ref}:generate", project, ref=ref)
        body = await self.request("POST", url, json=generate_body(prompt, options, stream=False))
        return GenerateResponse.model_validate(body).model_dump()

    async def generate_stream(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Text pieces as they are decoded, then the final event (as ``Client.generate_stream``)."""
        url = self._p("/models/{ref}:generate", project, ref=ref)
        body = generate_body(prompt, options, stream=True)
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

    # The flat job calls of the first AsyncClient, before it had namespaces: kept so
    # code written against them keeps working, with a warning naming the new call.

    async def submit_training(self, *, project: str | None = None, **spec: Any) -> JobOut:
        """Deprecated: ``await client.jobs.submit_training(...)``."""
        _deprecated("submit_training", "jobs.submit_training")
        return await self.jobs.submit_training(project=project, **spec)

    async def submit_batch_predict(self, *, project: str | None = None, **spec: Any) -> JobOut:
        """Deprecated: ``await client.jobs.submit_batch_predict(...)``."""
        _deprecated("submit_batch_predict", "jobs.submit_batch_predict")
        return await self.jobs.submit_batch_predict(project=project, **spec)

    async def job(self, job_id: str, *, project: str | None = None) -> JobOut:
        """Deprecated: ``await client.jobs.get(job_id)``."""
        _deprecated("job", "jobs.get")
        return await self.jobs.get(job_id, project=project)

    async def cancel(self, job_id: str, *, project: str | None = None) -> JobOut:
        """Deprecated: ``await client.jobs.cancel(job_id)``."""
        _deprecated("cancel", "jobs.cancel")
        return await self.jobs.cancel(job_id, project=project)

    async def job_results(
        self,
        job_id: str,
        destination: str | Path = ".",
        *,
        fmt: str = "parquet",
        project: str | None = None,
    ) -> Path:
        """Deprecated: ``await client.jobs.results(job_id, destination, fmt=...)``."""
        _deprecated("job_results", "jobs.results")
        return await self.jobs.results(job_id, destination, fmt=fmt, project=project)

    async def wait(
        self,
        job_id: str,
        *,
        progress: Callable[[JobOut], None] | None = None,
        poll: float = 1.0,
        project: str | None = None,
    ) -> JobOut:
        """Deprecated: ``await client.jobs.wait(job_id)``."""
        _deprecated("wait", "jobs.wait")
        return await self.jobs.wait(job_id, progress=progress, poll=poll, project=project)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"AsyncClient.{old} is deprecated and will be removed; use AsyncClient.{new}, "
        "the same call as on Client",
        DeprecationWarning,
        stacklevel=3,
    )


if TYPE_CHECKING:
    from aimass.operations import Operations

    def _keeps_the_contract(client: Client) -> Operations:
        # mypy checks the types here; tests/test_operations_contract.py the names.
        return client
