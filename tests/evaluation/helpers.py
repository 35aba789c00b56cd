"""Report contexts over fixed predictions, so section numbers can be checked by hand."""

import numpy as np

from aimass.evaluation import EvaluationData, ModelUnderTest, ReportContext, ReportOptions


def fixed_model(scores, *, task="classification", labels=("neg", "pos")):
    """A model whose scores are given per row; texts are 'row-<i>'."""
    scores = np.asarray(scores, dtype=np.float64)

    def score(texts):
        return scores[[int(t.split("-")[1]) for t in texts]]

    return ModelUnderTest(
        name="fixed",
        version=1,
        digest="0" * 64,
        task=task,
        architecture="test",
        labels=tuple(labels) if task == "classification" else (),
        score=score,
        predict=lambda texts: score(texts).tolist(),
    )


def fixed_context(
    scores, labels, groups=None, *, task="classification", class_names=("neg", "pos"), **options
):
    model = fixed_model(scores, task=task, labels=class_names)
    data = EvaluationData(
        name="d",
        version=1,
        digest="1" * 64,
        split="test",
        texts=[f"row-{i}" for i in range(len(labels))],
        labels=list(labels),
        group_field=None if groups is None else "g",
        groups=groups,
        fields=("g",),
    )
    return ReportContext(model, data, ReportOptions(**options))


def onehot(pred, classes=2):
    """Probabilities that put 0.9 on the predicted class."""
    out = np.full((len(pred), classes), 0.1 / (classes - 1))
    out[np.arange(len(pred)), pred] = 0.9
    return out
