"""A Hugging Face classifier directory registers as a model and predicts as transformers does."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aimass.artifacts.bundle import verify_bundle
from aimass.client import Client
from aimass.errors import InvalidArgument, PermissionDenied, UnsupportedModel
from aimass.server import create_app
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.conftest import tiny_vocab
from tests.tiny_decoder import DECODER_VOCAB, make_tiny_decoder

TEXTS = ["good great film", "bad awful sad movie and plot", "the film", "very happy"]
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def make_bert_classifier(directory: Path, *, seed: int = 1) -> Path:
    """A random BertForSequenceClassification (3 labels) saved with its tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    torch.manual_seed(seed)
    vocab = tiny_vocab()
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    BertForSequenceClassification(config).save_pretrained(str(directory))
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(directory))
    return directory


def hf_logits(directory: Path, texts: list[str]) -> torch.Tensor:
    """Logits of plain transformers on ``texts``, one text at a time (no padding)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(directory), local_files_only=True
    ).eval()
    with torch.inference_mode():
        return torch.cat([model(**tokenizer(t, return_tensors="pt")).logits for t in texts])


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return make_bert_classifier(tmp_path_factory.mktemp("hf-classifier") / "clf")


@pytest.fixture
def ws(tmp_path):
    workspace = Workspace(Settings(home=tmp_path / "home", device="cpu", num_threads=1))
    yield workspace
    workspace.close()


def test_a_bert_classifier_imports_and_predicts_exactly_as_transformers(ws, hf_dir, tmp_path):
    version, created = ws.models.import_(str(hf_dir), name="hfc", alias="production")
    assert created and version.task == "classification" and "production" in version.aliases
    lineage = version.lineage
    assert (lineage.dataset, lineage.base, lineage.job_id) == ("", "", "")
    assert lineage.config["source"] == "import"
    assert lineage.config["hf_architecture"] == "BertForSequenceClassification"
    expected = hf_logits(hf_dir, TEXTS).softmax(-1)
    predicted = ws.serving.predict("hfc@production", TEXTS)
    for row, probabilities in zip(predicted, expected.tolist(), strict=True):
        assert list(row["probabilities"]) == ["negative", "neutral", "positive"]
        assert list(row["probabilities"].values()) == pytest.approx(probabilities, abs=1e-5)
        assert row["label"] == LABELS[max(range(3), key=probabilities.__getitem__)]
    # Exported again, it is the same Hugging Face classifier.
    ws.models.export("hfc", tmp_path / "out")
    verify_bundle(tmp_path / "out")
    torch.testing.assert_close(hf_logits(tmp_path / "out", TEXTS), hf_logits(hf_dir, TEXTS))
    card = ws.models.card("hfc")
    assert "Imported from a Hugging Face `BertForSequenceClassification`" in card
    assert ws.models.import_(str(hf_dir), name="hfc") == (ws.models.get("hfc@1"), False)
    # An imported model names no base, and still becomes one.
    base, _ = ws.bases.from_model("hfc@1", name="hfc-base")
    assert base.provenance["model"] == "hfc@1" and "license" not in base.provenance


def test_a_decoder_classifier_imports_with_last_token_pooling(ws, tmp_path):
    from transformers import AutoConfig, LlamaForSequenceClassification

    source = make_tiny_decoder(tmp_path / "gpt")
    config = AutoConfig.from_pretrained(str(source), local_files_only=True)
    config.update(
        {"num_labels": 2, "id2label": {0: "neg", 1: "pos"}, "label2id": {"neg": 0, "pos": 1}}
    )
    config.pad_token_id = DECODER_VOCAB.index("</s>")
    config.architectures = ["LlamaForSequenceClassification"]
    torch.manual_seed(2)
    LlamaForSequenceClassification(config).save_pretrained(str(source))
    version, _ = ws.models.import_(str(source), name="gpt-clf")
    bundle = ws.artifacts.resolve(version.uri)
    assert json.loads((bundle / "aimass.json").read_text())["task_config"]["pooling"] == "last"
    expected = hf_logits(source, TEXTS).softmax(-1)[:, 1].tolist()
    got = [p["probabilities"]["pos"] for p in ws.serving.predict("gpt-clf", TEXTS)]
    assert got == pytest.approx(expected, abs=1e-5)


def test_what_is_not_a_servable_classifier_is_refused(ws, tmp_path, tiny_bert_dir):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    with pytest.raises(UnsupportedModel, match="not a sequence classifier"):
        ws.models.import_(str(tiny_bert_dir), name="bare")
    roberta = tmp_path / "roberta"
    RobertaForSequenceClassification(
        RobertaConfig(
            vocab_size=60,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
    ).save_pretrained(str(roberta))
    with pytest.raises(UnsupportedModel, match="RobertaForSequenceClassification's head"):
        ws.models.import_(str(roberta), name="roberta")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((roberta / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(UnsupportedModel, match="pickle"):
        ws.models.import_(str(pickled), name="pickled")
    with pytest.raises(InvalidArgument):
        ws.models.import_(str(tmp_path / "nowhere"), name="x")
    with pytest.raises(InvalidArgument, match="latest"):
        ws.models.import_(str(roberta), name="x", alias="latest")
    assert ws.store.registry.list_models("default") == []


def test_import_over_the_api_sdk_and_remote_cli(hf_dir, tmp_path, monkeypatch):
    from aimass.cli import app as cli
    from tests.server.test_trust_api import through

    settings = Settings(
        home=tmp_path / "served", device="cpu", serve_runners=0, import_dirs=[hf_dir.parent]
    )
    app = create_app(settings, job_workers=0)
    with TestClient(app, base_url="http://localhost") as client:
        key = (tmp_path / "served" / "admin.key").read_text().strip()
        body = {"path": str(hf_dir), "name": "hfc", "alias": "staging"}
        P = "/v1/projects/default/models"
        r = client.post(P, headers={"Authorization": f"Bearer {key}"}, json=body)
        assert r.status_code == 201, r.text
        assert r.json()["lineage"]["config"]["source"] == "import"
        outside = client.post(
            P, headers={"Authorization": f"Bearer {key}"}, json={**body, "path": str(tmp_path)}
        )
        assert outside.status_code == 403
        created = client.post(
            "/v1/projects/default/keys",
            headers={"Authorization": f"Bearer {key}"},
            json={"name": "reader", "scopes": ["read", "predict"]},
        ).json()["key"]
        with (
            Client("http://localhost", created, transport=through(client)) as reader,
            pytest.raises(PermissionDenied),
        ):
            reader.models.import_(str(hf_dir), name="other")
        with Client("http://localhost", key, transport=through(client)) as sdk:
            version = sdk.models.import_(str(hf_dir), name="hfc2")
            assert version.ref == "hfc2@1"
            predicted = sdk.predict("hfc2", TEXTS[:1])[0]["probabilities"]
        expected = hf_logits(hf_dir, TEXTS[:1]).softmax(-1)[0].tolist()
        assert list(predicted.values()) == pytest.approx(expected, abs=1e-5)
        monkeypatch.setattr(
            "aimass.client.Client", functools.partial(Client, transport=through(client))
        )
        env = {"AIMASS_URL": "http://localhost", "AIMASS_API_KEY": key}
        args = ["models", "import", str(hf_dir), "--name", "hfc3", "--alias", "production"]
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 0, result.output
        assert "hfc3@1" in result.output and "production" in result.output


def test_the_local_cli_imports_a_directory(hf_dir, tmp_path):
    from aimass.cli import app as cli

    env = {"AIMASS_HOME": str(tmp_path / "home")}
    args = ["models", "import", str(hf_dir), "--name", "local", "--json"]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] is True
    shown = CliRunner().invoke(cli, ["models", "show", "local"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "imported from BertForSequenceClassification" in " ".join(shown.output.split())
    explained = CliRunner().invoke(
        cli, ["predict", "local", "good great film", "--explain", "occlusion", "--json"], env=env
    )
    assert explained.exit_code == 0, explained.output
    assert json.loads(explained.stdout)[0]["explanation"]
