"""Training without a base takes the dataset's recommended recipe (Chinese or not)."""

import dataclasses

import pytest

from aimass.errors import FailedPrecondition, InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.training import recipes as training_recipes
from aimass.training.recipes import Recipe, recommended_recipe
from tests.conftest import sentiment_rows, write_jsonl
from tests.packaged import fake_packaged_base

ZH = ["质量很好物流很快", "非常满意下次再来", "太差了再也不买", "客服态度恶劣退货"]


@pytest.fixture
def fake_recipes(monkeypatch, tmp_path, tiny_bert_dir):
    """The recipes on packaged tiny BERTs (the real bases are too big for a fast test);
    the commercial recipe's base is licensed for commercial use, the other is not."""
    fake_packaged_base(tmp_path / "site", tiny_bert_dir, monkeypatch, name="fake-zh")
    fake_packaged_base(
        tmp_path / "site",
        tiny_bert_dir,
        monkeypatch,
        name="fake-zh-research",
        license="research only",
        commercial_use=False,
    )
    recipes = {
        "zh": Recipe("zh", "fake-zh-research", {"mode": "finetune", "epochs": 1, "lr": 1e-3}, "zh"),
        "zh-commercial": Recipe(
            "zh-commercial", "fake-zh", {"mode": "finetune", "epochs": 1, "lr": 2e-3}, "zh-c"
        ),
        "en": Recipe("en", "fake-zh", {"mode": "features", "epochs": 2}, "en"),
    }
    monkeypatch.setattr(training_recipes, "RECIPES", recipes)


def _chinese_rows(n):
    return [
        {"text": ZH[i % 4] + "。" * (i % 3), "label": "pos" if i % 4 < 2 else "neg"}
        for i in range(n)
    ]


def test_the_script_share_is_recorded_on_import(workspace, tmp_path):
    zh, _ = workspace.datasets.import_file(
        write_jsonl(tmp_path / "zh.jsonl", _chinese_rows(40)), name="zh"
    )
    en, _ = workspace.datasets.import_file(
        write_jsonl(tmp_path / "en.jsonl", sentiment_rows(40)), name="en"
    )
    assert zh.stats["han_share"] == 1.0
    assert en.stats["han_share"] == 0.0


def test_chinese_data_without_a_base_trains_the_chinese_recipe(workspace, tmp_path, fake_recipes):
    workspace.datasets.import_file(write_jsonl(tmp_path / "zh.jsonl", _chinese_rows(40)), name="zh")
    spec = workspace.jobs.with_recipe(TrainSpec(dataset="zh", base=None, model="m"))
    assert spec.base == "fake-zh-research@1"
    assert spec.config == {"mode": "finetune", "epochs": 1, "lr": 1e-3}
    version = workspace.jobs.train(
        TrainSpec(dataset="zh", base=None, model="m", config={"epochs": 2})
    )
    assert version.lineage.base == "fake-zh-research@1"
    assert version.lineage.config["mode"] == "finetune"
    assert version.lineage.config["epochs"] == 2  # the caller's settings win over the recipe's


def test_english_data_takes_the_other_recipe_and_an_asked_mode_keeps_only_the_base(
    workspace, tmp_path, fake_recipes
):
    workspace.datasets.import_file(
        write_jsonl(tmp_path / "en.jsonl", sentiment_rows(40)), name="en"
    )
    spec = workspace.jobs.with_recipe(TrainSpec(dataset="en", base=None, model="m"))
    assert spec.config == {"mode": "features", "epochs": 2}
    asked = workspace.jobs.with_recipe(
        TrainSpec(dataset="en", base=None, model="m", config={"mode": "finetune"})
    )
    assert asked.base == "fake-zh@1" and asked.config == {"mode": "finetune"}
    given = TrainSpec(dataset="en", base="other", model="m")
    assert workspace.jobs.with_recipe(given) is given
    with pytest.raises(InvalidArgument, match="no recommended base"):
        workspace.jobs.with_recipe(
            TrainSpec(dataset="en", base=None, model="m", config={"task": "causal-lm"})
        )


def test_commercial_use_only_takes_the_commercial_recipe_and_refuses_other_bases(
    settings, tmp_path, fake_recipes
):
    from aimass.workspace import Workspace

    ws = Workspace(settings.model_copy(update={"commercial_use_only": True}))
    try:
        ws.datasets.import_file(write_jsonl(tmp_path / "zh.jsonl", _chinese_rows(40)), name="zh")
        spec = ws.jobs.with_recipe(TrainSpec(dataset="zh", base=None, model="m"))
        assert spec.base == "fake-zh@1"
        assert spec.config == {"mode": "finetune", "epochs": 1, "lr": 2e-3}
        ws.bases.import_("fake-zh-research")
        research = TrainSpec(dataset="zh", base="fake-zh-research", model="m")
        with pytest.raises(InvalidArgument, match="not licensed for commercial use") as refused:
            ws.jobs.submit_training(research)
        assert "research only" in str(refused.value)
        assert "AIMASS_COMMERCIAL_USE_ONLY" in str(refused.value)
        assert "without --base" in str(refused.value) and refused.value.details["field"] == "base"
        assert ws.jobs.list() == []  # nothing was queued
        # A base made from the non-commercial one inherits its terms: refused too.
        ws.bases.import_("fake-zh-research", name="copy")
        assert ws.bases.get("copy").provenance["commercial_use"] is False
        with pytest.raises(InvalidArgument, match="not licensed for commercial use"):
            ws.jobs.submit_training(TrainSpec(dataset="zh", base="copy", model="m"))
        version = ws.jobs.train(TrainSpec(dataset="zh", base=None, model="m"))
        assert version.lineage.base == "fake-zh@1"
    finally:
        ws.close()


def test_commercial_use_only_refuses_a_teacher_trained_from_a_research_base(
    workspace, settings, tmp_path, fake_recipes
):
    from aimass.workspace import Workspace

    workspace.datasets.import_file(write_jsonl(tmp_path / "zh.jsonl", _chinese_rows(40)), name="zh")
    teacher = workspace.jobs.train(TrainSpec(dataset="zh", base=None, model="teacher"))
    assert teacher.lineage.base == "fake-zh-research@1"
    workspace.close()
    ws = Workspace(settings.model_copy(update={"commercial_use_only": True}))
    try:
        ws.bases.import_("fake-zh")
        config = {"mode": "finetune", "epochs": 1, "teacher": "teacher@1"}
        student = TrainSpec(dataset="zh", base="fake-zh", model="student", config=config)
        with pytest.raises(
            InvalidArgument, match="teacher teacher@1's base fake-zh-research@1"
        ) as refused:
            ws.jobs.submit_training(student)
        assert refused.value.details["field"] == "teacher"
        assert "distil from a teacher trained from one" in str(refused.value)
        assert [j.kind for j in ws.jobs.list()] == ["train"]  # the teacher's job alone
    finally:
        ws.close()


def test_a_dataset_without_a_recorded_script_asks_for_a_base():
    with pytest.raises(InvalidArgument, match="--base m3e-small"):
        recommended_recipe({"text_chars": {"mean": 3, "max": 4}})
    assert recommended_recipe({"han_share": 0.31}).base == "m3e-small"
    assert recommended_recipe({"han_share": 0.05}).base == "minilm"
    assert recommended_recipe({"han_share": 0.31}, commercial_use=True).base == "gemma3"
    assert recommended_recipe({"han_share": 0.05}, commercial_use=True).base == "minilm"


def test_commercial_use_only_serves_no_model_made_from_research_weights(
    workspace, settings, tmp_path, fake_recipes
):
    """A model trained from a research base before the setting was on, and a student
    distilled from it onto a commercial base, are refused wherever they would be served;
    a model trained from the commercial base alone serves."""
    from aimass.jobs.batch import BatchPredictSpec
    from aimass.workspace import Workspace

    workspace.datasets.import_file(write_jsonl(tmp_path / "zh.jsonl", _chinese_rows(40)), name="zh")
    workspace.jobs.train(TrainSpec(dataset="zh", base=None, model="research"))
    workspace.bases.import_("fake-zh")
    config = {"mode": "finetune", "epochs": 1, "teacher": "research@1"}
    workspace.jobs.train(TrainSpec(dataset="zh", base="fake-zh", model="student", config=config))
    usable = TrainSpec(dataset="zh", base="fake-zh", model="usable", config={"epochs": 1})
    workspace.jobs.train(usable)
    workspace.close()
    ws = Workspace(settings.model_copy(update={"commercial_use_only": True}))
    try:
        with pytest.raises(FailedPrecondition, match="research@1 cannot be served") as refused:
            ws.serving.predict("research@1", ["很好"])
        message = str(refused.value)
        assert "research@1's base fake-zh-research@1 is not licensed" in message
        assert "research only" in message and "AIMASS_COMMERCIAL_USE_ONLY" in message
        with pytest.raises(
            FailedPrecondition,
            match="student@1's teacher research@1's base fake-zh-research@1 is not licensed",
        ):
            ws.serving.predict("student@1", ["很好"])
        with pytest.raises(FailedPrecondition, match="research@1 cannot be served"):
            ws.jobs.submit_batch_predict(
                BatchPredictSpec(model="research@1", dataset="zh", output="out")
            )
        assert [j.kind for j in ws.jobs.list()] == ["train"] * 3  # nothing queued
        assert len(ws.serving.predict("usable@1", ["很好", "太差"])) == 2
    finally:
        ws.close()


def test_a_model_whose_base_is_gone_cannot_be_checked(workspace, settings, tmp_path, fake_recipes):
    from aimass.workspace.licenses import restriction

    workspace.datasets.import_file(write_jsonl(tmp_path / "zh.jsonl", _chinese_rows(40)), name="zh")
    version = workspace.jobs.train(TrainSpec(dataset="zh", base=None, model="m"))
    orphan = dataclasses.replace(
        version, lineage=dataclasses.replace(version.lineage, base="gone@1")
    )
    found = restriction(workspace.store, "default", model=orphan)
    assert found is not None and found.terms is None and found.field == "base"
    assert (
        found.reason
        == "m@1's base gone@1 is no longer registered, so its license cannot be checked"
    )
