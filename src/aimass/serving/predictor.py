"""Predictors: a verified bundle loaded for inference, independent of HTTP.

``load_predictor(bundle_dir)`` verifies the bundle, picks the predictor class
registered for its task and returns an object with ``predict(texts)``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from aimass.artifacts.bundle import Manifest, verify_bundle
from aimass.errors import InvalidArgument, UnsupportedModel
from aimass.models.device import resolve_device
from aimass.texts import check_unicode

if TYPE_CHECKING:
    import numpy as np

    from aimass.explain.base import ExplainTarget, Tagger

__all__ = [
    "DEFAULT_EXPLAINER",
    "LazyModel",
    "LengthCounter",
    "Predictor",
    "check_texts",
    "explainer_name",
    "load_predictor",
    "predictor_class",
    "register_predictor",
    "tokenizer_length_counter",
]

DEFAULT_EXPLAINER = "integrated-gradients"

LengthCounter = Callable[[Sequence[str]], list[int]]


def _word_counts(texts: Sequence[str]) -> list[int]:
    return [len(text.split()) + 2 for text in texts]


M = TypeVar("M")


class LazyModel(Generic[M]):
    """A predictor's PyTorch model: loaded by ``_load``, or built on first use by a
    backend whose ``_load`` loads something else (an ONNX Runtime session predicts
    without it; explanations need its gradients and attentions, NER evaluation its
    own encoding).

    The predictor calls :meth:`_init_model` at the end of its ``__init__`` and
    implements :meth:`_build_model`.
    """

    def _init_model(self) -> None:
        self._model_lock = threading.Lock()
        self._model: M | None = None
        self._load()

    def _build_model(self) -> M:
        raise NotImplementedError

    def _load(self) -> None:
        """Load what ``forward`` runs (the PyTorch model here)."""
        self._model = self._build_model()

    @property
    def model(self) -> M:
        """The PyTorch model, built once (under a lock) if ``_load`` did not."""
        with self._model_lock:
            if self._model is None:
                self._model = self._build_model()
            return self._model

    @model.setter
    def model(self, model: M) -> None:
        with self._model_lock:
            self._model = model


def tokenizer_length_counter(directory: Path, max_length: int | None) -> LengthCounter:
    """Exact token counts (special tokens included) from the bundle's tokenizer, cut at
    ``max_length`` (None: the whole text, for predictors that read long texts in windows).

    The micro-batcher calls it on its event loop for every request. A private
    copy of the Rust tokenizer (fixed truncation, never reconfigured) needs no
    lock, so measuring lengths never waits for a batch being tokenised.
    """
    from tokenizers import Tokenizer

    from aimass.models.hf import load_tokenizer

    backend = load_tokenizer(directory).backend_tokenizer
    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    if max_length is not None:
        counter.enable_truncation(max_length)
    counter.no_padding()
    return lambda texts: [len(e.ids) for e in counter.encode_batch(list(texts))]


def explainer_name(explain: str | bool | None) -> str | None:
    """``explain=`` as callers give it (``True``, a method name, ``None``) → a method or None."""
    if explain is None or explain is False:
        return None
    if explain is True:
        return DEFAULT_EXPLAINER
    if not isinstance(explain, str) or not explain:
        raise InvalidArgument(
            f"explain must be true or a method name such as {DEFAULT_EXPLAINER!r}, got {explain!r}"
        )
    return explain


class Predictor(ABC):
    """A model ready to predict. Thread-safe for concurrent ``predict`` calls."""

    tasks: ClassVar[tuple[str, ...]] = ()
    # What runs the forward pass: ``torch``, or an ONNX Runtime graph (``onnx``, ``onnx-int8``).
    backend: ClassVar[str] = "torch"

    def __init__(self, directory: Path, manifest: Manifest, device: Any) -> None:
        self.directory = directory
        self.manifest = manifest
        self.device = device
        self._lengths: LengthCounter | None = None

    @property
    def task(self) -> str:
        """The task the model was trained for."""
        return str(self.manifest.task)

    @property
    def digest(self) -> str:
        """The bundle digest (identity of the weights and config)."""
        return self.manifest.digest

    @abstractmethod
    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[dict[str, Any]]:
        """One result per input text, in input order."""

    def warm_up(self) -> None:
        """One small call through the model, so the first caller does not pay for the
        lazy initialisation (a runner does this before it says it is ready)."""
        self.predict(["warm-up"])

    @classmethod
    def length_counter(cls, directory: Path, manifest: Manifest) -> LengthCounter:
        """``texts -> token counts`` for this bundle, without loading its weights.

        The micro-batcher buckets inputs by it, in the server process, while the
        model itself may run in a runner process. The default counts
        whitespace-separated words plus two special tokens; predictors with a
        tokenizer override it with the exact count.
        """
        return _word_counts

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens each input becomes (see :meth:`length_counter`)."""
        if self._lengths is None:
            self._lengths = self.length_counter(self.directory, self.manifest)
        return self._lengths(texts)

    def explain_target(self) -> ExplainTarget:
        """The model as explainers see it; predictors that can be explained override this."""
        raise UnsupportedModel(
            f"{self.task!r} models cannot be explained yet: their predictor exposes no scores "
            "to attribute",
            task=self.task,
        )

    def explain(
        self,
        texts: Sequence[str],
        *,
        method: str = DEFAULT_EXPLAINER,
        label: str | None = None,
        **options: Any,
    ) -> list[dict[str, Any]]:
        """Explain the prediction for each text (see :mod:`aimass.explain`).

        Args:
            texts: Inputs, as for :meth:`predict`.
            method: ``integrated-gradients``, ``attention`` or ``occlusion``.
            label: Class to explain; default the predicted one. For a NER tagger, the
                entity type to explain; default every entity found.
            **options: Method options (``n_steps`` for integrated gradients).

        Returns:
            One :class:`~aimass.explain.Explanation` (as a dict) per text.
        """
        from aimass.explain import get_explainer

        texts = check_texts(texts)
        explainer = get_explainer(method)
        explainer.check_task(self.task)
        target = self.explain_target()
        explainer.check(target)
        return [e.to_dict() for e in explainer.explain(target, texts, label=label, **options)]

    def with_explanations(
        self, texts: Sequence[str], results: list[dict[str, Any]], explain: str | bool | None
    ) -> list[dict[str, Any]]:
        """``results`` with an ``explanation`` added to each when ``explain`` asks for one."""
        method = explainer_name(explain)
        if method is None:
            return results
        explanations = self.explain(texts, method=method)
        return [{**r, "explanation": e} for r, e in zip(results, explanations, strict=True)]

    def info(self) -> dict[str, Any]:
        """What is loaded: task, architecture, digest, task settings."""
        return {
            "task": self.task,
            "architecture": self.manifest.architecture,
            "family": self.manifest.family,
            "digest": self.digest,
            "task_config": self.manifest.task_config,
            "device": str(self.device),
            "backend": self.backend,
        }


_PREDICTORS: dict[str, type[Predictor]] = {}


def register_predictor(cls: type[Predictor]) -> type[Predictor]:
    """Class decorator: serve the tasks in ``cls.tasks`` with ``cls``."""
    for task in cls.tasks:
        _PREDICTORS[task] = cls
    return cls


# Bases that serve as they are: a pretrained decoder generates text without training.
_BASE_TASKS = {"decoder": "causal-lm"}


def load_predictor(
    directory: Path,
    *,
    device: str = "auto",
    backend: str = "torch",
    graph: Path | None = None,
    threads: int | None = None,
) -> Predictor:
    """Verify the bundle at ``directory`` and load the predictor for its task.

    Model bundles are served by their task's predictor; a decoder *base*
    bundle is served for generation as it is.

    Args:
        directory: The bundle.
        device: ``auto``, ``cpu`` or ``cuda`` (PyTorch backend).
        backend: ``torch``, or ``onnx``/``onnx-int8`` with ``graph``.
        graph: The directory of the version's ONNX graphs (``aimass models optimize``).
        threads: ONNX Runtime's intra-op threads (default: every core).
    """
    directory = Path(directory)
    manifest = verify_bundle(directory)
    if backend == "torch":
        return predictor_class(manifest)(directory, manifest, resolve_device(device))
    from aimass.serving.onnx import load_onnx_predictor

    if graph is None:
        raise InvalidArgument(
            f"backend {backend!r} needs the version's ONNX graphs; run 'aimass models optimize' "
            "first, or serve with the torch backend"
        )
    return load_onnx_predictor(directory, manifest, backend=backend, graph=graph, threads=threads)


def predictor_class(manifest: Manifest) -> type[Predictor]:
    """The predictor class that serves a (verified) bundle's manifest."""
    from aimass.serving import (  # noqa: F401  (register the built-in predictors)
        fill_mask,
        generation,
        sequence,
        tokens,
    )

    task = manifest.task if manifest.kind == "model" else _BASE_TASKS.get(manifest.family)
    if task is None:
        raise UnsupportedModel(
            f"bundle {manifest.digest[:12]} is a {manifest.kind} ({manifest.family}) without a "
            "task; train a model from it first ('aimass train')"
        )
    cls = _PREDICTORS.get(task)
    if cls is None:
        raise UnsupportedModel(
            f"no predictor for task {manifest.task!r}; known: {', '.join(sorted(_PREDICTORS))}"
        )
    return cls


def check_texts(texts: Sequence[str]) -> list[str]:
    """Inputs must be a list of non-empty strings of valid Unicode (no lone surrogates)."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidArgument("predict takes a list of texts, e.g. ['first text', 'second']")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InvalidArgument(f"input {i} must be a non-empty string", index=i)
        check_unicode(text, what=f"input {i}", index=i)
    return list(texts)


def tagger_target(
    predictor: Any,
    task: str,
    tagger: Tagger,
    *,
    max_length: int,
    labels: tuple[str, ...] = (),
) -> ExplainTarget:
    """The explainers' view of a model read like a tagger (a NER tagger, a masked or a
    causal LM): its ``tagger`` for occlusion, its network for integrated gradients.
    ``predictor`` has the ``model``, ``tokenizer`` and tokenizer ``_lock`` to lend."""
    from aimass.explain.base import ExplainTarget, Network

    return ExplainTarget(
        task=task,
        labels=labels,
        network=Network(
            model=predictor.model,
            tokenizer=predictor.tokenizer,
            max_length=max_length,
            device=predictor.device,
            tokenize_lock=predictor._lock,
        ),
        name=f"the {predictor.manifest.architecture} {task} model",
        tagger=tagger,
    )


def vocabulary_columns(
    predictor: Any, windows: list[list[int]], classes: Sequence[int] | None
) -> list[np.ndarray]:
    """A language model's (T, C) probabilities of the tokens ``classes`` at every position
    of each sequence of ``windows``, batched so that (B, T, vocabulary) stays bounded:
    what explainers re-read a text without each word with (a :class:`Tagger`'s
    ``probabilities``, bound to the ``predictor`` whose ``model`` and ``tokenizer`` run)."""
    from aimass.models.text import vocabulary_batch, window_probabilities

    assert classes is not None  # a language model's reading keeps only the explained tokens
    model, tokenizer, device = predictor.model, predictor.tokenizer, predictor.device

    def forward(ids: Any, mask: Any) -> Any:
        return model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits

    size = vocabulary_batch(max(map(len, windows), default=1), len(tokenizer))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    probs = window_probabilities(forward, windows, pad, size, columns=list(classes))
    return [p.numpy() for p in probs]
