from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="package")
def ws(trust_workspace):
    """The shared workspace with the tiny classifier 'm' and regressor 'r'."""
    return trust_workspace


@pytest.fixture(scope="package")
def predictor(ws):
    return ws.serving.load("m")


@pytest.fixture(scope="package")
def regressor(ws):
    return ws.serving.load("r")


@contextmanager
def served(home: Path) -> Iterator[tuple[Any, str]]:
    """A test client of the server on ``home`` (batches in process) and its admin key."""
    from fastapi.testclient import TestClient

    from aimass.server import create_app
    from tests.server.conftest import serve_settings

    app = create_app(serve_settings(home), job_workers=0)
    with TestClient(app, base_url="http://localhost") as client:
        yield client, (home / "admin.key").read_text().strip()  # written at the first start


def predicted_over_http(client: Any, key: str, model: str, text: str, explain: str) -> dict:
    """The one prediction (with its explanation) the API returns for ``text``."""
    from tests.server.test_api import P

    body = {"inputs": [text], "explain": explain}
    r = client.post(
        f"{P}/models/{model}:predict", headers={"Authorization": f"Bearer {key}"}, json=body
    )
    assert r.status_code == 200, r.text
    (prediction,) = r.json()["predictions"]
    return prediction


def playground(client: Any, key: str, model: str, text: str, explain: str) -> str:
    """The console playground's page after predicting ``text`` with an explanation."""
    from tests.server.test_console import csrf_of, sign_in

    sign_in(client, key)
    form = {"model": model, "texts": text, "explain": explain}
    form["csrf"] = csrf_of(client, "/console/p/default/playground")
    page = client.post("/console/p/default/playground", data=form)
    assert page.status_code == 200, page.text[:500]
    return str(page.text)


def assert_adds_up(entity: dict) -> None:
    """Integrated gradients' completeness for one explained entity, fill or generation:
    its token scores add up to f(input) − f(baseline) within the convergence delta,
    which is small, and special tokens score 0."""
    details = entity["details"]
    total = sum(t["score"] for t in entity["tokens"])
    assert total == pytest.approx(
        details["output_at_input"] - details["output_at_baseline"],
        abs=abs(details["convergence_delta"]) + 1e-3,
    )
    assert abs(details["convergence_delta"]) < 0.05
    assert all(t["score"] == 0 for t in entity["tokens"] if t["special"])
