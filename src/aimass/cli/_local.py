"""The CLI on a local home: every operation through the workspace, no server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass import schemas as s

if TYPE_CHECKING:
    from aimass.workspace import Workspace


class Local:
    """The home on this machine, through the workspace."""

    remote = False

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def datasets(self, project: str) -> list[s.DatasetVersionOut]:
        return [s.DatasetVersionOut.from_entity(v) for v in self.ws.store.datasets.list(project)]

    def dataset(self, ref: str, project: str) -> s.DatasetVersionOut:
        return s.DatasetVersionOut.from_entity(self.ws.dataset(ref, project=project))

    def import_dataset(
        self, path: Path, *, name: str, fmt: str | None, options: dict[str, Any], project: str
    ) -> tuple[s.DatasetVersionOut, bool | None]:
        from aimass.data.importer import ImportOptions
        from aimass.workspace.privacy import DeidentifyOptions

        version, created = self.ws.import_dataset(
            path,
            name=name,
            project=project,
            fmt=fmt,
            options=ImportOptions.from_fields(options),
            deidentify=DeidentifyOptions.from_fields(options.get("deidentify")),
        )
        return s.DatasetVersionOut.from_entity(version), created

    def import_sample(
        self,
        sample: str,
        *,
        name: str | None,
        seed: int,
        project: str,
        deidentify: dict[str, Any] | None = None,
    ) -> tuple[s.DatasetVersionOut, bool | None]:
        from aimass.workspace.privacy import DeidentifyOptions

        version, created = self.ws.import_sample(
            sample,
            name=name,
            project=project,
            seed=seed,
            deidentify=DeidentifyOptions.from_fields(deidentify),
        )
        return s.DatasetVersionOut.from_entity(version), created

    def bases(self, project: str) -> list[s.BaseModelOut]:
        return [s.BaseModelOut.from_entity(b) for b in self.ws.store.bases.list(project)]

    def import_base(
        self, source: str, *, name: str | None, project: str
    ) -> tuple[s.BaseModelOut, bool | None]:
        base, created = self.ws.import_base(source, name=name, project=project)
        return s.BaseModelOut.from_entity(base), created

    def models(self, project: str) -> list[s.RegisteredModelOut]:
        found = self.ws.store.registry.list_models(project)
        return [s.RegisteredModelOut.from_entity(m) for m in found]

    def versions(self, name: str, project: str) -> list[s.ModelVersionOut]:
        found = self.ws.store.registry.list_versions(project, name)
        return [s.ModelVersionOut.from_entity(v) for v in found]

    def model_version(self, ref: str, project: str) -> s.ModelVersionOut:
        return s.ModelVersionOut.from_entity(self.ws.model_version(ref, project=project))

    def set_alias(self, name: str, version: int, alias: str, project: str) -> s.ModelVersionOut:
        return s.ModelVersionOut.from_entity(
            self.ws.set_alias(name, version, alias, project=project)
        )

    def delete_alias(self, name: str, alias: str, project: str) -> None:
        self.ws.delete_alias(name, alias, project=project)

    def card(self, ref: str, project: str) -> str:
        return self.ws.model_card(ref, project=project)

    def verify_model(self, ref: str, project: str) -> s.BundleVerifyOut:
        return s.BundleVerifyOut(**self.ws.verify_model(ref, project=project))

    def export(self, ref: str, destination: Path, project: str) -> list[str]:
        return self.ws.export_model(ref, destination, project=project)

    def import_model(
        self, source: Path, *, name: str, alias: str | None, project: str
    ) -> tuple[s.ModelVersionOut, bool | None]:
        version, created = self.ws.import_model(
            str(source), name=name, alias=alias, project=project
        )
        return s.ModelVersionOut.from_entity(version), created

    def attachments(
        self, ref: str, project: str, *, kind: str | None = None
    ) -> list[dict[str, Any]]:
        from aimass.entities import to_jsonable
        from aimass.refs import parse_ref

        found = self.ws.store.registry.attachments(project, parse_ref(ref), kind=kind)
        return [to_jsonable(a) for a in found]

    def delete_version(self, name: str, version: int, project: str) -> s.ModelVersionOut:
        return s.ModelVersionOut.from_entity(self.ws.delete_version(name, version, project=project))

    def predict(
        self, ref: str, texts: Sequence[str], project: str, *, explain: str | None = None
    ) -> list[dict[str, Any]]:
        return self.ws.predict(ref, texts, project=project, explain=explain)

    def generate(self, ref: str, prompt: str, project: str, **options: Any) -> dict[str, Any]:
        return self.ws.generate(ref, prompt, project=project, **options)

    def generate_stream(
        self, ref: str, prompt: str, project: str, **options: Any
    ) -> Iterator[dict[str, Any]]:
        return self.ws.generate_stream(ref, prompt, project=project, **options)

    def evaluate(
        self, spec: dict[str, Any], project: str, callbacks: Sequence[Any] = ()
    ) -> tuple[s.AttachmentOut, dict[str, Any], Path]:
        """Build the report in this process: (attachment, report.json content, report.html)."""
        import json

        from aimass.jobs.evaluate import EvaluateSpec

        attachment = self.ws.evaluate(EvaluateSpec(**spec), project=project, callbacks=callbacks)
        document = json.loads(self.ws.report_file(attachment, fmt="json").read_text("utf-8"))
        html = self.ws.report_file(attachment, fmt="html")
        return s.AttachmentOut.from_entity(attachment), document, html

    def evaluations(self, ref: str, project: str) -> list[s.AttachmentOut]:
        return [s.AttachmentOut.from_entity(a) for a in self.ws.evaluations(ref, project=project)]

    def report_files(self, ref: str, name: str | None, project: str) -> tuple[Path, Path]:
        """The stored report.html and report.json of report ``name`` (default: the newest)."""
        from aimass.errors import NotFound

        found = self.ws.evaluations(ref, project=project)
        chosen = next((a for a in found if name is None or a.name == name), None)
        if chosen is None:
            known = ", ".join(a.name for a in found) or "none"
            raise NotFound(
                f"model {ref} has no evaluation report {name or ''!r} (reports: {known}); "
                f"create one with 'aimass evaluate {ref} --dataset NAME'"
            )
        return self.ws.report_file(chosen, fmt="html"), self.ws.report_file(chosen, fmt="json")

    def train(
        self,
        spec: dict[str, Any],
        *,
        project: str,
        reuse: bool = False,
        callbacks: Sequence[Any] = (),
    ) -> tuple[s.ModelVersionOut, bool]:
        """Train in this process (with the given progress callbacks)."""
        from aimass.jobs.train import TrainSpec

        # The recipe is chosen (and its base imported) once, not by each step below.
        train_spec = self.ws.with_recipe(TrainSpec(**spec), project=project)
        found = self.ws.find_trained(train_spec, project=project) if reuse else None
        if found is not None:
            if train_spec.alias:
                found = self.ws.set_alias(
                    found.name, found.version, train_spec.alias, project=project
                )
            return s.ModelVersionOut.from_entity(found), True
        version = self.ws.train(train_spec, project=project, callbacks=callbacks)
        return s.ModelVersionOut.from_entity(version), False

    # -- jobs, keys, projects, audit -------------------------------------------------

    def jobs(self, project: str, status: str | None, limit: int) -> list[s.JobOut]:
        found = self.ws.jobs(project=project, status=status, limit=limit)
        return [s.JobOut.from_entity(j) for j in found]

    def job(self, job_id: str, project: str) -> s.JobOut:
        return s.JobOut.from_entity(self.ws.job(job_id, project=project))

    def job_logs(self, job_id: str, project: str, after: int) -> list[s.JobLogLineOut]:
        lines = self.ws.job_logs(job_id, project=project, after=after)
        return [s.JobLogLineOut.from_entity(line) for line in lines]

    def cancel_job(self, job_id: str, project: str) -> s.JobOut:
        return s.JobOut.from_entity(self.ws.cancel_job(job_id, project=project))

    def job_results(self, job_id: str, destination: Path, fmt: str, project: str) -> Path:
        from aimass.workspace.results import write_job_results

        return write_job_results(self.ws, job_id, destination, project=project, fmt=fmt)

    def submit_batch(self, spec: dict[str, Any], project: str) -> s.JobOut:
        from aimass.jobs.batch import BatchPredictSpec

        job = self.ws.submit_batch_predict(BatchPredictSpec(**spec), project=project)
        return s.JobOut.from_entity(job)

    def submit_training(self, spec: dict[str, Any], project: str, reuse: bool) -> s.JobOut:
        from aimass.jobs.train import TrainSpec

        job = self.ws.submit_training(TrainSpec(**spec), project=project, reuse=reuse)
        return s.JobOut.from_entity(job)

    def projects(self) -> list[s.ProjectOut]:
        return [s.ProjectOut.from_entity(p) for p in self.ws.projects()]

    def create_project(self, name: str, description: str) -> s.ProjectOut:
        return s.ProjectOut.from_entity(self.ws.create_project(name, description=description))

    def keys(self, project: str | None) -> list[s.ApiKeyOut]:
        return [s.ApiKeyOut.from_entity(k) for k in self.ws.keys.list(project=project)]

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
        from aimass.workspace.access import local_principal

        record, key = self.ws.keys.create(
            name,
            project=project,
            scopes=scopes,
            expires_in_days=expires_in_days,
            created_by=local_principal().actor,
            predict_budget=predict_budget,
            output_policy=output_policy,
            limits=limits,
        )
        out = s.ApiKeyOut.from_entity(record)
        self._audit("keys.create", out.project, f"keys/{out.id}", _key_details(out))
        return s.KeyCreated(key=key, record=out)

    def key(self, key_id: str, project: str | None) -> s.ApiKeyOut:
        return s.ApiKeyOut.from_entity(self.ws.store.keys.get(key_id, project=project))

    def update_key(self, key_id: str, project: str | None, changes: dict[str, Any]) -> s.ApiKeyOut:
        out = s.ApiKeyOut.from_entity(self.ws.keys.update(key_id, changes, project=project))
        details = {**_key_details(out), "changed": sorted(changes)}
        self._audit("keys.update", out.project, f"keys/{out.id}", details)
        return out

    def project(self, name: str) -> s.ProjectOut:
        return s.ProjectOut.from_entity(self.ws.store.projects.get(name))

    def set_project_limits(self, name: str, limits: dict[str, int | str | None]) -> s.ProjectOut:
        out = s.ProjectOut.from_entity(self.ws.limits.set_project_limits(name, limits))
        details = {"limits": out.limits, "changed": sorted(limits)}
        self._audit("projects.update", name, f"projects/{name}", details)
        return out

    def _audit(self, action: str, project: str | None, resource: str, details: Any) -> None:
        """The audit entry the server's request pipeline would write for this change."""
        from aimass.store import AuditRecord
        from aimass.workspace.access import local_principal

        self.ws.audit.record(
            AuditRecord(
                actor=local_principal().actor,
                action=action,
                resource=resource,
                outcome="ok",
                project=project,
                details=details,
            )
        )

    def revoke_key(self, key_id: str, project: str | None) -> s.ApiKeyOut:
        return s.ApiKeyOut.from_entity(self.ws.keys.revoke(key_id, project=project))

    def audit(self, project: str | None, action: str | None, limit: int) -> list[s.AuditEventOut]:
        found = self.ws.audit.list(project=project, action=action, limit=limit)
        return [s.AuditEventOut.from_entity(e) for e in found]

    def verify_audit(self) -> s.AuditVerifyOut:
        r = self.ws.audit.verify()
        return s.AuditVerifyOut(ok=r.ok, rows=r.rows, head_seq=r.head_seq, problems=r.problems)


def _key_details(key: s.ApiKeyOut) -> dict[str, Any]:
    return {
        "key_id": key.id,
        "scopes": key.scopes,
        "predict_budget": key.predict_budget,
        "output_policy": key.output_policy,
        "limits": key.limits,
    }
