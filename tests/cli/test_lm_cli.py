"""The language-model commands end to end: tokenizers, scratch bases, NER, generate, cards."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from aimass.cli import app
from tests.conftest import ner_rows, write_jsonl

runner = CliRunner()


def run(*args, ok=True):
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def home(lm_home, tmp_path, monkeypatch):
    shutil.copytree(lm_home, tmp_path / "home")
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    return tmp_path


def test_tokenizers_and_scratch_bases(home):
    out = json.loads(
        run(
            "tokenizers",
            "train",
            "--dataset",
            "text",
            "--name",
            "t2",
            "--kind",
            "bpe",
            "--vocab-size",
            "300",
            "--json",
        ).stdout
    )
    assert out["tokenizer"]["architecture"] == "bpe"
    listed = json.loads(run("tokenizers", "list", "--json").stdout)
    assert {t["name"] for t in listed} == {"tok", "t2"}
    base = json.loads(
        run(
            "bases",
            "scratch",
            "gpt",
            "--architecture",
            "llama",
            "--tokenizer",
            "t2",
            "--set",
            "max_length=64",
            "--json",
        ).stdout
    )
    assert base["base"]["family"] == "decoder"
    missing = run(
        "bases", "scratch", "x", "--architecture", "bert", "--tokenizer", "nope", ok=False
    )
    assert missing.exit_code == 1 and "Error [NOT_FOUND]" in missing.output


def test_shrink_a_decoder_for_a_student(home):
    out = json.loads(
        run("bases", "shrink", "llama", "--name", "llama-1", "--layers", "1", "--json").stdout
    )
    assert out["created"] and out["base"]["family"] == "decoder"
    assert out["base"]["provenance"]["layers"] == [0]
    text = run("bases", "shrink", "llama", "--name", "llama-1", "--layers", "1").stdout
    assert "identical: existing version" in text and "cut to layers [0]" in text
    bad = run("bases", "shrink", "bart", "--name", "b", "--layers", "1", ok=False)
    assert bad.exit_code == 1 and "cannot shrink a bart model" in bad.output


def test_ner_from_a_conll_file(home):
    lines = []
    for row in ner_rows(120):
        lines += [f"{t}\t{g}" for t, g in zip(row["tokens"], row["tags"], strict=True)] + [""]
    conll = home / "ner.conll"
    conll.write_text("\n".join(lines) + "\n")
    run("datasets", "import", conll, "--name", "people")
    run(
        "train",
        "--dataset",
        "people",
        "--base",
        "bert",
        "--task",
        "token-classification",
        "--name",
        "ner",
        "--epochs",
        "3",
        "--lr",
        "0.003",
        "--alias",
        "production",
    )
    out = json.loads(run("predict", "ner@production", "Carol Smith went to Oslo", "--json").stdout)
    assert {e["text"] for e in out[0]["entities"]} <= {"Carol Smith", "Oslo", "Carol", "Smith"}
    table = run("predict", "ner@production", "Carol Smith went to Oslo").stdout
    assert "entities found by" in table
    explained = run(
        "predict", "ner@production", "Carol Smith went to Oslo", "--explain", "occlusion"
    ).stdout
    for entity in out[0]["entities"]:
        head = f"{entity['label']} {entity['text']!r}  explains the probability of its tags"
        assert head in explained
    assert out[0]["entities"] or "no entities found" in explained
    card = run("models", "card", "ner@production").stdout
    assert "Per entity type" in card and "| f1 |" in card
    versions = run("models", "versions", "ner").stdout
    assert "f1" in versions


def test_bad_tags_name_the_line(home):
    bad = write_jsonl(
        home / "bad.jsonl",
        [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["a", "b"], "tags": ["O", "I-PER"]}],
    )
    result = run("datasets", "import", bad, "--name", "bad", "--kind", "tokens", ok=False)
    assert "line 2: field 'tags' tag 2 'I-PER' follows 'O'" in " ".join(result.output.split())
    assert "bad" not in run("datasets", "list").stdout


def test_generate_streams_and_reports(home):
    run(
        "train",
        "--dataset",
        "pairs",
        "--base",
        "llama",
        "--task",
        "causal-lm",
        "--name",
        "echo",
        "--epochs",
        "1",
        "--max-train-rows",
        "24",
    )
    streamed = run("generate", "echo", "repeat cat", "--max-new-tokens", "4")
    assert "tokens/s" in streamed.output and "first token after" in streamed.output
    out = json.loads(
        run(
            "generate",
            "echo@1",
            "repeat cat",
            "--max-new-tokens",
            "4",
            "--temperature",
            "0.7",
            "--seed",
            "3",
            "--top-k",
            "5",
            "--top-p",
            "0.9",
            "--stop",
            "zzz",
            "--json",
        ).stdout
    )
    assert set(out) == {"text", "finish_reason", "usage", "timing"}
    assert out["usage"]["completion_tokens"] <= 4
    card = run("models", "card", "echo@1").stdout
    assert "## Generation samples" in card and "aimass generate echo@1" in card
    too_long = run("generate", "echo", "cat " * 300, ok=False)
    assert "Error [INVALID_ARGUMENT]" in too_long.output and "context" in too_long.output


def test_generate_refuses_a_classifier(home, tmp_path):
    from tests.conftest import sentiment_rows

    data = write_jsonl(tmp_path / "s.jsonl", sentiment_rows(60))
    run("datasets", "import", data, "--name", "s")
    run("train", "--dataset", "s", "--base", "bert", "--name", "clf", "--epochs", "1")
    result = run("generate", "clf", "hello", ok=False)
    assert "Error [UNSUPPORTED_MODEL]" in result.output


def test_generate_and_kind_imports_against_a_server(live_gen, tmp_path, monkeypatch):
    """``aimass --url ... generate`` streams from the server; tokens/pairs imports upload."""
    from tests.conftest import pair_rows

    url, key, app = live_gen
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "nothing-local"))
    monkeypatch.setenv("AIMASS_API_KEY", key)
    local = app.state.aimass.workspace.serving.generate("echo@1", "repeat cat", max_new_tokens=5)
    streamed = run("--url", url, "generate", "echo", "repeat cat", "--max-new-tokens", "5")
    assert streamed.stdout.strip() == local["text"].strip()
    assert "tokens/s" in streamed.output and "first token after" in streamed.output
    out = json.loads(
        run(
            "--url",
            url,
            "generate",
            "echo@production",
            "repeat cat",
            "--max-new-tokens",
            "5",
            "--json",
        ).stdout
    )
    assert out["text"] == local["text"] and set(out) == {"text", "finish_reason", "usage", "timing"}
    refused = run("--url", url, "generate", "mlm", "hi", ok=False)
    assert refused.exit_code == 1 and "Error [UNSUPPORTED_MODEL]" in refused.output
    pairs = write_jsonl(tmp_path / "p.jsonl", pair_rows(24))
    shown = json.loads(
        run(
            "--url",
            url,
            "datasets",
            "import",
            pairs,
            "--name",
            "cli-pairs",
            "--kind",
            "pairs",
            "--json",
        ).stdout
    )
    assert shown["dataset"]["schema"]["kind"] == "pairs"
    tokens = write_jsonl(tmp_path / "t.jsonl", ner_rows(20))
    run("--url", url, "datasets", "import", tokens, "--name", "cli-tokens", "--kind", "tokens")
    assert not (tmp_path / "nothing-local").exists()
