"""Typed settings, read from ``AIMASS_*`` environment variables once at the edge.

There is no module-level instance: the CLI entry, ``create_app`` and the job
runner call :func:`load_settings` and pass the result down. Libraries below
take plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
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
        max_new_tokens: Most tokens one generate call may ask for (``max_new_tokens``
            above it is refused; the model's context may allow fewer).
        log_format: ``text`` for people, ``json`` for log shippers.
        url: A remote aimass server (``AIMASS_URL``); when set, the CLI talks to it
            through the SDK instead of working on the local home.
        api_key: The key the CLI and SDK send to ``url`` (``AIMASS_API_KEY``).
        job_workers: Jobs the server runs at once (worker threads).
        job_heartbeat_seconds: How often a running job marks itself alive.
        job_stale_seconds: A running job silent for this long is taken to be dead:
            it resumes from its last checkpoint, or is marked failed.
        max_body_bytes: Largest accepted request body.
        import_dirs: Directories whose files the server may import datasets and
            bases from, by path (``AIMASS_IMPORT_DIRS='["/data/in"]'``). Empty: none.
        allowed_hosts: ``Host`` header values the server answers (DNS-rebinding
            defence); loopback names are always allowed.
        allowed_origins: Browser ``Origin`` values allowed to call the API; a request
            with any other ``Origin`` is refused.
        protected_aliases: Aliases only a key with ``models:write`` on the model may move.
        batch_max_size: Most inputs the micro-batcher runs in one forward pass.
        batch_max_wait_ms: Longest a request waits for companions before its batch runs
            (0: a free model takes whatever is queued at once).
        batch_max_tokens: Token budget of one batch (padded length × inputs), which
            buckets batches by sequence length.
        serve_runners: Runner processes per served model version: each holds a copy
            of the weights and runs one batch at a time, apart from the server's
            event loop. 0 runs batches in a thread of the server process. Default
            (unset): 2 on CPU, 1 on CUDA.
        serve_runner_threads: Torch threads in each runner; 0 shares the cores out
            (cores ÷ runners, at least 1).
        serve_runner_timeout_seconds: Longest a runner may take to load its model or
            to answer one batch; past it the runner is killed (its callers get 503)
            and the next batch starts a new one.
        warm_models: Model versions loaded at server start (``NAME@ALIAS`` in the
            default project, or ``PROJECT/NAME@ALIAS``).
        auth_cache_seconds: How long a verified API key is trusted without a database
            read. Revoking through the server takes effect at once; revoking from
            another process (``aimass keys revoke`` on the same home) within this time.
        resolve_cache_seconds: How long the server reuses the version an alias pointed
            to. Alias moves through the server take effect at once; moves from another
            process within this time.
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
    max_new_tokens: int = Field(default=1024, gt=0, le=4096)
    log_format: Literal["text", "json"] = "text"
    url: str | None = None
    api_key: SecretStr | None = None
    job_workers: int = Field(default=1, ge=0, le=64)
    job_heartbeat_seconds: float = Field(default=5.0, gt=0)
    job_stale_seconds: float = Field(default=60.0, gt=0)
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    import_dirs: list[Path] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    protected_aliases: list[str] = Field(default_factory=lambda: ["production"])
    batch_max_size: int = Field(default=32, gt=0)
    batch_max_wait_ms: float = Field(default=0.0, ge=0)
    batch_max_tokens: int = Field(default=8192, gt=0)
    serve_runners: int | None = Field(default=None, ge=0, le=64)
    serve_runner_threads: int = Field(default=0, ge=0)
    serve_runner_timeout_seconds: float = Field(default=600.0, gt=0)
    warm_models: list[str] = Field(default_factory=list)
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    resolve_cache_seconds: float = Field(default=2.0, ge=0)

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


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)
