"""Pytest plugins that start the real services some tests run against (loaded by conftest)."""
