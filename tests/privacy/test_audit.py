"""Membership inference: the attack math against known cases, and the audit end to end."""

import numpy as np
import pytest

from aimass.errors import InvalidArgument
from aimass.jobs.train import TrainSpec
from aimass.privacy.audit import attack_metrics, dp_advantage_bound, membership_inference


def test_perfect_separation_and_pure_guessing():
    perfect = attack_metrics(np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0]))
    assert perfect.auc == 1.0 and perfect.tpr_at_1pct_fpr == 1.0 and perfect.advantage == 1.0
    same = attack_metrics(np.zeros(50), np.zeros(50))
    assert same.auc == 0.5 and same.tpr_at_1pct_fpr == 0.0 and same.advantage == 0.0


def test_auc_matches_scikit_learn_on_random_scores():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    members, non = rng.normal(0.3, 1, 400), rng.normal(0, 1, 400)
    ours = attack_metrics(members, non)
    labels = np.r_[np.ones(400), np.zeros(400)]
    assert ours.auc == pytest.approx(roc_auc_score(labels, np.r_[members, non]), abs=1e-4)


def test_calibration_removes_example_difficulty():
    # Losses differ wildly by example difficulty; membership lowers the loss by 0.1 only.
    rng = np.random.default_rng(1)
    difficulty = rng.exponential(2.0, 400)
    member, non = difficulty[:200] - 0.1, difficulty[200:]
    result = membership_inference(
        member, non, member_reference=difficulty[:200], non_member_reference=difficulty[200:]
    )
    assert result.attacks["calibrated"].auc == 1.0
    assert result.attacks["loss_threshold"].auc < 0.7


def test_bad_audit_inputs():
    with pytest.raises(InvalidArgument):
        attack_metrics(np.array([]), np.array([1.0]))
    with pytest.raises(InvalidArgument, match="finite"):
        attack_metrics(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(InvalidArgument, match="both"):
        membership_inference(np.ones(3), np.ones(3), member_reference=np.ones(3))


def test_dp_bound():
    assert dp_advantage_bound(0.0, 0.0) == 0.0
    assert dp_advantage_bound(1.0, 1e-5) == pytest.approx((np.e - 1) / (np.e + 1), abs=1e-4)
    assert dp_advantage_bound(100, 0) == 1.0


def test_audit_is_attached_and_shown(ready):
    version = ready.jobs.train(
        TrainSpec(
            dataset="s",
            base="tiny",
            model="m",
            config={"mode": "features", "epochs": 10, "lr": 1e-2},
            privacy={"target_epsilon": 8, "accountant": "rdp"},
        )
    )
    report = ready.reports.audit_privacy(version.ref, dataset="s", max_examples=40)
    assert report["members"] == report["non_members"] == 40
    assert set(report["attacks"]) == {"loss_threshold", "calibrated"}
    assert 0 <= report["attacks"]["loss_threshold"]["auc"] <= 1
    assert report["epsilon"] == version.privacy["epsilon"]
    [attachment] = ready.store.registry.attachments("default", _ref(version), kind="privacy-audit")
    assert attachment.summary["auc"] == report["attacks"]["loss_threshold"]["auc"]
    stored = ready.artifacts.resolve(attachment.uri).read_text()
    assert '"members": 40' in stored
    card = ready.models.card(version.ref)
    assert "privacy-audit" in card and "auc=" in card


def _ref(version):
    from aimass.refs import parse_ref

    return parse_ref(version.ref)


def test_audit_refuses_the_wrong_dataset(ready, tmp_path):
    from tests.conftest import sentiment_rows, write_jsonl

    version = ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="m", config={"mode": "features", "epochs": 2})
    )
    ready.datasets.import_file(
        write_jsonl(tmp_path / "o.jsonl", sentiment_rows(60, seed=3)), name="other"
    )
    with pytest.raises(InvalidArgument, match="trained on s@1"):
        ready.reports.audit_privacy(version.ref, dataset="other")
    assert ready.store.registry.attachments("default", _ref(version)) == []


def test_the_local_client_queues_the_audit_as_a_job_and_waits_for_it(ready):
    from aimass.workspace.local import LocalClient

    ready.jobs.train(
        TrainSpec(dataset="s", base="tiny", model="m", config={"mode": "features", "epochs": 2})
    )
    client = LocalClient(ready)
    job = client.jobs.submit_audit(model="m@1", dataset="s", max_examples=20, calibrated=False)
    assert job.status == "queued" and job.kind == "audit-privacy"
    done = client.jobs.wait(job.id)
    assert done.status == "succeeded", done.error
    assert done.result["report"]["members"] == 20
    assert [a.kind for a in client.models.attachments("m@1")] == ["privacy-audit"]
    with pytest.raises(InvalidArgument, match="at least 10"):
        client.jobs.submit_audit(model="m@1", dataset="s", max_examples=5)
