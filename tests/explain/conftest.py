import pytest

from tests.conftest import trained_workspace


@pytest.fixture(scope="package")
def ws(tmp_path_factory, tiny_bert_dir):
    """A workspace with the tiny classifier 'm' and regressor 'r' (trained once for the package)."""
    root = tmp_path_factory.mktemp("explain")
    workspace = trained_workspace(root / "home", tiny_bert_dir, root / "data", regression=True)
    yield workspace
    workspace.close()


@pytest.fixture(scope="package")
def predictor(ws):
    return ws.load("m")


@pytest.fixture(scope="package")
def regressor(ws):
    return ws.load("r")
