"""Fixtures for the ray_cluster service (filled in by issue 16's work)."""
