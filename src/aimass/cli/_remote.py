"""The CLI against a server: every operation through the SDK (``AIMASS_URL``)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass import schemas as s

if TYPE_CHECKING:
    from aimass.client import Client


class Remote:
    """A server at ``AIMASS_URL``, through the SDK."""

    remote = True

    def __init__(self, client: Client) -> None:
        self.c = client

    def datasets(self, project: str) -> list[s.DatasetVersionOut]:
        return self.c.datasets.list(project=project)

    def dataset(self, ref: str, project: str) -> s.DatasetVersionOut:
        return self.c.datasets.get(ref, project=project)

    def import_dataset(
        self, path: Path, *, name: str, fmt: str | None, options: dict[str, Any], project: str
    ) -> tuple[s.DatasetVersionOut, bool | None]:
        return self.c.datasets.upload(path, name=name, fmt=fmt, project=project, **options), None

    def import_sample(
        self,
        sample: str,
        *,
        name: str | None,
        seed: int,
        project: str,
        deidentify: dict[str, Any] | None = None,
    ) -> tuple[s.DatasetVersionOut, bool | None]:
        found = self.c.datasets.import_sample(
            sample, name=name, seed=seed, deidentify=deidentify, project=project
        )
        return found, None

    def bases(self, project: str) -> list[s.BaseModelOut]:
        return self.c.bases.list(project=project)

    def import_base(
        self, source: str, *, name: str | None, project: str
    ) -> tuple[s.BaseModelOut, bool | None]:
        # A source naming a directory means a path on the server (inside its import dirs).
        packaged = "/" not in source and not source.startswith(".")
        base = self.c.bases.import_(
            source if packaged else None,
            path=None if packaged else source,
            name=name,
            project=project,
        )
        return base, None

    def models(self, project: str) -> list[s.RegisteredModelOut]:
        return self.c.models.list(project=project)

    def versions(self, name: str, project: str) -> list[s.ModelVersionOut]:
        return self.c.models.versions(name, project=project)

    def model_version(self, ref: str, project: str) -> s.ModelVersionOut:
        return self.c.models.get(ref, project=project)

    def set_alias(self, name: str, version: int, alias: str, project: str) -> s.ModelVersionOut:
        return self.c.models.set_alias(name, alias, version, project=project)

    def delete_alias(self, name: str, alias: str, project: str) -> None:
        self.c.models.delete_alias(name, alias, project=project)

    def card(self, ref: str, project: str) -> str:
        return self.c.models.card(ref, project=project)

    def verify_model(self, ref: str, project: str) -> s.BundleVerifyOut:
        return self.c.models.verify(ref, project=project)

    def export(self, ref: str, destination: Path, project: str) -> list[str]:
        return self.c.models.export(ref, destination, project=project)

    def import_model(
        self, source: Path, *, name: str, alias: str | None, project: str
    ) -> tuple[s.ModelVersionOut, bool | None]:
        # A path on the server, inside its import dirs.
        return self.c.models.import_(str(source), name=name, alias=alias, project=project), None

    def attachments(
        self, ref: str, project: str, *, kind: str | None = None
    ) -> list[dict[str, Any]]:
        attachments = self.c.models.attachments(ref, kind=kind, project=project)
        return [a.model_dump(mode="json") for a in attachments]

    def delete_version(self, name: str, version: int, project: str) -> s.ModelVersionOut:
        return self.c.models.delete_version(name, version, project=project)

    def predict(
        self, ref: str, texts: Sequence[str], project: str, *, explain: str | None = None
    ) -> list[dict[str, Any]]:
        return self.c.predict(ref, texts, explain=explain, project=project)

    def generate(self, ref: str, prompt: str, project: str, **options: Any) -> dict[str, Any]:
        return self.c.generate(ref, prompt, project=project, **options)

    def generate_stream(
        self, ref: str, prompt: str, project: str, **options: Any
    ) -> Iterator[dict[str, Any]]:
        return self.c.generate_stream(ref, prompt, project=project, **options)

    def evaluate(
        self, spec: dict[str, Any], project: str, callbacks: Sequence[Any] = ()
    ) -> tuple[s.AttachmentOut, dict[str, Any], Path]:
        """Submit an evaluate job, wait for it, and fetch its report files."""
        import json

        job = self.c.jobs.submit_evaluation(project=project, **spec)
        progress = _JobProgress(callbacks)
        done = self.c.jobs.wait(job.id, progress=progress, poll=0.5, project=project)
        progress.close()
        ref = f"{done.result['model']}@{done.result['version']}"
        html, report_json = self.report_files(ref, done.result["attachment"], project)
        chosen = next(
            a for a in self.evaluations(ref, project) if a.name == done.result["attachment"]
        )
        return chosen, json.loads(report_json.read_text("utf-8")), html

    def evaluations(self, ref: str, project: str) -> list[s.AttachmentOut]:
        return self.c.models.attachments(ref, kind="evaluation", project=project)

    def report_files(self, ref: str, name: str | None, project: str) -> tuple[Path, Path]:
        """Download report ``name`` (default: the newest) to a private temporary directory."""
        import tempfile

        from aimass.errors import NotFound

        found = self.evaluations(ref, project)
        chosen = next((a for a in found if name is None or a.name == name), None)
        if chosen is None:
            known = ", ".join(a.name for a in found) or "none"
            raise NotFound(
                f"model {ref} has no evaluation report {name or ''!r} (reports: {known})"
            )
        folder = Path(tempfile.mkdtemp(prefix="aimass-report-"))
        paths = []
        for fmt in ("html", "json"):
            target = folder / f"report.{fmt}"
            target.write_bytes(self.c.models.report(ref, chosen.name, fmt=fmt, project=project))
            paths.append(target)
        return paths[0], paths[1]

    def train(
        self,
        spec: dict[str, Any],
        *,
        project: str,
        reuse: bool = False,
        callbacks: Sequence[Any] = (),
    ) -> tuple[s.ModelVersionOut, bool]:
        """Submit a training job on the server and wait for it, showing its progress."""
        job = self.c.jobs.submit_training(project=project, reuse=reuse, **spec)
        progress = _JobProgress(callbacks)
        done = self.c.jobs.wait(job.id, progress=progress, poll=0.5, project=project)
        progress.close()
        ref = f"{done.result['model']}@{done.result['version']}"
        return self.c.models.get(ref, project=project), bool(done.result.get("reused"))

    def jobs(self, project: str, status: str | None, limit: int) -> list[s.JobOut]:
        return self.c.jobs.list(status=status, limit=limit, project=project)

    def job(self, job_id: str, project: str) -> s.JobOut:
        return self.c.jobs.get(job_id, project=project)

    def job_logs(self, job_id: str, project: str, after: int) -> list[s.JobLogLineOut]:
        return self.c.jobs.logs(job_id, after=after, project=project)

    def cancel_job(self, job_id: str, project: str) -> s.JobOut:
        return self.c.jobs.cancel(job_id, project=project)

    def job_results(self, job_id: str, destination: Path, fmt: str, project: str) -> Path:
        return self.c.jobs.results(job_id, destination, fmt=fmt, project=project)

    def submit_batch(self, spec: dict[str, Any], project: str) -> s.JobOut:
        return self.c.jobs.submit_batch_predict(project=project, **spec)

    def submit_training(self, spec: dict[str, Any], project: str, reuse: bool) -> s.JobOut:
        return self.c.jobs.submit_training(project=project, reuse=reuse, **spec)

    def projects(self) -> list[s.ProjectOut]:
        return self.c.projects.list()

    def create_project(self, name: str, description: str) -> s.ProjectOut:
        return self.c.projects.create(name, description=description)

    def keys(self, project: str | None) -> list[s.ApiKeyOut]:
        return self.c.keys.list(project=project)

    def create_key(
        self,
        name: str,
        *,
        project: str | None,
        scopes: list[str],
        expires_in_days: float | None,
        predict_budget: int | None = None,
        output_policy: str | None = None,
        limits: dict[str, int | str] | None = None,
    ) -> s.KeyCreated:
        return self.c.keys.create(
            name,
            scopes=scopes,
            expires_in_days=expires_in_days,
            predict_budget=predict_budget,
            output_policy=output_policy,
            limits=limits,
            project=project,
        )

    def key(self, key_id: str, project: str | None) -> s.ApiKeyOut:
        return self.c.keys.get(key_id, project=project)

    def update_key(self, key_id: str, project: str | None, changes: dict[str, Any]) -> s.ApiKeyOut:
        # A None change removes: the SDK spells that "unlimited" / "full".
        options: dict[str, Any] = {}
        if "predict_budget" in changes:
            options["predict_budget"] = changes["predict_budget"] or "unlimited"
        if "output_policy" in changes:
            options["output_policy"] = changes["output_policy"] or "full"
        if "limits" in changes:
            options["limits"] = changes["limits"]
        return self.c.keys.update(key_id, project=project, **options)

    def project(self, name: str) -> s.ProjectOut:
        return self.c.projects.get(name)

    def set_project_limits(self, name: str, limits: dict[str, int | str | None]) -> s.ProjectOut:
        return self.c.projects.set_limits(name, limits)

    def revoke_key(self, key_id: str, project: str | None) -> s.ApiKeyOut:
        return self.c.keys.revoke(key_id, project=project)

    def audit(self, project: str | None, action: str | None, limit: int) -> list[s.AuditEventOut]:
        return self.c.audit.list(project=project, action=action, limit=limit)

    def verify_audit(self) -> s.AuditVerifyOut:
        return self.c.audit.verify()


class _JobProgress:
    """Feeds polled job progress to rich progress callbacks (``on_step_end``-style)."""

    def __init__(self, callbacks: Sequence[Any]) -> None:
        from rich.progress import Progress

        self._bar = Progress(transient=False) if callbacks else None
        self._task: Any = None
        self._started = time.monotonic()

    def __call__(self, job: s.JobOut) -> None:
        if self._bar is None:
            return
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(f"job {job.id[:8]} ({job.kind})", total=1.0)
        loss = job.metrics.get("loss")
        info = f"{job.status}" + (f" loss {loss:.4f}" if isinstance(loss, float) else "")
        self._bar.update(self._task, completed=job.progress, description=f"job {job.id[:8]} {info}")

    def close(self) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.stop()
