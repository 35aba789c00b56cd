"""Typed settings, read from ``AIMASS_*`` environment variables once at the edge.

There is no module-level instance: the CLI entry, ``create_app`` and the job
runner call :func:`load_settings` and pass the result down. Libraries below
take plain arguments.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["LIMIT_NAMES", "Settings", "check_limit", "load_settings", "parse_size"]

# The limits ``limit_overrides`` may set, per kind of subject, with their value types.
_OVERRIDABLE: dict[str, dict[str, type]] = {
    "key": {"requests_per_key": str, "max_predicts_per_key": int, "max_streams_per_key": int},
    "project": {"max_active_jobs_per_project": int, "max_epochs": int, "max_job_seconds": int},
}


_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "kib": 2**10,
    "m": 10**6,
    "mb": 10**6,
    "mib": 2**20,
    "g": 10**9,
    "gb": 10**9,
    "gib": 2**30,
    "t": 10**12,
    "tb": 10**12,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value: str | int) -> int:
    """Bytes from ``123``, ``500MB``, ``20GiB`` (ValueError naming the accepted forms)."""
    if isinstance(value, int):
        number, unit = float(value), ""
    else:
        match = _SIZE.match(value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(
                f"{value!r} is not a size; write bytes (1000000000) or a number with a unit: "
                "500MB, 20GB, 20GiB"
            )
        number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"a size must be positive, got {value!r}")
    return size


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
        max_scratch_parameters: Largest randomly initialised base ``bases scratch``
            creates, in parameters, counted before its weights exist.
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
        commercial_use_only: Train only from bases whose license allows commercial
            use (``AIMASS_COMMERCIAL_USE_ONLY``): a training job from a base whose
            provenance says ``commercial_use: false`` (``m3e-small``, and every
            base registered from or cut from it) is refused at submission,
            training without a base takes the commercially usable recipe, and a
            model made from such weights (its base's or a teacher's) is not served.
        encrypt_at_rest: Encrypt dataset versions, bundles and training checkpoints
            with AES-256-GCM (a data key per file, wrapped by the master key). Files
            written before, or with this off, stay readable.
        encrypt_metadata: Make a new SQLite metadata database encrypted (SQLCipher);
            unset: as ``encrypt_at_rest``. ``aimass db encrypt`` converts an old one.
        master_key: The master key itself (base64 of 32 bytes, or a keyring JSON
            ``{"active": ID, "keys": {ID: BASE64}}``), e.g. from a secret manager.
        master_key_command: A command that prints the master key (or keyring) on
            stdout: an external KMS or secret-manager client. Run without a shell.
        master_key_file: The master keyring file (0600), used when neither of the
            above is set; created on first use. Default ``{home}/keys/master.json``:
            keep it on another volume (or use the two above) for the encryption to
            protect against a copy of the data directory.
        signing_key_file: The Ed25519 key that signs every registered bundle (0600,
            PEM; created on first use). Default ``{home}/keys/signing.pem``.
        trusted_signing_keys: Public keys (PEM files) whose bundle signatures are
            accepted besides this home's own signing key.
        require_signatures: Refuse to load a registered bundle whose signature is
            missing, invalid or from an untrusted key.
        plaintext_dir: Where decrypted copies of artifacts live while the process uses
            them (removed at exit, and by the next start after a crash). Default: a
            private directory in memory-backed ``/dev/shm`` when it exists, else the
            system temporary directory.
        batch_max_size: Most inputs the micro-batcher runs in one forward pass.
        batch_max_wait_ms: Longest a request waits for companions before its batch runs
            (0: a free model takes whatever is queued at once).
        batch_max_tokens: Token budget of one batch (padded length × inputs), which
            buckets batches by sequence length. Default (unset): 256 on CPU (larger
            batches gain nothing there and lengthen the tail latency), 8192 on CUDA.
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
        console_session_hours: How long a console sign-in lasts before the browser must
            sign in again with its key.
        auth_cache_seconds: How long a verified API key is trusted without a database
            read. Revoking through the server takes effect at once; revoking from
            another process (``aimass keys revoke`` on the same home) within this time.
        resolve_cache_seconds: How long the server reuses the version an alias pointed
            to. Alias moves through the server take effect at once; moves from another
            process within this time.
        max_anonymous_body_bytes: Largest body read from a request that is not (yet)
            authenticated: the public paths, and anything whose key is missing or wrong.
            Bodies sent to authenticated routes are read only after the key checks out.
        auth_failures_per_address: Failed authentications one client address may make
            (``COUNT/PERIOD`` in the ``limits`` notation, e.g. ``20/minute``); past it the
            address gets 429 until the window frees up.
        auth_failures_per_key: Failed authentications naming one key id (a guessed
            secret for a known id), counted across all addresses.
        requests_per_key: Requests one API key may make (``COUNT/PERIOD``), 429 past it.
        shared_rate_limits: Count the rate limits above in the metadata database, shared
            by the servers on it (each would allow the whole rate), at one database write
            per counted request. Off: each process counts in memory.
        shared_concurrency_limits: Count each key's calls in flight across the servers
            on the metadata database (leases; the totals stay per server).
        max_predicts_per_key: Predict calls one key may have in flight at once (they are
            short, and concurrent calls are what the micro-batcher batches).
        max_predicts: Predict calls in flight at once, all keys together.
        max_streams_per_key: Generate calls (streamed or not) one key may have running
            at once; each holds a decoding thread until its last token.
        max_streams: Generate calls running at once, all keys together.
        max_active_jobs_per_project: Queued plus running jobs one project may hold; a
            submission past it is 429 until one finishes.
        max_epochs: Most epochs one training job may ask for.
        max_job_seconds: Longest a job may run; past it the server stops it as a cancel
            request would (checked every 10 % of the limit, at most every 30 s).
        max_request_chars: Most characters of input text one predict or generate call may
            carry (all inputs together), checked before anything is tokenized.
        max_dataset_bytes: Largest dataset, counted as decoded text (for Parquet, the
            uncompressed size from its metadata and then from each decoded batch).
        max_decompression_ratio: Most a Parquet file may expand when decoded (decoded
            bytes ÷ file bytes, allowed at least 1 MiB); a file past it is refused as a
            decompression bomb before it is decoded in full.
        limit_overrides: Other values of the per-key and per-project limits for named
            keys and projects (JSON): ``{"key:KEYID": {"requests_per_key": "6000/minute",
            "max_predicts_per_key": 256, "max_streams_per_key": 16}, "project:NAME":
            {"max_active_jobs_per_project": 32, "max_epochs": 500, "max_job_seconds": 7200}}``.
            A value stored with the key or project (``aimass keys update --limit``,
            ``aimass projects set-limits``) takes precedence over its override.
        bind_host: The address the server listens on (``aimass serve --host``); beyond
            loopback ``/metrics`` needs the metrics token or the ``metrics`` scope.
        metrics_token: The bearer token Prometheus sends to ``/metrics``
            (``AIMASS_METRICS_TOKEN``); compared in constant time.
        metrics_token_file: A file holding the metrics token, so it need not sit in the
            environment (``AIMASS_METRICS_TOKEN_FILE``); read once, when settings are read.
        metrics_tenant_labels: Serve per-project and per-model series (the ``project``
            and ``model`` labels) to the metrics token and all-projects admin keys;
            ``False`` sums them away for every scrape.
        tls_cert: PEM certificate (chain) ``aimass serve`` serves HTTPS with.
        tls_key: Its private key (a file readable by its owner only).
        ca_bundle: PEM certificates the CLI trusts for an ``https://`` server URL (a
            self-signed server certificate, a private CA); default: the system's.
        database_url: Another name for ``store_uri`` (``AIMASS_DATABASE_URL``), the one
            PostgreSQL users expect: ``postgresql+psycopg://USER:PASSWORD@HOST/DB``. Setting
            both to different values is refused.
        artifact_url: Object storage for artifacts, ``s3://BUCKET/PREFIX``; the artifact
            root becomes this process's local cache (digests checked on download).
            Credentials: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or the AWS config.
        artifact_cache_max_bytes: With ``artifact_url``, keep the local cache (the artifact
            root) under this size by removing the artifacts used least recently (each
            one downloaded again, verified, when next read); bytes or a number with a
            unit (``50GB``, ``20GiB``). Unset: the cache keeps everything.
        s3_endpoint_url: The S3 endpoint (``http://127.0.0.1:9000`` for a local server);
            default: AWS's own for ``s3_region``.
        s3_region: The region of the bucket.
        executor: Where jobs run: ``threads`` (worker threads of the server process) or
            ``ray`` (each job a Ray task on the cluster at ``ray_address``).
        ray_address: The Ray cluster to use (``ray://`` or ``HOST:PORT``, as
            ``ray.init`` takes it); unset starts a local Ray on this machine.
        ray_namespace: The Ray namespace aimass's tasks, actors and deployments live in.
        serve_with: How model versions are served: ``runners`` (runner processes of
            this server, ``serve_runners`` each) or ``ray`` (Ray Serve replicas that
            scale between ``ray_min_replicas`` and ``ray_max_replicas`` on queue depth).
        serve_backend: What runs a served classification, regression or NER model's forward
            pass: ``auto`` (the backend its ``aimass models optimize`` parity run
            recommends: ONNX Runtime int8 when within the gate, else the fp32 graph,
            else PyTorch; PyTorch for versions never optimised), ``torch``, ``onnx``
            or ``onnx-int8`` (the last two need the version's graphs).
        ray_min_replicas: Fewest Ray Serve replicas of a served model version.
        ray_max_replicas: Most Ray Serve replicas of a served model version.
        ray_target_ongoing_requests: Requests in flight per replica that Ray Serve's
            autoscaler aims for (more scales up, fewer scales down).
        ray_replica_cpus: CPUs Ray reserves for each Ray Serve replica; fractions
            pack small models several to a core. Default: ``serve_runner_threads``,
            or 1 where that is 0.
        server_secret: The secret API-key hashes, the audit chain and console sessions
            are keyed with (64 hex digits), e.g. from a secret manager. Servers that share
            one database must share it. Default: read from ``server_secret_file``.
        server_secret_file: The file holding it (0600), created on first use. Default
            ``{home}/server.secret``.
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
    max_scratch_parameters: int = Field(default=1_000_000_000, gt=0)
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
    commercial_use_only: bool = False
    encrypt_at_rest: bool = True
    encrypt_metadata: bool | None = None
    master_key: SecretStr | None = None
    master_key_command: str | None = None
    master_key_file: Path | None = None
    signing_key_file: Path | None = None
    trusted_signing_keys: list[Path] = Field(default_factory=list)
    require_signatures: bool = True
    plaintext_dir: Path | None = None
    batch_max_size: int = Field(default=32, gt=0)
    batch_max_wait_ms: float = Field(default=0.0, ge=0)
    batch_max_tokens: int | None = Field(default=None, gt=0)
    serve_runners: int | None = Field(default=None, ge=0, le=64)
    serve_runner_threads: int = Field(default=0, ge=0)
    serve_runner_timeout_seconds: float = Field(default=600.0, gt=0)
    warm_models: list[str] = Field(default_factory=list)
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    console_session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    resolve_cache_seconds: float = Field(default=2.0, ge=0)
    max_anonymous_body_bytes: int = Field(default=64 * 1024, gt=0)
    auth_failures_per_address: str = "20/minute"
    auth_failures_per_key: str = "10/minute"
    requests_per_key: str = "1200/minute"
    shared_rate_limits: bool = False
    shared_concurrency_limits: bool = False
    max_predicts_per_key: int = Field(default=64, gt=0)
    max_predicts: int = Field(default=256, gt=0)
    max_streams_per_key: int = Field(default=4, gt=0)
    max_streams: int = Field(default=16, gt=0)
    max_active_jobs_per_project: int = Field(default=8, gt=0)
    max_epochs: int = Field(default=100, gt=0)
    max_job_seconds: int = Field(default=24 * 3600, gt=0)
    max_request_chars: int = Field(default=2_000_000, gt=0)
    max_dataset_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    max_decompression_ratio: float = Field(default=100.0, gt=1)
    limit_overrides: dict[str, dict[str, int | str]] = Field(default_factory=dict)
    bind_host: str = "127.0.0.1"
    metrics_token: SecretStr | None = None
    metrics_token_file: Path | None = None
    metrics_tenant_labels: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ca_bundle: Path | None = None
    database_url: str | None = None
    artifact_url: str | None = None
    artifact_cache_max_bytes: int | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    executor: Literal["threads", "ray"] = "threads"
    ray_address: str | None = None
    ray_namespace: str = "aimass"
    serve_with: Literal["runners", "ray"] = "runners"
    serve_backend: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    ray_min_replicas: int = Field(default=1, ge=1, le=64)
    ray_max_replicas: int = Field(default=2, ge=1, le=64)
    ray_target_ongoing_requests: float = Field(default=8.0, gt=0)
    ray_replica_cpus: float | None = Field(default=None, gt=0, le=256)
    server_secret: SecretStr | None = None
    server_secret_file: Path | None = None

    @field_validator("auth_failures_per_address", "auth_failures_per_key", "requests_per_key")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a rate; write COUNT/PERIOD, e.g. '20/minute' or '5/second'"
            ) from exc
        return value

    @field_validator("limit_overrides")
    @classmethod
    def _overrides(cls, value: dict[str, dict[str, int | str]]) -> dict[str, dict[str, int | str]]:
        for subject, limits in value.items():
            kind = subject.split(":", 1)[0]
            allowed = _OVERRIDABLE.get(kind)
            if allowed is None or ":" not in subject:
                raise ValueError(
                    f"limit_overrides key {subject!r} must be 'key:KEYID' or 'project:NAME'"
                )
            for name, limit in limits.items():
                if name not in allowed:
                    raise ValueError(
                        f"{name!r} cannot be set for {subject!r}; for a {kind}: "
                        f"{', '.join(sorted(allowed))}"
                    )
                if allowed[name] is str:
                    cls._rate(str(limit))
                elif not isinstance(limit, int) or limit < 1:
                    raise ValueError(f"{subject} {name} must be a whole number >= 1, got {limit!r}")
        return value

    def limit(self, name: str, subject: str) -> Any:
        """The value of limit ``name`` for ``subject`` (``key:ID``, ``project:NAME``):
        its entry in ``limit_overrides``, else the setting."""
        return self.limit_overrides.get(subject, {}).get(name, getattr(self, name))

    @model_validator(mode="after")
    def _read_metrics_token(self) -> Settings:
        if self.metrics_token_file is None:
            return self
        if self.metrics_token is not None:
            raise ValueError("set AIMASS_METRICS_TOKEN or AIMASS_METRICS_TOKEN_FILE, not both")
        path = self.metrics_token_file.expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read the metrics token file {path}: {exc}") from exc
        if not token:
            raise ValueError(f"the metrics token file {path} is empty")
        self.metrics_token = SecretStr(token)
        return self

    @field_validator("artifact_url")
    @classmethod
    def _artifact_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        bucket = value.removeprefix("s3://").split("/", 1)[0]
        if not value.startswith("s3://") or not bucket:
            raise ValueError(
                f"artifact_url {value!r} is not an object-storage URL; write s3://BUCKET/PREFIX"
            )
        return value.rstrip("/")

    @field_validator("artifact_cache_max_bytes", mode="before")
    @classmethod
    def _cache_size(cls, value: object) -> int | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(f"artifact_cache_max_bytes {value!r} is not a size such as 50GB")
        return parse_size(value)

    @model_validator(mode="after")
    def _cache_needs_a_bucket(self) -> Settings:
        if self.artifact_cache_max_bytes is not None and self.artifact_url is None:
            raise ValueError(
                "AIMASS_ARTIFACT_CACHE_MAX_BYTES bounds the local cache of AIMASS_ARTIFACT_URL; "
                "without object storage the artifact root is the only copy of every artifact "
                "and nothing in it may be removed: unset it, or set AIMASS_ARTIFACT_URL"
            )
        return self

    @field_validator("server_secret")
    @classmethod
    def _server_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[0-9a-f]{64}", value.get_secret_value()):
            raise ValueError(
                "server_secret must be 64 hex digits (32 random bytes), e.g. the output of "
                "'openssl rand -hex 32'"
            )
        return value

    @model_validator(mode="after")
    def _replica_range(self) -> Settings:
        if self.ray_min_replicas > self.ray_max_replicas:
            raise ValueError(
                f"ray_min_replicas ({self.ray_min_replicas}) is above ray_max_replicas "
                f"({self.ray_max_replicas}); set the minimum at or below the maximum"
            )
        return self

    @model_validator(mode="after")
    def _fill_paths(self) -> Settings:
        self.home = self.home.expanduser()
        if self.database_url is not None:
            if self.store_uri is not None and self.store_uri != self.database_url:
                raise ValueError(
                    "AIMASS_DATABASE_URL and AIMASS_STORE_URI name different databases; "
                    "set one of them"
                )
            self.store_uri = self.database_url
        if self.artifact_root is None:
            self.artifact_root = self.home / "artifacts"
        if self.store_uri is None:
            self.store_uri = f"sqlite:///{self.home / 'aimass.db'}"
        if self.master_key_file is None:
            self.master_key_file = self.home / "keys" / "master.json"
        if self.signing_key_file is None:
            self.signing_key_file = self.home / "keys" / "signing.pem"
        if self.server_secret_file is None:
            self.server_secret_file = self.home / "server.secret"
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


LIMIT_NAMES: dict[str, tuple[str, ...]] = {k: tuple(sorted(v)) for k, v in _OVERRIDABLE.items()}
"""The limits a key (``key``) or a project (``project``) may carry, by kind."""


def check_limit(kind: str, name: str, value: object) -> int | str:
    """``value`` as limit ``name`` of a ``kind`` (``key`` or ``project``), normalised.

    Rates (``requests_per_key``) are ``COUNT/PERIOD`` strings; the others whole
    numbers >= 1 (a string of digits is taken as one). Raises ValueError naming
    the limit, the value and the fix.
    """
    allowed = _OVERRIDABLE.get(kind, {})
    if name not in allowed:
        raise ValueError(
            f"{name!r} is not a limit a {kind} can carry; use one of {', '.join(sorted(allowed))}"
        )
    if allowed[name] is str:
        return Settings._rate(str(value))
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{kind} limit {name} must be a whole number >= 1, got {value!r}")
    return value


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, with explicit overrides on top."""
    return Settings(**overrides)
