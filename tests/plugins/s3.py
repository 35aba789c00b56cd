"""Fixtures for the s3 service (filled in by issue 16's work)."""
