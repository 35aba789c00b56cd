"""``ws.serving``: loaded predictors (an LRU cache by bundle digest) and the limits of one
predict, explain or generate call."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.entities import (
    ModelVersion,
)
from aimass.errors import (
    FailedPrecondition,
    InvalidArgument,
    PayloadTooLarge,
    ResourceExhausted,
)
from aimass.store import DEFAULT_PROJECT
from aimass.texts import check_unicode

if TYPE_CHECKING:
    from aimass.serving.cache import PredictorCache
    from aimass.serving.predictor import Predictor
    from aimass.workspace import Workspace
from aimass.workspace._service import Service

__all__ = ["ServingService"]


class ServingService(Service):
    """``ws.serving``: predict, explain and generate in this process."""

    def __init__(self, ws: Workspace) -> None:
        super().__init__(ws)
        self._cache: PredictorCache | None = None

    def clear(self) -> None:
        """Release every loaded predictor."""
        if self._cache is not None:
            self._cache.clear()

    def load(self, ref: str, *, project: str = DEFAULT_PROJECT) -> Predictor:
        """A predictor for a model version (cached by bundle digest)."""
        return self.load_version(self._ws.models.get(ref, project=project))

    def load_version(self, version: ModelVersion) -> Predictor:
        """The predictor of a resolved version, from the LRU cache (loaded when missing)."""
        from aimass.serving.cache import PredictorCache
        from aimass.serving.predictor import load_predictor

        if self._cache is None:
            self._cache = PredictorCache(self.settings.model_cache_size)
        directory = self.artifacts.resolve(version.uri)
        backend, graph = self.plan(version)

        def load() -> Predictor:
            self.check_license(version)  # once per load: the setting is fixed per process
            return load_predictor(
                directory,
                device=self.settings.device,
                backend=backend,
                graph=graph,
                threads=self.settings.num_threads or None,
            )

        return self._cache.get(f"{version.digest}:{backend}", load)

    def check_license(self, version: ModelVersion) -> None:
        """Under ``commercial_use_only``, refuse to serve a version made from weights that
        are not licensed for commercial use (its base's, or a teacher's): serving it is
        the use their terms forbid. Evaluation jobs and exports are not refused.

        Raises:
            FailedPrecondition: The version rests on such weights, or on weights no
                longer registered (their license cannot be checked).
        """
        if not self.settings.commercial_use_only:
            return
        from aimass.workspace.licenses import restriction

        found = restriction(self.store, version.project, model=version)
        if found is None:
            return
        raise FailedPrecondition(
            f"{version.ref} cannot be served: {found.reason}, and this deployment serves "
            "only models made from commercially usable weights "
            "(AIMASS_COMMERCIAL_USE_ONLY=true): train a replacement from a commercially "
            "usable base ('aimass train' without --base takes the recommended one; each "
            "base's license: aimass bases show NAME)",
            model=version.ref,
        )

    def plan(self, version: ModelVersion) -> tuple[str, Path | None]:
        """The backend that serves ``version`` (``AIMASS_SERVE_BACKEND`` resolved against
        its parity record) and the directory of its ONNX graphs (``None`` for torch)."""
        backend, graphs = self.plan_uri(version)
        return backend, None if graphs is None else self.artifacts.resolve(graphs)

    def plan_uri(self, version: ModelVersion) -> tuple[str, str | None]:
        """:meth:`plan` with the graphs' ``artifacts:`` URI, for a process that resolves
        it from its own artifact store (a Ray Serve replica)."""
        from aimass.serving.onnx import ONNX_TASKS, choose_backend

        if version.task not in ONNX_TASKS:
            return "torch", None
        parity = version.metrics.get("serving")
        backend = choose_backend(self.settings.serve_backend, parity)
        if backend == "torch" or not parity:
            return "torch", None
        return backend, str(parity["graphs"])

    def check_inputs(self, texts: Sequence[str]) -> list[str]:
        """Predict inputs within the limits: count, non-empty valid strings, length, total."""
        from aimass.serving.predictor import check_texts

        if len(texts) > self.settings.max_predict_batch:
            raise ResourceExhausted(
                f"{len(texts)} inputs in one call; the limit is {self.settings.max_predict_batch} "
                "(AIMASS_MAX_PREDICT_BATCH)"
            )
        for i, text in enumerate(texts):
            if isinstance(text, str) and len(text) > self.settings.max_text_chars:
                raise InvalidArgument(
                    f"input {i} has {len(text):,} characters; the limit is "
                    f"{self.settings.max_text_chars:,} (AIMASS_MAX_TEXT_CHARS)",
                    index=i,
                )
        total = sum(len(t) for t in texts if isinstance(t, str))
        if total > self.settings.max_request_chars:
            # Checked before anything is tokenized: tokenizing is the expensive part.
            raise PayloadTooLarge(
                f"the {len(texts)} inputs hold {total:,} characters together; the limit per "
                f"call is {self.settings.max_request_chars:,} (AIMASS_MAX_REQUEST_CHARS): "
                "split them over several calls",
                limit=self.settings.max_request_chars,
            )
        return check_texts(texts)

    def check_explain_batch(self, texts: Sequence[str]) -> None:
        """Explanations cost up to ~50 passes each: at most ``max_explain_batch`` per call."""
        if len(texts) > self.settings.max_explain_batch:
            raise ResourceExhausted(
                f"{len(texts)} inputs to explain in one call; the limit is "
                f"{self.settings.max_explain_batch} (AIMASS_MAX_EXPLAIN_BATCH)"
            )

    def predict(
        self,
        ref: str,
        texts: Sequence[str],
        *,
        project: str = DEFAULT_PROJECT,
        explain: str | bool | None = None,
    ) -> list[dict[str, Any]]:
        """Predict ``texts`` with a model version (limits from the settings).

        With ``explain`` (``True`` or a method: ``integrated-gradients``,
        ``attention``, ``occlusion``) every result carries an ``explanation``.
        """
        from aimass.serving.predictor import explainer_name

        inputs = self.check_inputs(texts)
        predictor = self.load(ref, project=project)
        if explainer_name(explain) is None:
            return predictor.predict(inputs)
        self.check_explain_batch(inputs)
        return predictor.with_explanations(inputs, predictor.predict(inputs), explain)

    def explain(
        self,
        ref: str,
        texts: Sequence[str],
        *,
        method: str = "integrated-gradients",
        label: str | None = None,
        project: str = DEFAULT_PROJECT,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Explain the predictions of a model version for ``texts`` (see :mod:`aimass.explain`)."""
        inputs = self.check_inputs(texts)
        self.check_explain_batch(inputs)
        predictor = self.load(ref, project=project)
        return predictor.explain(inputs, method=method, label=label, **options)

    def generate(
        self, ref: str, prompt: str, *, project: str = DEFAULT_PROJECT, **options: Any
    ) -> dict[str, Any]:
        """Generate text from ``prompt`` with a causal-LM or seq2seq model version.

        Options: ``max_new_tokens``, ``temperature``, ``top_p``, ``top_k``, ``stop``,
        ``seed`` (see :meth:`~aimass.serving.generation.GenerationPredictor.generate_stream`).
        """
        self.check_generation(prompt, options)
        return self.generator(self._ws.models.get(ref, project=project)).generate(prompt, **options)

    def generate_stream(
        self, ref: str, prompt: str, *, project: str = DEFAULT_PROJECT, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`generate`, yielding text pieces as they are decoded, then a final event."""
        self.check_generation(prompt, options)
        predictor = self.generator(self._ws.models.get(ref, project=project))
        return predictor.generate_stream(prompt, **options)

    def check_generation(self, prompt: str, options: Mapping[str, Any]) -> None:
        """The limits of one generate call: prompt length and ``max_new_tokens``."""
        if isinstance(prompt, str) and len(prompt) > self.settings.max_text_chars:
            raise InvalidArgument(
                f"the prompt has {len(prompt):,} characters; the limit is "
                f"{self.settings.max_text_chars:,} (AIMASS_MAX_TEXT_CHARS)",
                field="prompt",
            )
        if isinstance(prompt, str):
            check_unicode(prompt, what="the prompt", field="prompt")
        wanted = options.get("max_new_tokens")
        if isinstance(wanted, int) and wanted > self.settings.max_new_tokens:
            raise InvalidArgument(
                f"max_new_tokens={wanted:,} is over this deployment's limit of "
                f"{self.settings.max_new_tokens:,} (AIMASS_MAX_NEW_TOKENS); ask for fewer",
                field="max_new_tokens",
                limit=self.settings.max_new_tokens,
            )

    def generator(self, version: ModelVersion) -> Any:
        """The loaded predictor of a generative version (UnsupportedModel for any other)."""
        from aimass.serving.wire import require_generation

        return require_generation(self.load_version(version), version.ref)
