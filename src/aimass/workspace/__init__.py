"""The workspace: one aimass home (store + artifacts), and its services by namespace.

``Workspace(settings)`` opens the metadata store and artifact root named by the
settings (lazily) and groups the platform's operations in services, one per kind
of thing, each with the policy it owns:

* ``ws.datasets``: import (file, request body, sample), resolve, list;
* ``ws.bases``: import, register a trained model as a base, tokenizers;
* ``ws.models``: the registry: resolve, aliases and who may move them, cards,
  export, import, signature checks;
* ``ws.pipelines``: versioned pipelines of models and built-in steps, their models
  pinned at create time; aliases; running one in process;
* ``ws.jobs``: submit, follow, cancel and run training, evaluation and batch
  prediction; the worker threads;
* ``ws.serving``: predictors and the limits of a predict, explain or generate call;
* ``ws.reports``: evaluation reports and the privacy audit;
* ``ws.projects``; and the security services ``ws.keys``, ``ws.limits`` and
  ``ws.audit``.

The REST routes, :class:`~aimass.workspace.local.LocalClient` (the CLI's local
mode) and ``aimass.load`` call these services; nobody reaches into the store
around them.
"""

from __future__ import annotations

import hashlib
import hmac

from aimass.artifacts.storage import ArtifactStore, private_dir
from aimass.settings import Settings
from aimass.store import Store
from aimass.workspace.access import Principal, read_or_create_secret
from aimass.workspace.audit import AuditTrail
from aimass.workspace.bases import BaseService
from aimass.workspace.datasets import DatasetService
from aimass.workspace.jobs import JobService
from aimass.workspace.keys import KeyRing
from aimass.workspace.limits import Limits
from aimass.workspace.models import ModelService
from aimass.workspace.pipelines import PipelineService
from aimass.workspace.projects import ProjectService
from aimass.workspace.reports import ReportService
from aimass.workspace.secrets import open_artifact_store
from aimass.workspace.serving import ServingService

__all__ = ["Principal", "Workspace"]

SECRET_FILE = "server.secret"  # noqa: S105 (a file name, not a secret)


class Workspace:
    """Local access to one aimass home: the store, the artifacts and the services.

    Args:
        settings: Where the store and artifacts live, limits, device.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._artifacts: ArtifactStore | None = None
        self._secret: bytes | None = None
        self._keys: KeyRing | None = None
        self._limits: Limits | None = None
        self._audit: AuditTrail | None = None
        self.datasets = DatasetService(self)
        self.bases = BaseService(self)
        self.models = ModelService(self)
        self.pipelines = PipelineService(self)
        self.jobs = JobService(self)
        self.serving = ServingService(self)
        self.reports = ReportService(self)
        self.projects = ProjectService(self)

    @property
    def store(self) -> Store:
        """The metadata store (opened, and on first use created, when first needed)."""
        if self._store is None:
            from aimass.artifacts.database_key import database_key

            private_dir(self.settings.home)
            # The master keys, when the database needs them, are the artifact store's:
            # a key command runs once per process.
            key = database_key(self.settings, keys=lambda: self.artifacts.keys)
            self._store = Store.open(self.settings.resolved_store_uri, key=key)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore:
        """The artifact store."""
        if self._artifacts is None:
            self._artifacts = open_artifact_store(self.settings)
        return self._artifacts

    def derived_key(self, purpose: str) -> bytes:
        """A key for one use, derived from the server secret: API-key hashes, the audit
        chain, console sessions each get their own.

        The secret is ``AIMASS_SERVER_SECRET`` when set (servers sharing one database
        must share it), else the file ``server_secret_file`` (created on first use).
        """
        if self._secret is None:
            if self.settings.server_secret is not None:
                self._secret = bytes.fromhex(self.settings.server_secret.get_secret_value())
            else:
                path = self.settings.server_secret_file or self.settings.home / SECRET_FILE
                private_dir(path.parent)
                self._secret = read_or_create_secret(path)
        return hmac.new(self._secret, purpose.encode(), hashlib.sha256).digest()

    @property
    def keys(self) -> KeyRing:
        """API keys: create, authenticate, list, revoke, bootstrap."""
        if self._keys is None:
            self._keys = KeyRing(
                self.store,
                self.derived_key("api-keys"),
                self.settings.home,
                cache_seconds=self.settings.auth_cache_seconds,
                limits=self.limits,
            )
        return self._keys

    @property
    def limits(self) -> Limits:
        """Effective per-key and per-project limits (stored, overrides, settings), budgets."""
        if self._limits is None:
            self._limits = Limits(
                self.store, self.settings, cache_seconds=self.settings.auth_cache_seconds
            )
        return self._limits

    @property
    def audit(self) -> AuditTrail:
        """The hash-chained audit log."""
        if self._audit is None:
            self._audit = AuditTrail(self.store, self.derived_key("audit"))
        return self._audit

    def close(self) -> None:
        """Stop workers, flush the audit writer, release connections and loaded models."""
        self.jobs.stop_workers()
        if self._audit is not None:
            self._audit.close()
        if self._store is not None:
            self._store.close()
        self.serving.clear()
