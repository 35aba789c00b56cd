"""The aimass SDK: ``Client`` and ``AsyncClient`` over the REST API.

Light on purpose: it imports httpx and pydantic, never torch, SQLAlchemy or
FastAPI (an import-linter contract and a test keep it so).
"""

from aimass.client._client import AsyncClient, Client

__all__ = ["AsyncClient", "Client"]
