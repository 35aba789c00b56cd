"""Verdicts in whole reports: a bad model is not waved through, and the page says why."""

import json

from aimass.evaluation import EvaluationData, ReportOptions, build_report, validate_report
from tests.evaluation.helpers import fixed_model, onehot
from tests.evaluation.test_report import CLASSIFICATION_SECTIONS, parse


def _document(ws, attachment):
    html = ws.reports.report_file(attachment, fmt="html").read_text(encoding="utf-8")
    return html, json.loads(ws.reports.report_file(attachment, fmt="json").read_bytes())


def test_the_tiny_models_report_is_not_all_pass(ws, report):
    html, document = _document(ws, report)
    verdicts = {k: s["verdict"]["status"] for k, s in document["sections"].items()}
    assert list(verdicts) == CLASSIFICATION_SECTIONS
    assert set(verdicts.values()) != {"pass"}
    overall = document["verdict"]
    assert overall["status"] in ("warn", "fail") and overall["reasons"]
    assert overall["status"] == max(verdicts.values(), key=["pass", "warn", "fail"].index)
    assert overall["thresholds"]["rows_warn"] == 100
    assert report.summary["verdict"] == overall["status"]
    # The page: the overall verdict near the top, a badge per section, the reasons listed.
    assert html.index("Overall verdict") < html.index('<section id="quality">')
    assert f'<span class="badge {overall["status"]}"' in html
    assert '<span class="badge ok">' not in html
    first = next(s for s in document["sections"].values() if s["verdict"]["status"] != "pass")
    reason = first["verdict"]["reasons"][0]
    assert reason.replace("'", "&#x27;") in html
    assert len(parse(html).sections) == len(CLASSIFICATION_SECTIONS)


def test_a_model_that_never_predicts_a_class_on_six_rows_fails():
    labels = ["neg", "pos", "neg", "pos", "neg", "pos"]
    model = fixed_model(onehot([0] * 6))  # always "neg"
    data = EvaluationData(
        name="d",
        version=1,
        digest="1" * 64,
        split="test",
        texts=[f"row-{i}" for i in range(6)],
        labels=labels,
    )
    options = ReportOptions(measure_memory=False, latency_runs=1, batch_runs=1, n_boot=0)
    report = build_report(model, data, options)
    document = report.document
    validate_report(document)
    quality = document["sections"]["quality"]["verdict"]
    assert quality["status"] == "fail"
    assert quality["reasons"][:2] == [
        "the test split has 6 rows; at least 100 are needed for a stable estimate and below 30 "
        "the numbers mean little (warn below 100, fail below 30)",
        "class 'pos' is in the test labels (3 rows) but the model never predicts it",
    ]
    assert document["sections"]["fairness"]["verdict"]["status"] == "warn"  # no group field
    assert document["verdict"]["status"] == "fail"
    assert document["verdict"]["reasons"][0].startswith("Quality: the test split has 6 rows")
    html = report.html()
    assert '<span class="badge fail" title="verdict: fail">fail</span>' in html
    assert (
        "class &#x27;pos&#x27; is in the test labels (3 rows) but the model never predicts it"
        in (html)
    )
