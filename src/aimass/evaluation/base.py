"""The pieces every report section shares: inputs, options, context, results, registries.

A report is a list of *sections* chosen per task through a registry
(:func:`register_report_task`): classification gets quality, calibration,
fairness, robustness, explanations, resources and privacy; regression the same
without calibration; language models (``masked-lm``, ``causal-lm``,
``seq2seq``) get held-out perplexity, generation samples (generative ones),
perplexity by group and under perturbation; token classification gets entity
F1 overall, by group and under perturbation. Each section computes plain JSON
data (and optional figures) from a :class:`ReportContext`, and renders its own
HTML fragment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from aimass.errors import InvalidArgument, UnsupportedModel

__all__ = [
    "EvaluationData",
    "ModelUnderTest",
    "ReportContext",
    "ReportOptions",
    "Section",
    "SectionResult",
    "get_report_sections",
    "get_section",
    "register_report_task",
    "register_section",
]

SKIPPED = "skipped"
OK = "ok"
NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class ModelUnderTest:
    """The model version being evaluated, as plain callables and facts.

    Attributes:
        name: Registered model name.
        version: Version number.
        digest: Bundle digest.
        task: ``classification`` or ``regression``.
        architecture: ``model_type`` of the encoder.
        labels: Class names in output order (classification).
        score: Texts → (N, C) class probabilities or (N, 1) values (no input checks).
        predict: The public predict path (tokenisation included), timed for latency.
        explain: Texts → explanation dicts, or ``None`` when the model cannot be explained.
        parameters: Parameter count.
        bundle_bytes: Size of the bundle's files on disk.
        metrics: The version's recorded metrics (training time comes from here).
        privacy: The version's privacy record (DP accounting), if any.
        device: Where predictions run (``cpu``, ``cuda:0``).
        threads: Torch intra-op threads used.
        memory: Measures serving memory in a fresh process; ``None`` to skip.
        explain_unsupported: Why ``explain`` is ``None`` (shown in the report).
        nll: Language models: (inputs, targets or ``None``) → per-row summed token NLL in
            nats and scored-token counts, computed as the training task computes its loss.
        tag: Token classification: rows of words → predicted BIO tag per word.
        generate: Generative models: (prompt, max_new_tokens) → greedy output text.
        predict_unit: What one ``predict`` call handles per input, for the resources section.
        abstain: The label of an input the model declined to answer (a pipeline's
            ``abstain``), or ``None``. It is never a true class: macro averages leave it
            out, and the quality section adds the coverage and the accuracy of the answers.
    """

    name: str
    version: int
    digest: str
    task: str
    architecture: str
    labels: tuple[str, ...]
    score: Callable[[Sequence[str]], np.ndarray]
    predict: Callable[[Sequence[str]], Any]
    explain: Callable[[Sequence[str]], list[dict[str, Any]]] | None = None
    parameters: int = 0
    bundle_bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    privacy: dict[str, Any] | None = None
    device: str = "cpu"
    threads: int = 1
    memory: Callable[[Sequence[str]], dict[str, Any]] | None = None
    explain_unsupported: str | None = None
    nll: Callable[[Sequence[str], Sequence[str] | None], tuple[np.ndarray, np.ndarray]] | None = (
        None
    )
    tag: Callable[[Sequence[Sequence[str]]], list[list[str]]] | None = None
    generate: Callable[[str, int], str] | None = None
    predict_unit: str = "predictions"
    abstain: str | None = None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class EvaluationData:
    """The labelled rows a report is computed on.

    Attributes:
        name: Dataset name.
        version: Dataset version.
        digest: Dataset content digest.
        split: The split evaluated (``test`` by default).
        texts: Input texts.
        labels: True labels (class names, or numbers for regression).
        group_field: The field fairness groups come from, if any.
        groups: That field's value per row (``None`` = missing).
        fields: Every extra field the dataset has (for messages).
        kind: Dataset kind: ``text``, ``tokens`` (``labels`` hold BIO tags) or ``pairs``.
        tokens: The words of each row (``tokens`` datasets).
        targets: Responses or targets (``pairs`` datasets).
    """

    name: str
    version: int
    digest: str
    split: str
    texts: list[str]
    labels: list[Any]
    group_field: str | None = None
    groups: list[str | None] | None = None
    fields: tuple[str, ...] = ()
    kind: str = "text"
    tokens: list[list[str]] | None = None
    targets: list[str] | None = None

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class ReportOptions:
    """How thorough a report is, and what it may contain.

    Attributes:
        seed: Seeds every sample and perturbation (same seed, same report numbers
            apart from the measured timings).
        perturbations: Perturbation names; ``None`` runs every registered one
            (those whose engine is missing are listed as unavailable).
        robustness_sample: Rows (seeded sample) scored under each perturbation.
        min_group_size: Fairness groups smaller than this are listed but kept out
            of the disparity numbers (their rates are too noisy to compare).
        n_boot: Bootstrap resamples for the per-group confidence intervals.
        n_bins: Reliability-diagram bins.
        explain_method: Explainer used for the example explanations.
        explain_examples: How many examples to explain (0 = none).
        include_examples: Whether dataset texts may appear in the report
            (explanations, perturbation examples). Off for sensitive data.
        latency_runs: Single-item predictions timed.
        batch_size: Batch size of the batched timing.
        batch_runs: Batched predictions timed.
        measure_memory: Measure serving memory in a fresh process.
        watts_per_core: Assumed CPU power per busy core for the energy estimate.
        generation_samples: Held-out prompts a generative model answers in the report.
        sample_tokens: Most new tokens per generation sample (greedy); also bounds the
            generations the resources section times.
    """

    seed: int = 0
    perturbations: tuple[str, ...] | None = None
    robustness_sample: int = 500
    min_group_size: int = 20
    n_boot: int = 200
    n_bins: int = 15
    explain_method: str = "integrated-gradients"
    explain_examples: int = 4
    include_examples: bool = True
    latency_runs: int = 20
    batch_size: int = 32
    batch_runs: int = 5
    measure_memory: bool = True
    watts_per_core: float = 10.0
    generation_samples: int = 4
    sample_tokens: int = 32

    def __post_init__(self) -> None:
        checks = {
            "robustness_sample": self.robustness_sample >= 1,
            "min_group_size": self.min_group_size >= 1,
            "n_boot": self.n_boot >= 0,
            "n_bins": 2 <= self.n_bins <= 100,
            "explain_examples": 0 <= self.explain_examples <= 50,
            "latency_runs": self.latency_runs >= 1,
            "batch_size": self.batch_size >= 1,
            "batch_runs": self.batch_runs >= 1,
            "watts_per_core": self.watts_per_core > 0,
            "generation_samples": 0 <= self.generation_samples <= 50,
            "sample_tokens": 1 <= self.sample_tokens <= 512,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in bad)
            raise InvalidArgument(f"invalid report options: {shown}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded in the report)."""
        data = dict(self.__dict__)
        data["perturbations"] = list(self.perturbations) if self.perturbations else None
        return data


class ReportContext:
    """What sections read: the model, the data, the options and shared predictions.

    Clean-text predictions are computed once and shared (quality, calibration,
    fairness and robustness all need them).
    """

    def __init__(
        self,
        model: ModelUnderTest,
        data: EvaluationData,
        options: ReportOptions,
        *,
        on_phase: Callable[[str, int], None] | None = None,
        on_advance: Callable[[int], None] | None = None,
    ) -> None:
        self.model = model
        self.data = data
        self.options = options
        self._on_phase = on_phase
        self._on_advance = on_advance

    def phase(self, name: str, total: int) -> None:
        """A step of ``total`` units starts (shown as progress; may raise Cancelled)."""
        if self._on_phase is not None:
            self._on_phase(name, total)

    def advance(self, done: int = 1) -> None:
        """``done`` units of the current step are finished."""
        if self._on_advance is not None:
            self._on_advance(done)

    def score(self, texts: Sequence[str], *, chunk: int = 256) -> np.ndarray:
        """Model scores for ``texts``, in chunks so progress and cancellation keep flowing."""
        parts = []
        for start in range(0, len(texts), chunk):
            part = list(texts[start : start + chunk])
            parts.append(np.asarray(self.model.score(part), dtype=np.float64))
            self.advance(len(part))
        width = len(self.model.labels) if self.model.task == "classification" else 1
        return np.concatenate(parts) if parts else np.zeros((0, width))

    @cached_property
    def scores(self) -> np.ndarray:
        """(N, C) probabilities or (N, 1) values on the clean texts."""
        self.phase("scoring the evaluation rows", len(self.data))
        return self.score(self.data.texts)

    @cached_property
    def y_true(self) -> np.ndarray:
        """True class indices (classification) or values (regression)."""
        if self.model.task == "classification":
            index = {label: i for i, label in enumerate(self.model.labels)}
            return np.array([index[str(v)] for v in self.data.labels], dtype=np.int64)
        return np.asarray(self.data.labels, dtype=np.float64)

    @cached_property
    def averaged(self) -> list[int]:
        """The class indexes macro averages run over: every class but an abstention."""
        return [i for i, label in enumerate(self.model.labels) if label != self.model.abstain]

    @cached_property
    def y_pred(self) -> np.ndarray:
        """Predicted class indices (classification) or values (regression)."""
        if self.model.task == "classification":
            return self.scores.argmax(axis=1)
        return self.scores[:, 0]

    def nll(
        self, texts: Sequence[str], targets: Sequence[str] | None, *, chunk: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-row summed NLL and token counts of ``texts`` (with their ``targets``), chunked."""
        assert self.model.nll is not None
        sums, counts = [], []
        for start in range(0, len(texts), chunk):
            part = list(texts[start : start + chunk])
            part_targets = None if targets is None else list(targets[start : start + chunk])
            s, c = self.model.nll(part, part_targets)
            sums.append(np.asarray(s, dtype=np.float64))
            counts.append(np.asarray(c, dtype=np.int64))
            self.advance(len(part))
        if not sums:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(sums), np.concatenate(counts)

    @cached_property
    def row_nll(self) -> tuple[np.ndarray, np.ndarray]:
        """(N,) summed NLL and (N,) token counts on the clean rows (language models)."""
        self.phase("scoring the held-out tokens", len(self.data))
        return self.nll(self.data.texts, self.data.targets)

    def tags(self, tokens: Sequence[Sequence[str]], *, chunk: int = 256) -> list[list[str]]:
        """Predicted tags of ``tokens`` rows, chunked for progress (token classification)."""
        assert self.model.tag is not None
        out: list[list[str]] = []
        for start in range(0, len(tokens), chunk):
            part = list(tokens[start : start + chunk])
            out.extend(self.model.tag(part))
            self.advance(len(part))
        return out

    @cached_property
    def predicted_tags(self) -> list[list[str]]:
        """Predicted tags of every clean row (token classification)."""
        assert self.data.tokens is not None
        self.phase("tagging the evaluation rows", len(self.data))
        return self.tags(self.data.tokens)

    def rng(self, purpose: str) -> np.random.Generator:
        """A generator seeded by the report seed and ``purpose`` (independent streams)."""
        import zlib

        return np.random.Generator(
            np.random.PCG64(
                np.random.SeedSequence([self.options.seed, zlib.crc32(purpose.encode())])
            )
        )


@dataclass
class SectionResult:
    """What a section computed.

    Attributes:
        status: ``ok``, ``skipped`` (could run with other inputs/options; ``reason``
            says how) or ``not-applicable`` (``reason`` says why).
        data: JSON-ready numbers.
        figures: Figure name → PNG bytes (embedded in the HTML only).
        summary: Headline numbers merged into the report summary.
        reason: Why the section is skipped / not applicable.
        notes: Caveats a reader must see (shown under the section).
    """

    status: str = OK
    data: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def skipped(cls, reason: str, *, status: str = SKIPPED) -> SectionResult:
        """A section that did not run, and why."""
        return cls(status=status, reason=reason)


class Section(ABC):
    """One part of a report. Subclasses set the class attributes and two methods."""

    key: ClassVar[str]  # registry key, e.g. "quality.classification"
    name: ClassVar[str]  # JSON key and HTML anchor, e.g. "quality"
    title: ClassVar[str]
    description: ClassVar[str] = ""

    @abstractmethod
    def compute(self, ctx: ReportContext) -> SectionResult:
        """The section's numbers and figures."""

    @abstractmethod
    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        """HTML body of the section (``figures``: name → ``data:`` URI). Escape every string."""


_SECTIONS: dict[str, Section] = {}
_PLANS: dict[str, tuple[str, ...]] = {}


def register_section(section: Section, *, force: bool = False) -> Section:
    """Register ``section`` under ``section.key``."""
    if section.key in _SECTIONS and not force:
        raise InvalidArgument(f"report section {section.key!r} is registered already")
    _SECTIONS[section.key] = section
    return section


def get_section(key: str) -> Section:
    """The section registered as ``key``."""
    _load_builtin()
    try:
        return _SECTIONS[key]
    except KeyError:
        raise InvalidArgument(
            f"unknown report section {key!r}; sections: {', '.join(sorted(_SECTIONS))}"
        ) from None


def register_report_task(task: str, sections: Sequence[str], *, force: bool = False) -> None:
    """Reports for ``task`` consist of the sections registered as ``sections``, in order."""
    if task in _PLANS and not force:
        raise InvalidArgument(f"a report plan for task {task!r} is registered already")
    _PLANS[task] = tuple(sections)


def get_report_sections(task: str) -> list[Section]:
    """The sections of a report for ``task``.

    Raises:
        UnsupportedModel: no report plan is registered for the task.
    """
    _load_builtin()
    if task not in _PLANS:
        raise UnsupportedModel(
            f"no evaluation report for task {task!r}; reports exist for "
            f"{', '.join(sorted(_PLANS))}",
            task=task,
        )
    return [get_section(key) for key in _PLANS[task]]


def _load_builtin() -> None:
    # Built-in sections import numpy/matplotlib/fairlearn lazily; registering them is cheap.
    from aimass.evaluation import sections  # noqa: F401
