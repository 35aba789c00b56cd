"""One Ray Serve replica of a model version (``serve_with=ray``; see :mod:`.ray_serve`).

The replica runs in a Ray worker, perhaps on another machine. It is given strings
only: its name, the server's settings as JSON (secret values left out: Ray keeps
a deployment's arguments in its control store, so a replica reads
``AIMASS_MASTER_KEY`` from its own environment), the bundle's ``artifacts:`` URI,
and the ``module:function`` name of the function that opens the artifact store
(the server's :func:`~aimass.workspace.secrets.open_artifact_store`). It resolves
and verifies the bundle itself, loads the same predictor as a server serving in
process, and batches the calls it gets with its own
:class:`~aimass.serving.batching.MicroBatcher`. Texts, results and events cross
back as JSON, errors as their wire form (``{"error": {...}}``), never pickled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aimass.cluster import import_opener, settings_from_json
from aimass.errors import AimassError, Internal
from aimass.serving.batching import BatchPolicy, InProcessBackend, MicroBatcher
from aimass.settings import Settings

__all__ = ["ModelReplica", "OpenStore"]

log = logging.getLogger("aimass.serving")


class OpenStore(Protocol):
    """``settings -> artifact store``: how a replica finds the bundle."""

    def __call__(self, settings: Settings) -> Any:
        """An object whose ``resolve(uri)`` is a readable, verified bundle directory."""


class ModelReplica:
    """One Ray Serve replica of a model version: its bundle loaded, its own micro-batcher.

    Args:
        name: ``project/model@version`` for logs, errors and batch records.
        settings_json: The server's settings (:func:`settings_to_json`).
        uri: The bundle's ``artifacts:`` URI, resolved and verified here.
        open_store: ``module:function`` that opens the artifact store the settings name
            (:func:`opener_name`).
        backend: ``torch``, ``onnx`` or ``onnx-int8``.
        graphs: The ``artifacts:`` URI of the version's ONNX graphs (empty for torch),
            resolved and checked here like the bundle.
    """

    def __init__(
        self,
        name: str,
        settings_json: str,
        uri: str,
        open_store: str,
        backend: str = "torch",
        graphs: str = "",
    ) -> None:
        from aimass.serving.predictor import load_predictor

        settings = settings_from_json(settings_json)
        threads = settings.serve_runner_threads or 1
        _set_threads(threads)
        store = import_opener(open_store)(settings)
        predictor = load_predictor(
            store.resolve(uri),
            device=settings.device,
            backend=backend,
            graph=store.resolve(graphs) if graphs else None,
            threads=threads,
        )
        predictor.warm_up()
        self._backend = InProcessBackend(lambda: predictor, name=name)
        self._batcher = MicroBatcher(
            name,
            self._backend.run,
            lengths=self._backend.lengths,
            policy=BatchPolicy.from_settings(settings),
        )
        self._steps = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="aimass-generate")
        self._id = _replica_id()

    async def predict(self, texts_json: str) -> str:
        """``{"results": [...], "replica": ID}`` for a JSON list of texts (micro-batched here)."""
        try:
            results = await self._batcher.predict(json.loads(texts_json))
        except Exception as exc:
            return _error_reply(exc, "prediction")
        return json.dumps({"results": results, "replica": self._id})

    async def explain(self, call_json: str) -> str:
        """``{"results": [...]}`` with explanations, for ``{"texts", "results", "method"}``."""
        call = json.loads(call_json)
        try:
            results = await asyncio.to_thread(
                self._backend.explain, call["texts"], call["results"], call["method"]
            )
        except Exception as exc:
            return _error_reply(exc, "explanation")
        return json.dumps({"results": results, "replica": self._id})

    async def generate(self, prompt: str, options_json: str) -> AsyncIterator[str]:
        """Generation events as JSON, one per decoded piece; the last one has ``done``.

        Each step runs in a thread. When the caller cancels, Ray cancels this
        coroutine between two awaits; the generator is closed (decoding stops) as
        soon as the step in flight, if any, has finished.
        """
        events = self._backend.generate_stream(prompt, json.loads(options_json))
        step: concurrent.futures.Future[dict[str, Any] | None] | None = None
        try:
            while True:
                step = self._steps.submit(next, events, None)
                try:
                    event = await asyncio.wrap_future(step)
                except Exception as exc:
                    yield _error_reply(exc, "generation")
                    return
                if event is None:
                    return
                yield json.dumps({"event": event})
        finally:
            close = getattr(events, "close", None)  # a generator: closing it stops decoding
            if close is not None:
                if step is None or step.done():
                    close()
                else:  # a generator cannot be closed while it runs in another thread
                    step.add_done_callback(lambda _: close())


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _replica_id() -> str:
    from ray import serve

    return str(serve.get_replica_context().replica_id.unique_id)


def _error_reply(exc: Exception, what: str) -> str:
    if not isinstance(exc, AimassError):
        log.exception("model replica failed a %s", what)
        exc = Internal(f"{what} failed in a Ray Serve replica: {type(exc).__name__}")
    return json.dumps({"error": exc.to_dict()})
