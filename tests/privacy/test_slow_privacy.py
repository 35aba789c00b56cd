"""Slow: DP fine-tuning of the real MiniLM (ghost clipping on transformers-5 BERT), and
English NER de-identification of real tweets (WNUT-16)."""

import json

import pytest

from aimass.data.importer import ImportOptions
from aimass.jobs.train import TrainSpec
from tests.conftest import write_jsonl

pytestmark = pytest.mark.slow


def test_dp_finetune_of_minilm_records_its_budget(workspace, tmp_path):
    from aimass.data.samples import get_sample

    records = list(get_sample("rotten-tomatoes").records())
    rows = [
        {"text": r.fields["text"], "label": r.fields["label"], "split": split}
        for split, chunk in (
            ("train", records[:96]),
            ("validation", records[96:128]),
            ("test", records[128:160]),
        )
        for r in chunk
    ]
    workspace.datasets.import_file(
        write_jsonl(tmp_path / "rt.jsonl", rows),
        name="rt",
        options=ImportOptions(split_field="split"),
    )
    workspace.bases.import_("minilm")
    version = workspace.jobs.train(
        TrainSpec(
            dataset="rt",
            base="minilm",
            model="dp-ft",
            config={"mode": "finetune", "epochs": 1, "batch_size": 16, "max_length": 48},
            privacy={"target_epsilon": 8},
        )
    )
    record = version.privacy
    assert record["grad_sample_mode"] == "ghost" and record["accountant"] == "prv"
    assert 0 < record["epsilon"] <= 8 and record["steps"] == 6
    assert record["delta"] == 1e-3  # 96 rows: the largest power of ten below 1/960
    predictions = workspace.serving.predict(version.ref, ["a moving film"])
    assert predictions[0]["label"] in ("fresh", "rotten")
    manifest = json.loads((workspace.artifacts.resolve(version.uri) / "aimass.json").read_text())
    assert manifest["provenance"]["privacy"]["epsilon"] == record["epsilon"]


def test_person_names_in_real_tweets_are_masked():
    from bench.pii import wnut

    from aimass.data.deidentify import deidentify_texts

    tweets = [t for t in wnut(400) if t[1]][:60]
    out, report = deidentify_texts([t for t, _ in tweets])
    masked = sum(
        1
        for (text, gold), clean in zip(tweets, out, strict=True)
        for s, e, _ in gold
        if text[s:e] not in clean
    )
    total = sum(len(g) for _, g in tweets)
    assert report.counts.get("PERSON", 0) > 0
    assert masked / total >= 0.4, f"{masked}/{total} person names removed"
