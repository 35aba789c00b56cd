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
