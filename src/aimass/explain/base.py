"""What every explainer shares: the target it explains, the result, the registry.

An explainer answers "which words of this input moved the prediction, and
which way". It receives an :class:`ExplainTarget` — the model as a scoring
function (or, for a NER tagger or a masked LM, a :class:`Tagger`), plus (for
gradient and attention methods) a :class:`Network` handle on the transformer
itself — and returns one :class:`Explanation` per text: scores per token and per
word, with character offsets into the original text; for a tagger, one such set
of scores per entity it found, for a masked LM one per mask it filled
(:class:`EntityExplanation`).

Explainers are registered by name (:func:`register_explainer`); an explainer
that cannot work on a model says so with :class:`~aimass.errors.UnsupportedModel`
before doing any work.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from aimass.errors import InvalidArgument, UnsupportedModel

__all__ = [
    "EntityExplanation",
    "ExplainTarget",
    "Explainer",
    "Explanation",
    "Network",
    "TaggedEntity",
    "Tagger",
    "Tagging",
    "TokenScore",
    "WordScore",
    "get_explainer",
    "list_explainers",
    "register_explainer",
    "resolve_target",
]


@dataclass(frozen=True)
class Network:
    """Gradient and attention access to a transformer sequence model.

    Attributes:
        model: A :class:`~aimass.models.sequence.SequenceModel` in eval mode:
            ``model(input_ids=None, attention_mask=..., token_type_ids=...,
            inputs_embeds=...)`` returns outputs (B, C); for a tagger, a
            token-classification model whose output's ``logits`` are (B, T, C).
        tokenizer: Its fast tokenizer (offset mappings are needed).
        max_length: Longest input in tokens; longer texts are truncated.
        device: Where the model lives.
        value_scale: Regression outputs are ``output * value_scale + value_shift``.
        value_shift: See ``value_scale``.
        attentions: Batch → per-layer attention probabilities, a tuple of
            (B, heads, T, T) tensors; ``None`` when the model cannot give them.
        tokenize_lock: Held while tokenising (fast tokenizers are not thread-safe).
    """

    model: Any
    tokenizer: Any
    max_length: int
    device: Any
    value_scale: float = 1.0
    value_shift: float = 0.0
    attentions: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None
    tokenize_lock: Any = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class TaggedEntity:
    """An entity a tagger found (or a mask a masked LM filled), and where its tags were read.

    Attributes:
        label: Its type (``PER``); for a mask, the token it is filled with.
        start: Character offset of its first character; ``end`` is exclusive.
        end: See ``start``.
        score: The mean probability of its words' tags (what predict reports).
        tags: One ``(window, position, column)`` per word: the window and token
            position of the word's first sub-word whose prediction decided the word's
            tag, and that tag's column in the :class:`Tagging`'s probabilities.
    """

    label: str
    start: int
    end: int
    score: float
    tags: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Tagging:
    """A text as a tagger read it (what its predict call computes), for one target.

    Attributes:
        windows: Token ids of each window the text was read in (one, unless the
            text is longer than the model's ``max_length`` tokens).
        tokens: Each window's token strings.
        offsets: Each window's token character spans; ``None`` for tokens that are
            not words of the text (special tokens, and a masked LM's masks: a mask
            is what is asked, never removed or scored).
        probabilities: Each window's (T, C) probabilities of the ``classes``.
        entities: The entities to explain, in order: those predict reports, of the
            type asked for.
        target: What is explained (``entities``, an entity type, ``fills`` or a token).
        target_index: Its index (-1 for every entity or fill).
        classes: The model's output classes that ``probabilities``' columns hold;
            ``None`` for every class in order (a tagger's tags). A masked LM keeps only
            the tokens it explains out of its whole vocabulary.
    """

    windows: list[list[int]]
    tokens: list[list[str]]
    offsets: list[list[tuple[int, int] | None]]
    probabilities: list[np.ndarray]
    entities: list[TaggedEntity]
    target: str = "entities"
    target_index: int = -1
    classes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Tagger:
    """A token-classification (NER) model, or a masked LM, as explainers see it.

    Attributes:
        read: ``(text, label)`` → its :class:`Tagging` for ``label`` (an entity type
            or a token; ``None``: each entity's own type, each mask's top token): the
            predictor's own reading, so an explanation explains exactly the entities
            (or fills) predict returns. Raises ``InvalidArgument`` for an unknown label.
        probabilities: ``(token-id sequences, classes)`` → the (T, C) probabilities of
            those classes (``None``: every class) in each sequence.
    """

    read: Callable[[str, str | None], Tagging]
    probabilities: Callable[[list[list[int]], tuple[int, ...] | None], list[np.ndarray]]


@dataclass(frozen=True)
class ExplainTarget:
    """A model as explainers see it.

    Attributes:
        task: ``classification``, ``regression``, ``token-classification`` or
            ``masked-lm`` (others are refused).
        labels: Class names in output order (classification), or entity types
            (``PER``, ``LOC``: token classification); empty for a masked LM.
        score: Texts → (N, C) class probabilities, or (N, 1) predicted values.
            Must accept any string, including an empty one. ``None`` for a tagger.
        network: Gradient/attention access, or ``None`` for a black box.
        name: What the model is, for messages (``"bert classification model"``).
        tagger: A NER tagger's (or masked LM's) reading and probabilities.
    """

    task: str
    labels: tuple[str, ...]
    score: Callable[[Sequence[str]], np.ndarray] | None = None
    network: Network | None = None
    name: str = "model"
    tagger: Tagger | None = None


@dataclass(frozen=True)
class TokenScore:
    """One model token: its text, its character span (``None`` for special tokens), its score."""

    token: str
    start: int | None
    end: int | None
    score: float
    special: bool = False


@dataclass(frozen=True)
class WordScore:
    """One word of the original text (``text[start:end]``) and its score."""

    word: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class EntityExplanation:
    """Scores for one entity a tagger found (which words made it find this entity), or
    for one mask a masked LM filled (which words made it fill the mask with this token).

    Attributes:
        label: The entity's type (the fill's token); ``start``/``end``/``text`` locate
            it as predict does.
        start: Character offset into the explained text.
        end: Exclusive end offset.
        text: ``text[start:end]``.
        words: Per-word scores covering the whole text, in order.
        tokens: Per-token scores (empty for word-level methods).
        details: Method-specific facts (the output at the input, convergence delta ...).
    """

    label: str
    start: int
    end: int
    text: str
    words: list[WordScore]
    tokens: list[TokenScore]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    """Scores for one text.

    Attributes:
        method: The explainer's name.
        text: The explained text, unchanged.
        target: The explained class name, or ``value`` for regression; for a
            tagger, the entity type explained, or ``entities`` for every type; for a
            masked LM, the token explained, or ``fills`` for each mask's top token.
        target_index: Its output index (for a tagger the type's index in the
            target's ``labels``, for a masked LM the token's id; -1 for every type or
            top token).
        output: What the scores explain: ``logit`` (of the target class),
            ``probability`` (of the target class), ``value`` (regression) or
            ``attention`` (class-agnostic attention flow; scores sum to 1); for a
            tagger's entities, ``probability`` (their mean tag probability) or
            ``logit`` (the sum of their tag logits); for a language model's fill or
            generated text, ``probability`` (the mean of its tokens') or
            ``log-probability`` (the sum of its tokens').
        words: Per-word scores covering the whole text, in order (empty for a
            tagger or language model: each entity has its own).
        tokens: Per-token scores (empty for word-level methods and for a tagger).
        truncated: The model saw only the first ``max_length`` tokens.
        details: Method-specific facts (convergence delta, steps, baseline ...).
        entities: One explanation per entity found, for a tagger (per mask filled,
            for a masked LM); ``None`` (and left out of :meth:`to_dict`) for other models.
    """

    method: str
    text: str
    target: str
    target_index: int
    output: str
    words: list[WordScore]
    tokens: list[TokenScore]
    truncated: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    entities: list[EntityExplanation] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        if self.entities is None:
            del out["entities"]
        return out


class Explainer(ABC):
    """An attribution method. Subclasses set ``name`` and implement :meth:`explain`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Whether the method needs gradient/attention access (a :class:`Network`).
    needs_network: ClassVar[bool] = True
    #: Tasks whose outputs the method knows how to explain.
    tasks: ClassVar[tuple[str, ...]] = ("classification", "regression")

    def check_task(self, task: str) -> None:
        """Raise :class:`UnsupportedModel` naming the explainers that do apply to ``task``."""
        if task in self.tasks:
            return
        others = [e.name for e in explainers_for(task)]
        raise UnsupportedModel(
            f"explainer {self.name!r} does not apply to {task!r} models; it explains "
            f"{', '.join(self.tasks)} models. Explainers for {task!r} models: "
            + (
                ", ".join(others)
                if others
                else "none (they attribute a class score, a value, an entity or a fill)"
            ),
            explainer=self.name,
            task=task,
            applicable=others,
        )

    def check(self, target: ExplainTarget) -> None:
        """Raise :class:`UnsupportedModel` when this method cannot explain ``target``."""
        self.check_task(target.task)
        if target.score is None and target.tagger is None:
            raise UnsupportedModel(
                f"{target.name} gives neither scores nor a tagger reading to explain",
                explainer=self.name,
            )
        if self.needs_network and target.network is None:
            raise UnsupportedModel(
                f"explainer {self.name!r} needs gradient and attention access to the network, "
                f"which {target.name} does not give; use 'occlusion', which works on any model",
                explainer=self.name,
            )

    def explain(
        self,
        target: ExplainTarget,
        texts: Sequence[str],
        *,
        label: str | None = None,
        **options: Any,
    ) -> list[Explanation]:
        """One explanation per text, for class ``label`` (default: the predicted one).

        Raises:
            UnsupportedModel: the method cannot explain this model.
            InvalidArgument: an unknown class or an unknown or invalid option.
        """
        self.check(target)
        settings = self.settings(**options)
        return [self.explain_one(target, text, label, **settings) for text in texts]

    def settings(self, **options: Any) -> dict[str, Any]:
        """The method's options, validated (this default takes none)."""
        if options:
            raise InvalidArgument(f"unknown options for {self.name}: {', '.join(sorted(options))}")
        return {}

    @abstractmethod
    def explain_one(
        self, target: ExplainTarget, text: str, label: str | None, *args: Any, **settings: Any
    ) -> Explanation:
        """The explanation of one text (``target`` has passed :meth:`check`).

        Each method takes its own keyword settings (what :meth:`settings` returned);
        ``*args: Any, **settings: Any`` lets an override name them.
        """


def resolve_target(target: ExplainTarget, label: str | None, scores: np.ndarray) -> tuple[int, str]:
    """The output index and name to explain: ``label``, else the top-scoring class.

    Args:
        target: The model.
        label: A class name the caller asked for, or ``None``.
        scores: The model's (C,) output for the text.
    """
    if target.task == "regression":
        if label is not None:
            raise InvalidArgument(
                f"{target.name} predicts a value; it has no class {label!r} to explain"
            )
        return 0, "value"
    if label is None:
        index = int(np.argmax(scores))
        return index, target.labels[index]
    if label not in target.labels:
        raise InvalidArgument(
            f"class {label!r} is not one of the model's classes: {', '.join(target.labels)}",
            label=label,
        )
    return target.labels.index(label), label


_EXPLAINERS: dict[str, Explainer] = {}
_LOCK = threading.Lock()


def register_explainer(explainer: Explainer, *, force: bool = False) -> Explainer:
    """Register ``explainer`` under ``explainer.name`` (``force`` replaces)."""
    with _LOCK:
        if explainer.name in _EXPLAINERS and not force:
            raise InvalidArgument(f"explainer {explainer.name!r} is registered already")
        _EXPLAINERS[explainer.name] = explainer
    return explainer


def _load_builtin() -> None:
    # The built-in methods import torch; they register on first use, not at import time.
    from aimass.explain import attention, integrated_gradients, occlusion  # noqa: F401


def get_explainer(name: str) -> Explainer:
    """The explainer ``name``; the error lists the registered ones."""
    _load_builtin()
    try:
        return _EXPLAINERS[name]
    except KeyError:
        raise InvalidArgument(
            f"unknown explainer {name!r}; explainers: {', '.join(sorted(_EXPLAINERS))}",
            explainer=name,
        ) from None


def list_explainers() -> list[Explainer]:
    """Every registered explainer, by name."""
    _load_builtin()
    return [_EXPLAINERS[n] for n in sorted(_EXPLAINERS)]


def explainers_for(task: str) -> list[Explainer]:
    """The registered explainers that explain ``task`` models, by name."""
    return [e for e in list_explainers() if task in e.tasks]
