"""End to end: a report for a tiny model, validated as HTML (sections, embedded images, nothing
external) and as JSON (schema), stored with the version; and every bad input refused clearly."""

import base64
import copy
import hashlib
import json
from html.parser import HTMLParser

import jsonschema
import numpy as np
import pytest

from aimass.data.tables import read_split
from aimass.errors import (
    Cancelled,
    Internal,
    InvalidArgument,
    JobFailed,
    UnsupportedModel,
)
from aimass.evaluation import REPORT_SCHEMA, get_report_sections, validate_report
from aimass.jobs.evaluate import EvaluateSpec
from aimass.metrics import classification_metrics, regression_metrics
from aimass.training.callbacks import Callback
from tests.conftest import write_jsonl
from tests.evaluation.conftest import QUICK

CLASSIFICATION_SECTIONS = [
    "quality",
    "calibration",
    "fairness",
    "robustness",
    "explanations",
    "resources",
    "privacy",
]


class _Page(HTMLParser):
    """Collects what a self-contained report must (and must not) contain."""

    def __init__(self):
        super().__init__()
        self.tags, self.sections, self.images, self.urls, self.meta = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "meta":
            self.meta.append(attrs)
        for key in ("src", "href", "action", "srcset", "poster", "data"):
            if key in attrs:
                self.urls.append(attrs[key])


def parse(html):
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _files(ws, attachment):
    html = ws.reports.report_file(attachment, fmt="html").read_text(encoding="utf-8")
    raw = ws.reports.report_file(attachment, fmt="json").read_bytes()
    return html, raw, json.loads(raw)


def test_html_has_every_section_and_embeds_every_image(ws, report):
    html, _raw, document = _files(ws, report)
    page = parse(html)
    assert page.sections == CLASSIFICATION_SECTIONS
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    assert all(u.startswith(("#", "data:image/png;base64,")) for u in page.urls), page.urls
    assert "url(" not in html and "@import" not in html
    assert any(m.get("http-equiv") == "Content-Security-Policy" for m in page.meta)
    figures = sum(len(s["figures"]) for s in document["sections"].values())
    assert len(page.images) == figures >= 4
    for src in page.images:
        png = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000


def test_json_validates_against_the_schema_and_matches_the_html(ws, report):
    _html, raw, document = _files(ws, report)
    jsonschema.validate(document, REPORT_SCHEMA, cls=jsonschema.Draft202012Validator)
    validate_report(document)
    assert list(document["sections"]) == CLASSIFICATION_SECTIONS
    assert {k: s["status"] for k, s in document["sections"].items()} == {
        **dict.fromkeys(CLASSIFICATION_SECTIONS, "ok"),
        "privacy": "not-applicable",
    }
    assert document["model"]["name"] == "m" and document["dataset"]["split"] == "test"
    # Stored content-addressed, and attached with the same headline numbers.
    assert report.uri == f"artifacts:reports/{hashlib.sha256(raw).hexdigest()}"
    assert report.kind == "evaluation" and report.name == "s-v1-test-by-group"
    for key in ("accuracy", "f1_macro", "ece", "demographic_parity_difference", "worst_flip_rate"):
        assert report.summary[key] == document["summary"][key]


def test_quality_numbers_match_an_independent_computation(ws, report):
    _html, _raw, document = _files(ws, report)
    dataset = ws.datasets.get("s")
    rows = read_split(ws.artifacts.resolve(dataset.uri), "test")
    predicted = [r["label"] for r in ws.serving.predict("m@1", rows.texts)]
    labels = ["neg", "pos"]
    expected = classification_metrics(
        [labels.index(x) for x in rows.labels], [labels.index(x) for x in predicted], labels
    )
    quality = document["sections"]["quality"]["data"]
    assert quality["accuracy"] == pytest.approx(expected["accuracy"])
    assert quality["confusion_matrix"] == expected["confusion_matrix"]
    groups = {g["group"]: g for g in document["sections"]["fairness"]["data"]["groups"]}
    for name in groups:
        members = [i for i, g in enumerate(rows.extras["group"]) if g == name]
        acc = np.mean([predicted[i] == rows.labels[i] for i in members])
        assert groups[name]["accuracy"] == pytest.approx(acc)
        assert groups[name]["count"] == len(members)


def test_resources_robustness_and_explanations_are_filled_in(ws, report):
    _html, _raw, document = _files(ws, report)
    resources = document["sections"]["resources"]["data"]
    memory = resources["memory"]
    assert memory["status"] == "ok"
    assert 0 < memory["runtime_mib"] <= memory["loaded_mib"] <= memory["peak_mib"]
    assert resources["parameters"] > 0 and resources["bundle_bytes"] > 0
    assert resources["latency"]["single"]["runs"] == QUICK["latency_runs"]
    assert resources["training"]["seconds"] > 0
    assert (
        resources["energy"]["training"]["wh"] > 0
        and "W per busy core" in resources["energy"]["method"]
    )
    robustness = document["sections"]["robustness"]["data"]
    assert [(r["perturbation"], r["strength"]) for r in robustness["results"]] == [
        ("typos", 0.1),
        ("typos", 0.3),
        ("word-drop", 0.1),
        ("word-drop", 0.3),
        ("casing", 0.5),
        ("casing", 1.0),
        ("whitespace", 0.5),
        ("whitespace", 1.0),
        ("pii-masking", 1.0),
    ]
    assert robustness["unavailable"] == []
    assert robustness["sample_size"] == min(QUICK["robustness_sample"], document["dataset"]["rows"])
    examples = document["sections"]["explanations"]["data"]["examples"]
    assert len(examples) == QUICK["explain_examples"]
    for ex in examples:
        for w in ex["explanation"]["words"]:
            assert ex["text"][w["start"] : w["end"]] == w["word"]


def test_version_metrics_and_card_point_at_the_report(ws, report):
    version = ws.models.get("m@1")
    stored = version.metrics["evaluation"]["s-v1-test-by-group"]
    assert stored["report"] == report.uri and stored["accuracy"] == report.summary["accuracy"]
    card = ws.models.card("m@1")
    assert "Latest report `s-v1-test-by-group`" in card
    assert f"Verdict: **{report.summary['verdict']}**" in card  # the tiny model's: fail
    assert report.uri in card and "aimass reports get m@1" in card


def test_regression_report(ws):
    attachment = ws.jobs.evaluate(
        EvaluateSpec(model="r@1", dataset="rs", options={**QUICK, "measure_memory": False})
    )
    html, _raw, document = _files(ws, attachment)
    validate_report(document)
    assert parse(html).sections == [s for s in CLASSIFICATION_SECTIONS if s != "calibration"]
    fairness = document["sections"]["fairness"]
    assert fairness["status"] == "skipped" and "--group-field group" in fairness["reason"]
    rows = read_split(ws.artifacts.resolve(ws.datasets.get("rs").uri), "test")
    predicted = [r["value"] for r in ws.serving.predict("r@1", rows.texts)]
    expected = regression_metrics(rows.labels, predicted)
    quality = document["sections"]["quality"]["data"]
    assert quality["mae"] == pytest.approx(expected["mae"], rel=1e-5)
    assert quality["r2"] == pytest.approx(expected["r2"], rel=1e-5)
    assert document["sections"]["resources"]["data"]["memory"]["status"] == "skipped"
    assert "mean_abs_change" in document["sections"]["robustness"]["data"]["results"][0]


def test_hostile_text_is_escaped(ws, tmp_path):
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    rows = [
        {"text": f"good great film {evil}", "label": "pos", "group": evil},
        {"text": f"bad awful movie {evil}", "label": "neg", "group": "plain"},
    ] * 10
    ws.datasets.import_file(write_jsonl(tmp_path / "evil.jsonl", rows), name="evil")
    attachment = ws.jobs.evaluate(
        EvaluateSpec(
            model="m@1",
            dataset="evil",
            split="train",
            group_field="group",
            options={**QUICK, "measure_memory": False},
        )
    )
    html, _raw, document = _files(ws, attachment)
    page = parse(html)
    assert "script" not in page.tags
    assert all(u.startswith(("#", "data:image/png;base64,")) for u in page.urls)
    assert "&lt;script&gt;" in html
    assert evil in [g["group"] for g in document["sections"]["fairness"]["data"]["groups"]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            EvaluateSpec(model="m@1", dataset="s", group_field="region"),
            "group field 'region' does not exist in dataset s@1 (its fields: group)",
        ),
        (EvaluateSpec(model="r@1", dataset="s"), "regression model and s@1 has string labels"),
        (EvaluateSpec(model="m@1", dataset="rs"), "classification model and rs@1 has float labels"),
        (
            EvaluateSpec(model="m@1", dataset="s", options={"perturbations": ["synonyms"]}),
            "unknown perturbation 'synonyms'",
        ),
        (
            EvaluateSpec(model="m@1", dataset="s", options={"explain_method": "shap"}),
            "unknown explainer 'shap'",
        ),
        (EvaluateSpec(model="m@7", dataset="s"), "no version 7"),
    ],
)
def test_bad_input_is_refused_before_a_job_exists(ws, spec, message):
    jobs_before = len(ws.store.jobs.list("default"))
    with pytest.raises(
        (InvalidArgument, LookupError), match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        ws.jobs.submit_evaluation(spec)
    assert len(ws.store.jobs.list("default")) == jobs_before


def test_bad_spec_values():
    with pytest.raises(InvalidArgument, match="unknown split"):
        EvaluateSpec(model="m@1", dataset="s", split="dev")
    with pytest.raises(InvalidArgument, match="unknown report options: colour"):
        EvaluateSpec(model="m@1", dataset="s", options={"colour": "red"})
    with pytest.raises(InvalidArgument, match="robustness_sample=0"):
        EvaluateSpec(model="m@1", dataset="s", options={"robustness_sample": 0})


def test_labels_the_model_does_not_know_are_refused(ws, tmp_path):
    rows = [{"text": "good film", "label": "fresh"}, {"text": "bad film", "label": "rotten"}] * 10
    ws.datasets.import_file(write_jsonl(tmp_path / "other.jsonl", rows), name="other")
    with pytest.raises(
        InvalidArgument, match="'fresh', 'rotten' are not among the model's classes"
    ):
        ws.jobs.submit_evaluation(EvaluateSpec(model="m@1", dataset="other", split="train"))


@pytest.mark.slow  # ~20 s of CPU: the fast suite keeps the other robustness tests
def test_pii_masking_robustness_runs_on_request(ws):
    spec = EvaluateSpec(
        model="m@1", dataset="s", options={**QUICK, "perturbations": ["pii-masking"]}
    )
    attachment = ws.jobs.evaluate(spec)
    document = json.loads(ws.reports.report_file(attachment, fmt="json").read_text())
    robustness = document["sections"]["robustness"]["data"]
    assert [r["perturbation"] for r in robustness["results"]] == ["pii-masking"]
    assert robustness["unavailable"] == []


def test_every_trainable_task_has_a_report_and_unknown_tasks_are_named():
    names = [s.key for s in get_report_sections("token-classification")]
    assert names[0] == "quality.token-classification"
    assert [s.key for s in get_report_sections("causal-lm")][:2] == [
        "quality.language-model",
        "samples",
    ]
    with pytest.raises(UnsupportedModel, match="reports exist for causal-lm, classification"):
        get_report_sections("translation")


def _registry_state(ws):
    version = ws.models.get("m@1")
    reports = ws.artifacts.root / "reports"
    return (
        version.metrics,
        [(a.name, a.uri) for a in ws.reports.evaluations("m@1")],
        sorted(reports.iterdir()),
    )


def test_a_failed_job_leaves_the_registry_unchanged(ws, report, monkeypatch):
    from aimass.evaluation.sections.resources import Resources

    before = _registry_state(ws)

    def broken(self, ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Resources, "compute", broken)
    spec = EvaluateSpec(model="m@1", dataset="s", split="validation", options=QUICK)
    with pytest.raises(JobFailed, match="disk on fire"):
        ws.jobs.evaluate(spec)
    assert _registry_state(ws) == before
    failed = next(j for j in ws.store.jobs.list("default") if j.kind == "evaluate")  # newest
    assert failed.status == "failed" and "disk on fire" in failed.error


def test_a_cancelled_job_attaches_nothing(ws, report):
    class CancelSoon(Callback):
        def on_phase_advance(self, done):
            raise Cancelled("stop")

    before = _registry_state(ws)
    with pytest.raises(Cancelled):
        ws.jobs.evaluate(
            EvaluateSpec(model="m@1", dataset="s", split="validation", options=QUICK),
            callbacks=[CancelSoon()],
        )
    assert _registry_state(ws) == before


def test_a_document_that_breaks_the_schema_is_refused(ws, report):
    _html, _raw, document = _files(ws, report)
    bad = copy.deepcopy(document)
    bad["sections"]["quality"]["data"]["accuracy"] = 1.5
    with pytest.raises(Internal, match="sections/quality/data"):
        validate_report(bad)
    missing = copy.deepcopy(document)
    del missing["sections"]["robustness"]
    with pytest.raises(Internal, match="robustness"):
        validate_report(missing)


def test_aliases_are_pinned_when_the_job_is_queued(ws):
    ws.models.set_alias("m", "staging", 1)
    job = ws.jobs.submit_evaluation(EvaluateSpec(model="m@staging", dataset="s"))
    assert (job.spec["model"], job.spec["dataset"], job.status) == ("m@1", "s@1", "queued")
