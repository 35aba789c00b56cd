"""Distillation: a tiny teacher's soft targets teach a tiny student (``aimass distill``)."""

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from aimass.cli import app
from aimass.errors import InvalidArgument, NotFound
from aimass.jobs.train import TrainSpec
from aimass.serving.predictor import load_predictor
from aimass.training.config import TrainConfig
from aimass.training.distill import (
    NO_LABEL,
    SPEED_ROUNDS,
    SPEED_ROWS,
    distillation_loss,
    timed_against_teacher,
)
from tests.conftest import (
    import_few_and_pool,
    make_tiny_bert,
    register_copy,
    regression_rows,
    sentiment_rows,
    trained_workspace,
    write_jsonl,
)

# The student: a tiny BERT of its own (another seed), fine-tuned briefly. On 32
# labelled rows that is a few optimizer steps, too few to learn the task; with the
# teacher's soft targets on 400 unlabelled rows it gets enough signal to follow it.
STUDENT = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_bert_dir):
    """Teacher 'm' (classifier on 's', alias production) and regressor 'r' (on 'rs'); the
    student base 'student'; 'few' (40 labelled rows), 'pool' (400 rows without labels)
    and 'other' (the same texts labelled good/bad)."""
    root = tmp_path_factory.mktemp("distill")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data", regression=True)
    ws.models.set_alias("m", "production", 1)
    ws.bases.import_(str(make_tiny_bert(root / "student-base", seed=1)), name="student")
    few = import_few_and_pool(ws, root)
    other = [{**r, "label": {"pos": "good", "neg": "bad"}[r["label"]]} for r in few]
    ws.datasets.import_file(write_jsonl(root / "other.jsonl", other), name="other")
    yield ws
    ws.close()


def _train(ws, dataset, model, **config):
    """Train a version of ``model`` on the student base."""
    return ws.jobs.train(TrainSpec(dataset=dataset, base="student", model=model, config=config))


@pytest.fixture(scope="module")
def students(ws):
    """The distilled student and the same student trained on the labels alone."""
    distilled = _train(ws, "few", "distilled", **STUDENT, teacher="m@production", unlabelled="pool")
    hard = _train(ws, "few", "hard", **STUDENT)
    return distilled, hard


def _predicted(ws, ref, texts):
    version = ws.models.get(ref)
    predictor = load_predictor(ws.artifacts.resolve(version.uri), device="cpu")
    return predictor.scores(texts).argmax(axis=1)


def test_student_follows_the_teacher_better_than_on_labels_alone(ws, students):
    texts = [r["text"] for r in sentiment_rows(200, seed=3)]  # held out from every set
    teacher = _predicted(ws, "m@1", texts)
    agreement = {v.name: float((_predicted(ws, v.ref, texts) == teacher).mean()) for v in students}
    assert agreement["distilled"] >= 0.9, agreement
    assert agreement["distilled"] > agreement["hard"] + 0.1, agreement


def test_lineage_records_the_pinned_teacher_and_settings(ws, students):
    distilled, hard = students
    config = distilled.lineage.config
    # The alias was pinned to the version when the job was submitted.
    assert config["teacher"] == "m@1"
    assert config["unlabelled"] == "pool@1"
    assert (config["temperature"], config["distill_alpha"]) == (2.0, 0.5)
    record = distilled.metrics["distillation"]
    assert record["teacher_digest"] == ws.models.get("m@1").digest
    assert record["transfer_rows"] == 400
    assert record["labelled_rows"] == distilled.metrics["training"]["train_rows"]
    for key in ("teacher_accuracy", "student_accuracy", "agreement", "speed_ratio"):
        assert key in record
    # Both timed on the same test rows, in interleaved rounds, after the student trained.
    assert record["speed_rows"] == min(SPEED_ROWS, record["test_rows"])
    assert record["speed_rounds"] == SPEED_ROUNDS
    manifest = json.loads((ws.artifacts.resolve(distilled.uri) / "aimass.json").read_text())
    assert manifest["provenance"]["teacher"] == "m@1"
    # A run without a teacher keeps the config (and digest) it always had.
    assert "teacher" not in hard.lineage.config
    assert "distillation" not in hard.metrics


def test_card_shows_where_the_student_was_distilled_from(ws, students):
    distilled, hard = students
    card = ws.models.card(distilled.ref)
    assert "## Distilled from" in card
    assert "Teacher: `m@1`" in card
    assert "predictions/s" in card
    assert "400 unlabelled rows of `pool@1`" in card
    assert "Distilled from" not in ws.models.card(hard.ref)


def _submit(ws, dataset="few", **config):
    spec = TrainSpec(dataset=dataset, base="student", model="x", config={**STUDENT, **config})
    return ws.jobs.submit_training(spec)


def test_unknown_teacher_is_refused(ws):
    with pytest.raises(NotFound, match="--teacher nope"):
        _submit(ws, teacher="nope")
    with pytest.raises(NotFound, match="--unlabelled missing"):
        _submit(ws, teacher="m", unlabelled="missing")


def test_teacher_with_another_label_set_is_refused(ws):
    with pytest.raises(InvalidArgument, match="same label set") as err:
        _submit(ws, dataset="other", teacher="m@1")
    assert err.value.details["field"] == "teacher"


def test_teacher_of_another_task_is_refused(ws):
    with pytest.raises(InvalidArgument, match=r"is a regression model.*--task regression"):
        _submit(ws, teacher="r@1", task="classification")
    # Without a task the student takes its teacher's (a classification dataset then fails
    # the regression task's own check, naming the label).
    with pytest.raises(InvalidArgument, match="regression"):
        _submit(ws, teacher="r@1")
    with pytest.raises(InvalidArgument, match="is a classification model but the student is"):
        _submit(ws, dataset="pool", teacher="m@1", task="masked-lm", mode=None)


def test_options_without_teacher_or_out_of_range_are_refused():
    with pytest.raises(InvalidArgument, match="without a teacher") as err:
        TrainConfig(temperature=3.0).resolved()
    assert err.value.details["field"] == "temperature"
    with pytest.raises(InvalidArgument, match=r"distill_alpha=1\.5"):
        TrainConfig(teacher="m", distill_alpha=1.5).resolved()
    with pytest.raises(InvalidArgument, match="--workers 2"):
        TrainConfig(teacher="m", workers=2).resolved()
    # A regressor's teacher says values: no temperature, and none is made up.
    with pytest.raises(InvalidArgument, match="does not apply to regression") as err:
        TrainConfig(task="regression", teacher="r", temperature=2.0).resolved()
    assert err.value.details["field"] == "temperature"
    regression = TrainConfig(task="regression", teacher="r").resolved()
    assert (regression.temperature, regression.distill_alpha) == (None, 0.5)
    assert "teacher" not in TrainConfig().resolved().to_dict()


def test_dp_with_a_non_private_teacher_of_the_same_data_is_refused(ws):
    spec = TrainSpec(
        dataset="s",
        base="student",
        model="x",
        config={**STUDENT, "teacher": "m@1"},
        privacy={"target_epsilon": 8.0},
    )
    with pytest.raises(InvalidArgument, match="without differential privacy"):
        ws.jobs.submit_training(spec)


def test_dp_student_trains_privately_on_soft_targets(ws):
    # The teacher saw 's', not 'few' or 'pool': DP-SGD covers the student's rows.
    version = ws.jobs.train(
        TrainSpec(
            dataset="few",
            base="student",
            model="private",
            config={"mode": "features", "epochs": 4, "lr": 1e-2, "teacher": "m@1"},
            privacy={"target_epsilon": 8.0},
        )
    )
    assert version.privacy is not None
    assert 0 < version.privacy["epsilon"] <= 8.0
    assert version.metrics["distillation"]["teacher"] == "m@1"


def test_loss_matches_hintons_formula():
    torch.manual_seed(0)
    logits, teacher_logits = torch.randn(6, 3), torch.randn(6, 3)
    labels = torch.tensor([0, 2, 1, NO_LABEL, NO_LABEL, 1])
    t, alpha = 3.0, 0.3
    packed = torch.cat([F.log_softmax(teacher_logits / t, -1), labels[:, None].float()], -1)
    got = distillation_loss(logits, packed, temperature=t, alpha=alpha, reduction="none")
    # The obvious oracle: PyTorch's KL divergence, row by row.
    for i in range(6):
        kl = F.kl_div(
            F.log_softmax(logits[i] / t, -1), F.softmax(teacher_logits[i] / t, -1), reduction="sum"
        )
        if labels[i] == NO_LABEL:
            expected = kl * t**2
        else:
            ce = F.cross_entropy(logits[i : i + 1], labels[i : i + 1])
            expected = alpha * kl * t**2 + (1 - alpha) * ce
        assert got[i] == pytest.approx(float(expected), rel=1e-5)
    mean = distillation_loss(logits, packed, temperature=t, alpha=alpha)
    assert float(mean) == pytest.approx(float(got.mean()), rel=1e-6)


def test_regression_loss_mixes_squared_errors_to_the_teacher_and_the_label():
    from aimass.training.distill import regression_distillation_loss

    student = torch.tensor([[1.0], [0.0], [2.0]])
    # (teacher, label, labelled): the last row is a transfer row, its label unused.
    packed = torch.tensor([[0.0, 3.0, 1.0], [1.0, -1.0, 1.0], [1.5, 9.0, 0.0]])
    got = regression_distillation_loss(student, packed, alpha=0.25, reduction="none")
    expected = [0.25 * 1 + 0.75 * 4, 0.25 * 1 + 0.75 * 1, 0.25]
    assert got.tolist() == pytest.approx(expected)
    assert float(regression_distillation_loss(student, packed, alpha=0.25)) == pytest.approx(
        sum(expected) / 3
    )


def test_a_regressor_distils_into_a_student_that_tracks_its_values(ws, tmp_path):
    few = regression_rows(40, seed=1)
    ws.datasets.import_file(write_jsonl(tmp_path / "rfew.jsonl", few), name="rfew")
    pool = [{"text": r["text"]} for r in regression_rows(400, seed=2)]
    ws.datasets.import_file(write_jsonl(tmp_path / "rpool.jsonl", pool), name="rpool")
    config = {**STUDENT, "task": "regression"}
    distilled = _train(ws, "rfew", "rdistilled", **config, teacher="r@1", unlabelled="rpool")
    hard = _train(ws, "rfew", "rhard", **config)
    texts = [r["text"] for r in regression_rows(200, seed=3)]  # held out from every set

    def values(ref):
        version = ws.models.get(ref)
        return load_predictor(ws.artifacts.resolve(version.uri), device="cpu").scores(texts)[:, 0]

    teacher = values("r@1")
    distance = {v.name: float(((values(v.ref) - teacher) ** 2).mean()) for v in (distilled, hard)}
    assert distance["rdistilled"] < 0.5 * distance["rhard"], distance
    record = distilled.metrics["distillation"]
    assert record["teacher"] == "r@1" and record["temperature"] is None
    assert record["transfer_rows"] == 400 and record["correlation"] > 0.5, record
    assert record["rmse_ratio"] == pytest.approx(record["student_rmse"] / record["teacher_rmse"])
    card = ws.models.card("rdistilled@1")
    assert "## Distilled from" in card and "test RMSE" in card and "Temperature" not in card


@pytest.fixture(scope="module")
def pipelines(ws):
    """'both': an ensemble of m@1 and its copy m2@1 (the student's classes); 'renamed':
    the same with its labels mapped to good/bad (another label set)."""
    register_copy(ws, "m@1", "m2", config_digest="m2")
    ensemble = {"name": "both", "type": "ensemble", "models": ["m@1", "m2@1"]}
    ws.pipelines.create({"steps": [ensemble]}, name="both")
    names = {"name": "names", "type": "labels", "map": {"pos": "good", "neg": "bad"}}
    renamed = {"steps": [{**ensemble, "next": "names"}, names]}
    ws.pipelines.create(renamed, name="renamed")


def test_a_pipeline_teaches_a_student_that_follows_it(ws, pipelines):
    distilled = _train(
        ws, "few", "from-pipeline", **STUDENT, teacher="pipeline:both", unlabelled="pool"
    )
    texts = [r["text"] for r in sentiment_rows(200, seed=3)]
    agreement = float((_predicted(ws, distilled.ref, texts) == _predicted(ws, "m@1", texts)).mean())
    assert agreement >= 0.9, agreement
    record = distilled.metrics["distillation"]
    assert record["teacher"] == "pipeline:both@1"  # pinned when submitted
    assert record["teacher_digest"] == ws.pipelines.get("both@1").digest
    assert distilled.lineage.config["teacher"] == "pipeline:both@1"


def test_a_pipeline_teacher_is_checked_like_a_model(ws, pipelines):
    with pytest.raises(NotFound, match=r"--teacher pipeline:nope.*pipelines list"):
        _submit(ws, teacher="pipeline:nope")
    with pytest.raises(InvalidArgument, match="same label set"):
        _submit(ws, teacher="pipeline:renamed")
    # Its own labels are fine (queued, then cancelled: checked, not trained).
    queued = _submit(ws, dataset="other", teacher="pipeline:renamed@1")
    assert queued.status == "queued"
    ws.jobs.cancel(queued.id)
    with pytest.raises(InvalidArgument, match="teaches classifiers only"):
        _submit(ws, dataset="rs", teacher="pipeline:both", task="regression")
    spec = TrainSpec(
        dataset="s",
        base="student",
        model="x",
        config={**STUDENT, "teacher": "pipeline:both"},
        privacy={"target_epsilon": 8.0},
    )
    with pytest.raises(InvalidArgument, match="its model m@1 was trained on s@1 without"):
        ws.jobs.submit_training(spec)


def test_cli_distills_in_local_mode(ws, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    args = [
        "distill",
        "--teacher",
        "m@production",
        "--student",
        "student",
        "--dataset",
        "few",
        "--unlabelled",
        "pool",
        "--name",
        "cli-student",
        "--epochs",
        "1",
        "--temperature",
        "4",
        "--alpha",
        "0.7",
    ]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["metrics"]["distillation"]["teacher"] == "m@1"
    assert out["lineage"]["config"]["temperature"] == 4.0
    assert out["lineage"]["config"]["distill_alpha"] == 0.7
    # Identical inputs (the alias pins to the same version): reused, and the summary shows.
    again = runner.invoke(app, [*args, "--reuse"])
    assert again.exit_code == 0, again.output
    assert "distilled from m@1" in again.output
    assert "registered cli-student@1" in again.output


def test_cli_distills_a_regressor_and_refuses_a_temperature_for_it(ws, monkeypatch):
    monkeypatch.setenv("AIMASS_HOME", str(ws.settings.home))
    monkeypatch.setenv("AIMASS_DEVICE", "cpu")
    args = ["distill", "--task", "regression", "--teacher", "r@1", "--student", "student"]
    args += ["--dataset", "rs", "--name", "cli-regressor", "--epochs", "1"]
    runner = CliRunner()
    refused = runner.invoke(app, [*args, "--temperature", "2"])
    assert refused.exit_code != 0
    assert "does not apply to regression" in refused.output
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "distilled from r@1 (alpha 0.5;" in result.output
    assert "test RMSE: student" in result.output and "correlation with the teacher" in result.output


def test_teacher_and_student_are_timed_in_alternating_rounds():
    calls = []

    def runner(name):
        return lambda texts: calls.append((name, len(texts)))

    timed = timed_against_teacher(runner("t"), runner("s"), ["a"] * 20, rounds=3)
    assert calls == [("t", 8), ("s", 8)] + [(n, 20) for n in ("t", "s", "s", "t", "t", "s")]
    assert (timed["speed_rows"], timed["speed_rounds"]) == (20, 3)
    assert timed["speed_ratio"] > 0 and timed["student_rows_per_second"] > 0
