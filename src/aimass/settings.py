"""Typed settings, read from ``AIMASS_*`` environment variables once at the edge.

There is no module-level instance: the CLI entry, ``create_app`` and the job
runner call :func:`load_settings` and pass the result down. Libraries below
take plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    """Every knob aimass reads from the environment (prefix ``AIMASS_``).

    Attributes:
        home: Root of the embedded default deployment (``AIMASS_HOME``,
            default ``~/.aimass``): the SQLite database and artifacts live here.
        store_uri: SQLAlchemy URL of the metadata store. Default
            ``sqlite:///{home}/aimass.db``; ``postgresql+psycopg://...`` at scale.
        artifact_root: Where datasets and model bundles are stored. Default
            ``{home}/artifacts``.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        num_threads: Torch intra-op threads; 0 keeps torch's default.
        max_row_bytes: Largest accepted dataset row, in bytes of its source text.
        max_text_chars: Longest accepted text field, in characters.
        model_cache_size: How many loaded models the serving cache keeps.
        max_predict_batch: Most inputs accepted by one predict call.
        max_explain_batch: Most inputs one call may ask explanations for (an
            explanation costs up to ~50 forward and backward passes).
        log_format: ``text`` for people, ``json`` for log shippers.
    """

    model_config = SettingsConfigDict(env_prefix="AIMASS_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path("~/.aimass").expanduser())
    store_uri: str | None = None
    artifact_root: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int = Field(default=0, ge=0)
    max_row_bytes: int = Field(default=1_000_000, gt=0)
    max_text_chars: int = Field(default=100_000, gt=0)
    model_cache_size: int = Field(default=4, gt=0)
    max_predict_batch: int = Field(default=256, gt=0)
    max_explain_batch: int = Field(default=16, gt=0)
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        self.home = self.home.expanduser()
        if self.artifact_root is None:
            self.artifact_root = self.home / "artifacts"
        if self.store_uri is None:
            self.store_uri = f"sqlite:///{self.home / 'aimass.db'}"
        return self

    @property
    def resolved_store_uri(self) -> str:
        """The store URI, never ``None`` after validation."""
        assert self.store_uri is not None
        return self.store_uri

    @property
    def resolved_artifact_root(self) -> Path:
        """The artifact root, never ``None`` after validation."""
        assert self.artifact_root is not None
        return self.artifact_root


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)  # type: ignore[arg-type]
