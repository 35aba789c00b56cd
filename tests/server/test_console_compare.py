"""Two versions of a model side by side in the console: every metric with its difference,
the training settings that changed (the rest folded), lineage and privacy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from aimass.entities import Lineage, ModelVersion
from aimass.server.console.compare import compare_versions
from aimass.settings import Settings
from aimass.workspace import Workspace
from tests.server.conftest import trained_home  # noqa: F401
from tests.server.test_console import admin_key, console, external, sign_in  # noqa: F401


def version(number, *, config, metrics, privacy=None, aliases=()):
    return ModelVersion(
        project="default",
        name="m",
        version=number,
        task="classification",
        digest=f"{number:064d}",
        uri=f"artifacts:bundles/{number}",
        metrics=metrics,
        lineage=Lineage("d@1", "0" * 64, "tiny@1", "1" * 64, f"job{number}", "c", config, "0.1"),
        privacy=privacy,
        aliases=tuple(aliases),
        created_at=datetime(2026, 12, number, tzinfo=UTC),
    )


def test_the_comparison_pairs_every_metric_and_splits_settings_by_change():
    a = version(1, config={"lr": 5e-5, "epochs": 2, "seed": 0}, metrics={"test": {"f1": 0.5}})
    b = version(
        2,
        config={"lr": 1e-4, "epochs": 2, "seed": 0, "lora_rank": 8},
        metrics={"test": {"f1": 0.75, "accuracy": 0.8}, "validation": {"f1": 0.7}},
        privacy={"epsilon": 7.99, "delta": 1e-5, "phases": [{"steps": 3}]},
        aliases=("production",),
    )
    diff = compare_versions(a, b)
    assert diff.metrics == [
        ("test", "accuracy", None, 0.8, None),
        ("test", "f1", 0.5, 0.75, 0.25),
        ("validation", "f1", None, 0.7, None),
    ]
    assert diff.changed == [("lora_rank", "-", "8"), ("lr", "5e-05", "0.0001")]
    assert diff.same == [("epochs", "2"), ("seed", "0")]
    assert ("aliases", "-", "production") in diff.record
    assert ("job", "job1", "job2") in diff.record
    # Scalars of the privacy record only: the per-phase table stays on the model page.
    assert diff.privacy == [("delta", "-", "1e-05"), ("epsilon", "-", "7.99")]


def test_the_compare_page_shows_two_versions_from_the_model_page(console, admin_key, trained_home):  # noqa: F811
    ws = Workspace(Settings(home=trained_home, device="cpu"))
    try:
        first = ws.models.get("sentiment@1")
        changed = dataclasses.replace(first.lineage, config={**first.lineage.config, "lr": 0.5})
        ws.store.registry.create_version(
            "default",
            "compared",
            task=first.task,
            digest=first.digest,
            uri=first.uri,
            metrics=first.metrics,
            lineage=first.lineage,
            config_digest="compare-1",
        )
        ws.store.registry.create_version(
            "default",
            "compared",
            task=first.task,
            digest=first.digest,
            uri=first.uri,
            metrics={**first.metrics, "test": {**first.metrics["test"], "accuracy": 0.25}},
            lineage=changed,
            config_digest="compare-2",
        )
    finally:
        ws.close()
    sign_in(console, admin_key)
    model_page = console.get("/console/p/default/models/compared")
    assert 'action="/console/p/default/models/compared/compare"' in model_page.text
    page = console.get("/console/p/default/models/compared/compare")  # the two newest
    assert page.status_code == 200 and external(page.text) == []
    assert "v1 and v2" in page.text
    accuracy = first.metrics["test"]["accuracy"]
    assert f"{0.25 - accuracy:+.4f}" in page.text
    assert "<td>lr</td>" in page.text and "0.5" in page.text
    assert "settings the same in both" in page.text
    assert console.get("/console/p/default/models/compared/compare?a=1&b=9").status_code == 404
    assert console.get("/console/p/default/models/nope/compare").status_code == 404
