"""CLI tests run in this process: what the CLI writes to temporary folders (downloaded
reports, which it leaves for the user to open) goes under the test's own folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _temporary_folder(private_tempdir):
    """Every CLI test gets :func:`tests.conftest.private_tempdir`."""
