import pytest

from aimass.jobs.evaluate import EvaluateSpec

# Small but complete: every section runs (memory measured once, in the shared report).
QUICK = {
    "min_group_size": 5,
    "robustness_sample": 40,
    "latency_runs": 4,
    "batch_runs": 2,
    "batch_size": 8,
    "n_boot": 50,
    "explain_examples": 2,
}


@pytest.fixture(scope="package")
def ws(trust_workspace):
    """The shared workspace with the tiny classifier 'm' (dataset 's') and regressor 'r' ('rs')."""
    return trust_workspace


@pytest.fixture(scope="package")
def report(ws):
    """The classification report of m@1 on s (test split), grouped by 'group'."""
    spec = EvaluateSpec(model="m@1", dataset="s", group_field="group", options=QUICK)
    return ws.jobs.evaluate(spec)
