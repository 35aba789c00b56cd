"""The REST API server: ``create_app(settings)`` (FastAPI), run by ``aimass serve``."""

from aimass.server.app import UNAUTHENTICATED_PATHS, create_app, iter_routes

__all__ = ["UNAUTHENTICATED_PATHS", "create_app", "iter_routes"]
