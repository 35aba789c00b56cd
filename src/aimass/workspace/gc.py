"""Garbage collection of artifacts: what nothing refers to any more, removed for good.

Deleting a model or pipeline version removes it from the registry; its bundle,
reports and graphs stay in the artifact store until ``aimass gc`` finds that no
row of the metadata store refers to them (``mlflow gc`` for MLflow's deleted
runs). On sensitive data that matters twice: the files are the data. What is
collected (:func:`collect_garbage`):

* published artifacts (``bundles/``, ``datasets/``, ``reports/``, ``graphs/``)
  whose URI no dataset version, base, model version, attachment or recorded
  evaluation names (:class:`~aimass.store.references.ReferenceRepository`);
* the checkpoint of a finished job (a job removes its own when it ends; this
  catches one whose removal failed, or that predates it), and the whole run
  directory of a job the store does not know;
* staging directories a killed process left behind, and with object storage the
  bucket's objects no committed index names (an upload that crashed, or lost a
  race with another machine publishing the same key), a day after their last
  write at the earliest: a write in progress looks the same and nothing marks it.

Only what was written more than ``older_than`` seconds ago is removed: a job
publishes its bundle a moment before it registers the version that refers to
it, and publishing content that exists already restarts the clock (see
:meth:`~aimass.artifacts.storage.ArtifactStore.publish`). With object storage
the bucket's copies are collected as well as this machine's cache.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aimass.artifacts.storage import NESTED, PUBLISHED, RUNS, STAGING, ArtifactStore
from aimass.errors import InvalidArgument
from aimass.store import AuditRecord, Store
from aimass.workspace.access import local_principal
from aimass.workspace.audit import AuditTrail

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "Garbage",
    "GarbageReport",
    "collect_garbage",
]

log = logging.getLogger("aimass.gc")

DEFAULT_GRACE_SECONDS = 3600.0
# Staging directories and stray uploads may belong to a write in progress (a bundle
# being staged, a large upload to the bucket), which nothing else marks: they are
# removed only once this much older than the grace period the caller chose.
IN_PROGRESS_FLOOR_SECONDS = 24 * 3600.0
UNREFERENCED = "nothing refers to it"
FINISHED_CHECKPOINT = "checkpoint of a finished job"
UNKNOWN_RUN = "run of a job the store does not have"
ABANDONED_STAGING = "staging left by a process that stopped"
STRAY_UPLOAD = "upload no index names (crashed, or lost a race to publish the same key)"


@dataclass(frozen=True)
class Garbage:
    """One artifact (or run directory) collected, or that would be with ``--dry-run``."""

    key: str
    reason: str
    bytes: int
    where: str  # "local", "remote" or "local+remote"


@dataclass
class GarbageReport:
    """What one collection found, removed and kept."""

    dry_run: bool
    older_than: float
    removed: list[Garbage] = field(default_factory=list)
    # Unreferenced but written within the grace period: left for a later run.
    too_young: list[str] = field(default_factory=list)
    referenced: int = 0

    @property
    def bytes(self) -> int:
        """The bytes freed (or that would be)."""
        return sum(g.bytes for g in self.removed)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``)."""
        return {
            "dry_run": self.dry_run,
            "older_than_seconds": self.older_than,
            "removed": [asdict(g) for g in self.removed],
            "removed_count": len(self.removed),
            "bytes": self.bytes,
            "too_young": self.too_young,
            "referenced": self.referenced,
        }

    def audit_details(self) -> dict[str, Any]:
        """What the audit entry of a collection that removed something records."""
        return {
            "removed": len(self.removed),
            "bytes": self.bytes,
            "keys": [g.key for g in self.removed][:1000],
            "older_than_seconds": self.older_than,
        }


def _size(path: Path) -> int:
    if path.is_symlink() or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum((Path(d) / n).stat().st_size for d, _, names in os.walk(path) for n in names)


def _remote_size(artifacts: ArtifactStore, key: str) -> int:
    assert artifacts.remote is not None
    index = artifacts.remote.index(key)
    return sum(entry.size for entry in index.files) if index is not None else 0


@dataclass(frozen=True)
class _Candidate:
    key: str
    reason: str
    # Only the bucket's copy: the local one goes with a whole run directory collected.
    remote_only: bool = False


def _published_keys(root: Path) -> list[str]:
    """The keys of the published artifacts under an artifact root."""
    found: list[str] = []

    def walk(key: str) -> None:
        directory = root / key
        if not directory.is_dir():
            return
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):  # a file being encrypted in place
                continue
            child = f"{key}/{entry.name}"
            if child in NESTED:
                walk(child)
            else:
                found.append(child)

    for top in PUBLISHED:
        walk(top)
    return found


def _valid(artifacts: ArtifactStore, key: str) -> bool:
    """Whether a key the bucket lists is one aimass could have written (a key that
    would escape the artifact root is left alone, and said so)."""
    try:
        artifacts.path(key)
    except InvalidArgument:
        log.warning("the bucket indexes a key that is not a valid artifact key", extra={"key": key})
        return False
    return True


def _candidates(store: Store, artifacts: ArtifactStore) -> tuple[list[_Candidate], int]:
    """What may be garbage, each with its reason; and how many keys are referenced."""
    referenced = {artifacts.key_of(uri) for uri in store.references.artifact_uris()}
    statuses = store.references.job_statuses()
    remote_keys = [k for k in artifacts.remote_keys() if _valid(artifacts, k)]
    published = set(_published_keys(artifacts.root))
    published |= {k for k in remote_keys if k.split("/", 1)[0] in PUBLISHED}
    found = [_Candidate(key, UNREFERENCED) for key in sorted(published - referenced)]
    runs = artifacts.root / RUNS.rstrip("/")
    local_runs = sorted(p.name for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    unknown = set()
    for job_id in local_runs:
        status = statuses.get(job_id)
        if status is None:
            unknown.add(job_id)
            found.append(_Candidate(f"{RUNS}{job_id}", UNKNOWN_RUN))
        elif status.finished and (runs / job_id / "checkpoint").exists():
            found.append(_Candidate(f"{RUNS}{job_id}/checkpoint", FINISHED_CHECKPOINT))
    here = {c.key for c in found}  # a finished job's checkpoint here goes from both at once
    for key in remote_keys:  # runs/<job-id>/checkpoint, mirrored by running jobs
        if not key.startswith(RUNS) or key in here:
            continue
        owner = key[len(RUNS) :].split("/", 1)[0]
        if owner in statuses and not statuses[owner].finished:
            continue
        reason = UNKNOWN_RUN if owner not in statuses else FINISHED_CHECKPOINT
        found.append(_Candidate(key, reason, remote_only=owner in unknown))
    return found, len(referenced)


def _where_and_when(artifacts: ArtifactStore, candidate: _Candidate) -> tuple[str, float | None]:
    """Where a candidate lies (``local``, ``remote``, ``local+remote``) and when it was
    last written (the later of its local copy and its index in the bucket; ``None``
    where neither has it), from one look at each."""
    local = None
    with suppress(FileNotFoundError):
        local = artifacts.path(candidate.key).lstat().st_mtime
    committed = artifacts.remote.committed_at(candidate.key) if artifacts.remote else None
    here = local is not None and not candidate.remote_only
    there = committed is not None
    where = "local+remote" if here and there else ("remote" if there else "local")
    times = [t for t in (local, committed) if t is not None]
    return where, max(times) if times else None


def _abandoned_staging(artifacts: ArtifactStore, cutoff: float) -> list[Path]:
    """Staging directories (uuid-named) last written before ``cutoff``."""
    staging = artifacts.root / STAGING
    if not staging.is_dir():
        return []
    return sorted(
        p
        for p in staging.iterdir()
        if p.is_dir() and len(p.name) == 32 and p.lstat().st_mtime < cutoff
    )


def _collect_stray_uploads(artifacts: ArtifactStore, report: GarbageReport, cutoff: float) -> None:
    """Remove the bucket's objects that no committed index names (after the artifacts
    collected above, whose objects went with their indexes)."""
    remote = artifacts.remote
    assert remote is not None
    tops = (*PUBLISHED, RUNS.rstrip("/"))
    for group, names in sorted(remote.stray_uploads(tops).items()):
        stats = [s for s in (remote.objects.stat(n) for n in names) if s is not None]
        if any(s.modified >= cutoff for s in stats):  # an upload in progress, perhaps
            report.too_young.append(group)
            continue
        if not report.dry_run:
            remote.remove_objects(names)
        report.removed.append(Garbage(group, STRAY_UPLOAD, sum(s.size for s in stats), "remote"))


def collect_garbage(
    store: Store,
    artifacts: ArtifactStore,
    audit: AuditTrail | None,
    *,
    older_than: float = DEFAULT_GRACE_SECONDS,
    dry_run: bool = False,
) -> GarbageReport:
    """Remove (or with ``dry_run`` only list) the artifacts nothing refers to any more.

    Args:
        store: The metadata store whose rows say what is referenced.
        artifacts: The artifact store (and its bucket, with object storage).
        audit: Where a collection that removed something is recorded (``None``: the
            caller records it, as the server's request does).
        older_than: Seconds an artifact must have gone unwritten before it is removed.
        dry_run: Report without removing anything.
    """
    report = GarbageReport(dry_run=dry_run, older_than=older_than)
    cutoff = time.time() - older_than
    candidates, report.referenced = _candidates(store, artifacts)
    for candidate in candidates:
        key = candidate.key
        where, written = _where_and_when(artifacts, candidate)
        # A finished job's checkpoint is judged by the job's status, not by its age.
        if candidate.reason != FINISHED_CHECKPOINT and written is not None and written >= cutoff:
            report.too_young.append(key)
            continue
        size = _size(artifacts.path(key)) if "local" in where else _remote_size(artifacts, key)
        if not dry_run:
            if candidate.remote_only:
                assert artifacts.remote is not None
                artifacts.remote.delete(key)
            else:
                artifacts.delete(key)
        report.removed.append(Garbage(key, candidate.reason, size, where))
    # A write in progress leaves no other mark: these wait a day whatever the caller chose.
    settled = min(cutoff, time.time() - IN_PROGRESS_FLOOR_SECONDS)
    if artifacts.remote is not None:
        _collect_stray_uploads(artifacts, report, settled)
    for path in _abandoned_staging(artifacts, settled):
        key = f"{STAGING}/{path.name}"
        report.removed.append(Garbage(key, ABANDONED_STAGING, _size(path), "local"))
        if not dry_run:
            shutil.rmtree(path, ignore_errors=True)
    if not dry_run and report.removed:
        if audit is not None:
            audit.record(
                AuditRecord(
                    actor=local_principal().actor,
                    action="artifacts.gc",
                    resource="artifacts",
                    outcome="ok",
                    project=None,
                    details=report.audit_details(),
                )
            )
        log.info("garbage collected", extra={"removed": len(report.removed), "bytes": report.bytes})
    return report
