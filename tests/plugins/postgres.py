"""Fixtures for the postgres service (filled in by issue 16's work)."""
