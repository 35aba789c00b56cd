"""The API's routers, thin: each route checks access, calls the workspace, converts."""

from aimass.server.routes import datasets, jobs, models, pipelines, projects, system

__all__ = ["datasets", "jobs", "models", "pipelines", "projects", "system"]
