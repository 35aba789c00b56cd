"""Reports for language models and NER: perplexity as the training loss defines it, entity
F1, schema-valid JSON, HTML sections, and clear errors for data that does not fit."""

import json
import math
from html import escape

import numpy as np
import pytest

from aimass.errors import ErrorCode, InvalidArgument, UnsupportedModel
from aimass.evaluation import check_labels, validate_report
from aimass.jobs.evaluate import EvaluateSpec
from aimass.jobs.train import TrainSpec
from aimass.metrics import entity_metrics

QUICK = {
    "min_group_size": 1,
    "robustness_sample": 8,
    "latency_runs": 2,
    "batch_runs": 1,
    "batch_size": 4,
    "n_boot": 0,
    "explain_examples": 0,
    "measure_memory": False,
    "generation_samples": 2,
    "sample_tokens": 4,
    "perturbations": ["typos", "casing"],
}


def report_files(ws, attachment):
    html = ws.reports.report_file(attachment, fmt="html").read_text(encoding="utf-8")
    return html, json.loads(ws.reports.report_file(attachment, fmt="json").read_bytes())


def train(ws, dataset, base, task, **config):
    return ws.jobs.train(
        TrainSpec(
            dataset=dataset,
            base=base,
            model=f"{task}-m",
            config={"task": task, "epochs": 1, **config},
        )
    )


def test_entity_f1_matches_a_hand_computed_case():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "O"], ["O", "B-LOC", "B-PER"]]
    # gold entities: PER(0,2) LOC(3,4) LOC(1,2); predicted: PER(0,2) LOC(1,2) PER(2,3)
    m = entity_metrics(gold, pred)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["per_type"]["LOC"]["recall"] == pytest.approx(0.5)
    assert m["per_type"]["PER"]["precision"] == pytest.approx(0.5)
    seqeval = pytest.importorskip("seqeval.metrics")
    assert m["f1"] == pytest.approx(seqeval.f1_score(gold, pred))


def test_unknown_tags_are_refused():
    with pytest.raises(InvalidArgument, match="'B-ORG' is not among the tags") as err:
        check_labels("token-classification", ("O", "B-PER", "I-PER"), [["O", "B-ORG"]])
    assert err.value.code == ErrorCode.INVALID_ARGUMENT


def test_causal_lm_report_perplexity_is_exp_of_mean_token_nll(lm_ready):
    import torch

    from aimass.models.generation import prompt_ids, response_ids
    from aimass.models.hf import load_pretrained, load_tokenizer

    version = train(lm_ready, "pairs", "llama", "causal-lm", lr=1e-3)
    attachment = lm_ready.jobs.evaluate(
        EvaluateSpec(model=version.ref, dataset="pairs", options=QUICK)
    )
    html, document = report_files(lm_ready, attachment)
    validate_report(document)
    quality = document["sections"]["quality"]["data"]
    # Independently: response-token NLL under the bundle's own model, one row at a time.
    directory = lm_ready.artifacts.resolve(version.uri)
    model = load_pretrained(directory, family="decoder").eval()
    tokenizer = load_tokenizer(directory)
    from aimass.data.tables import read_split

    dataset = lm_ready.store.datasets.get("default", "pairs", None)
    rows = read_split(lm_ready.artifacts.resolve(dataset.uri), "test")
    fmt = "chat" if tokenizer.chat_template else "plain"
    total, count = 0.0, 0
    with torch.inference_mode():
        for prompt, response in zip(rows.texts, rows.targets, strict=True):
            head = prompt_ids(tokenizer, prompt, fmt)
            tail = response_ids(tokenizer, prompt, response, fmt)
            ids = torch.tensor([head + tail])
            logp = model(input_ids=ids).logits[0, :-1].float().log_softmax(-1)
            targets = ids[0, 1:]
            picked = -logp[torch.arange(len(targets)), targets][len(head) - 1 :]
            total, count = total + float(picked.sum()), count + len(tail)
    assert quality["tokens"] == count
    assert quality["loss"] == pytest.approx(total / count, rel=1e-4)
    assert quality["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-4)
    samples = document["sections"]["samples"]
    assert samples["status"] == "ok" and len(samples["data"]["samples"]) == 2
    assert document["sections"]["explanations"]["status"] == "not-applicable"
    reason = document["sections"]["explanations"]["reason"]
    assert "reports of causal-lm models do not explain examples yet" in reason
    assert document["sections"]["robustness"]["data"]["results"][0]["perplexity"] > 0
    for section in ("quality", "samples", "robustness", "resources", "explanations"):
        assert f'id="{section}"' in html


def test_ner_report_and_card(lm_ready):
    version = train(lm_ready, "ner", "bert", "token-classification", lr=5e-3, epochs=3)
    options = {**QUICK, "explain_examples": 2, "explain_method": "occlusion"}
    attachment = lm_ready.jobs.evaluate(
        EvaluateSpec(model=version.ref, dataset="ner", options=options)
    )
    html, document = report_files(lm_ready, attachment)
    validate_report(document)
    quality = document["sections"]["quality"]["data"]
    assert set(quality["per_type"]) <= {"PER", "LOC"}
    assert 0 <= quality["f1"] <= 1 and quality["count"] == document["dataset"]["rows"]
    assert np.asarray(quality["confusion_matrix"]).sum() == quality["tokens"]
    robustness = document["sections"]["robustness"]["data"]
    assert {r["perturbation"] for r in robustness["results"]} == {"typos", "casing"}
    assert 'id="quality"' in html and "Per entity type" in html and "data:image/png" in html
    explanations = document["sections"]["explanations"]["data"]
    assert explanations["method"] == "occlusion" and len(explanations["examples"]) == 2
    for example in explanations["examples"]:
        text, explained = example["text"], example["explanation"]
        assert explained["target"] == "entities" and explained["output"] == "probability"
        for entity in explained["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"]
            assert [w["word"] for w in entity["words"]] == text.split()
            assert escape(f"{entity['label']} {entity['text']!r}") in html
        assert example["true"] != "none"  # every row of the dataset has a person and a place
    assert "explains the probability of each entity&#x27;s tags" in html
    card = lm_ready.models.card(version.ref)
    assert "entity F1" in card


def test_language_model_on_a_tokens_dataset_is_refused(lm_ready):
    version = train(lm_ready, "text", "llama", "causal-lm")
    with pytest.raises(InvalidArgument, match="kind") as err:
        lm_ready.jobs.evaluate(EvaluateSpec(model=version.ref, dataset="ner", options=QUICK))
    assert "ner" in err.value.message
    with pytest.raises(InvalidArgument, match="'pairs'"):
        lm_ready.jobs.evaluate(EvaluateSpec(model=version.ref, dataset="pairs", options=QUICK))
    with pytest.raises(UnsupportedModel, match="Explainers for 'causal-lm' models: integrated"):
        lm_ready.serving.predict(version.ref, ["the cat"], explain="attention")


def test_evaluate_job_over_the_api_for_a_causal_lm(lm_ready):
    from fastapi.testclient import TestClient

    from aimass.server import create_app
    from tests.server.test_api import P, wait_for

    version = train(lm_ready, "pairs", "llama", "causal-lm", lr=1e-3)
    settings = lm_ready.settings.model_copy(update={"job_heartbeat_seconds": 0.2})
    with TestClient(create_app(settings, job_workers=1), base_url="http://localhost") as c:
        admin = {"Authorization": f"Bearer {(settings.home / 'admin.key').read_text().strip()}"}
        body = {"kind": "evaluate", "model": version.ref, "dataset": "pairs", "options": QUICK}
        job = c.post(f"{P}/jobs", headers=admin, json=body)
        assert job.status_code in (200, 201, 202), job.text
        done = wait_for(c, admin, job.json()["id"])
        assert done["status"] == "succeeded", done
        name = done["result"]["attachment"]
        url = f"{P}/models/{version.name}/versions/{version.version}/reports/{name}/report.json"
        numbers = c.get(url, headers=admin).json()
    assert numbers["model"]["task"] == "causal-lm"
    assert numbers["sections"]["quality"]["data"]["perplexity"] > 1
