"""``ws.pipelines``: versioned pipelines: create (check, then pin every model), resolve,
aliases, who may run one, and running one in this process.

Pinning is what makes a pipeline version immutable in behaviour: at create time
every model reference (``sentiment@production``) is resolved to ``NAME@VERSION``
with the bundle's digest and labels, and stored so. Moving the model's alias
later changes nothing in that version; creating the pipeline again pins the new
target and, the pinned spec being different, makes a new version.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import hashlib
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from aimass.entities import ModelVersion, PipelineVersion
from aimass.errors import InvalidArgument, NotFound
from aimass.refs import parse_ref, validate_name
from aimass.serving.pipelines.spec import pinned_version
from aimass.store import DEFAULT_PROJECT
from aimass.workspace._service import Service
from aimass.workspace.access import Principal

if TYPE_CHECKING:
    from aimass.serving.pipelines import PipelineRun

__all__ = ["PipelineService", "pinned_version"]

T = TypeVar("T")
CLASSIFIER_TASKS = ("classification",)


class PipelineService(Service):
    """``ws.pipelines``: pipeline versions, their aliases, access checks and local runs."""

    def create(
        self,
        spec: dict[str, Any],
        *,
        name: str,
        description: str = "",
        created_by: str | None = None,
        project: str = DEFAULT_PROJECT,
    ) -> tuple[PipelineVersion, bool]:
        """Check ``spec``, pin its models and store it as a new version of ``name``.

        Returns ``(version, created)``: the same pinned spec again returns the version
        that holds it with ``created=False``.
        """
        from aimass.artifacts.bundle import canonical_json
        from aimass.serving.pipelines import check_labels, check_spec

        validate_name(name, kind="pipeline")
        if len(description) > 2000:
            raise InvalidArgument("a pipeline description has at most 2,000 characters")
        pinned = check_spec(copy.deepcopy(spec))
        self.store.projects.get(project)
        self._pin(pinned, project)
        check_labels(pinned)
        digest = hashlib.sha256(canonical_json(pinned)).hexdigest()
        return self.store.pipelines.create_version(
            project,
            name,
            digest=digest,
            spec=pinned,
            description=description,
            created_by=created_by,
        )

    def _pin(self, spec: dict[str, Any], project: str) -> None:
        self._pin_key(spec, project)
        problems = []
        for step in spec["steps"]:
            refs = step["models"] if step["type"] == "ensemble" else [step.get("model")]
            if step["type"] not in ("model", "ensemble"):
                continue
            pins = []
            for ref in refs:
                try:
                    pins.append(self._pin_one(step["name"], ref, project))
                except (NotFound, InvalidArgument) as exc:
                    problems.append(exc.message)
            if len(pins) != len(refs):
                continue
            versions = [p["model"] for p in pins]
            twice = sorted({v for v in versions if versions.count(v) > 1})
            if twice:
                problems.append(
                    f"step {step['name']!r}: models {refs} resolve to {twice[0]} more than once; "
                    "an ensemble averages distinct versions"
                )
                continue
            if step["type"] == "model":
                step["model"], step["pin"] = pins[0]["model"], pins[0]
            else:
                step["models"], step["pins"] = [p["model"] for p in pins], pins
        if problems:
            raise InvalidArgument(
                "the pipeline spec is not valid:\n- " + "\n- ".join(problems), problems=problems
            )

    def _pin_key(self, spec: dict[str, Any], project: str) -> None:
        """Record the fingerprint of the project key each pseudonymizing step uses: a run
        with another key is refused (its pseudonyms would differ from those the models
        learnt), and a new key makes a new version when the pipeline is created again."""
        from aimass.data.deidentify import key_fingerprint
        from aimass.serving.pipelines import pseudonym_key

        key = pseudonym_key(spec, self.settings.home, project)
        for step in spec["steps"]:
            if step["type"] != "deidentify":
                continue
            step.pop("key_fingerprint", None)
            if key is not None and step.get("mode") == "pseudonymize":
                step["key_fingerprint"] = key_fingerprint(key)

    def _pin_one(self, step: str, ref: str, project: str) -> dict[str, Any]:
        try:
            version = self._ws.models.get(ref, project=project)
        except NotFound as exc:
            raise NotFound(f"step {step!r}: {exc.message}") from exc
        if version.task not in CLASSIFIER_TASKS:
            raise InvalidArgument(
                f"step {step!r}: model {version.ref} is a {version.task} model; model and "
                "ensemble steps take classifiers (a label with probabilities)"
            )
        return {
            "model": version.ref,
            "requested": ref,
            "digest": version.digest,
            "task": version.task,
            "labels": self._labels(version),
        }

    def _labels(self, version: ModelVersion) -> list[str]:
        from aimass.artifacts.bundle import verify_bundle

        manifest = verify_bundle(self.artifacts.resolve(version.uri))
        return [str(label) for label in manifest.task_config.get("labels", ())]

    # -- reads and aliases -----------------------------------------------------------

    def get(self, ref: str, *, project: str = DEFAULT_PROJECT) -> PipelineVersion:
        """Resolve ``NAME``, ``NAME@VERSION`` or ``NAME@ALIAS`` (``latest``: the newest)."""
        return self.store.pipelines.resolve(project, parse_ref(ref, kind="pipeline"))

    def list(self, *, project: str = DEFAULT_PROJECT) -> builtins.list[PipelineVersion]:
        """The latest version of every pipeline, by name."""
        return self.store.pipelines.list(project)

    def versions(
        self, name: str, *, project: str = DEFAULT_PROJECT
    ) -> builtins.list[PipelineVersion]:
        """Every version of pipeline ``name``, oldest first (NotFound when there is none)."""
        found = self.store.pipelines.versions(project, name)
        if not found:
            self.store.pipelines.get(project, name)  # the NotFound with the fix
        return found

    def set_alias(
        self, name: str, alias: str, version: int, *, project: str = DEFAULT_PROJECT
    ) -> PipelineVersion:
        """Point ``alias`` of pipeline ``name`` at ``version``."""
        return self.store.pipelines.set_alias(project, name, alias, version)

    def report_file(
        self, ref: str, report: str, *, fmt: str = "html", project: str = DEFAULT_PROJECT
    ) -> Path:
        """The stored ``report.html`` or ``report.json`` of evaluation ``report`` of pipeline
        version ``ref`` (NotFound listing its reports)."""
        if fmt not in ("html", "json"):
            raise InvalidArgument(f"report format {fmt!r} is not 'html' or 'json'")
        version = self.get(ref, project=project)
        record = version.evaluations.get(report)
        if record is None:
            known = ", ".join(version.evaluations) or "none"
            raise NotFound(
                f"pipeline {version.ref} has no evaluation report {report!r} (reports: {known});"
                f" create one with 'aimass pipelines evaluate {version.ref} --dataset NAME'",
                resource="report",
                name=report,
            )
        return self.artifacts.resolve(record["report"]) / f"report.{fmt}"

    def evaluate(
        self,
        ref: str,
        *,
        dataset: str,
        split: str = "test",
        group_field: str | None = None,
        options: dict[str, Any] | None = None,
        project: str = DEFAULT_PROJECT,
        callbacks: Sequence[Any] = (),
    ) -> tuple[PipelineVersion, str]:
        """Build pipeline ``ref``'s evaluation report now, in this process: ``(the version
        with the report recorded, the report's name)``."""
        from aimass.jobs.evaluate import EvaluateSpec

        spec = EvaluateSpec(
            pipeline=ref,
            dataset=dataset,
            split=split,
            group_field=group_field,
            options=dict(options or {}),
        )
        jobs = self._ws.jobs
        job = jobs.run(jobs.submit_evaluation(spec, project=project).id, callbacks=callbacks)
        return self.get(f"{job.result['pipeline']}@{job.result['version']}", project=project), str(
            job.result["name"]
        )

    def delete_alias(self, name: str, alias: str, *, project: str = DEFAULT_PROJECT) -> None:
        """Remove ``alias`` from pipeline ``name``."""
        self.store.pipelines.delete_alias(project, name, alias)

    def delete_version(
        self, name: str, version: int, *, project: str = DEFAULT_PROJECT
    ) -> PipelineVersion:
        """Delete a version no alias points at (Conflict naming the aliases otherwise); its
        reports stay in the artifact store until ``aimass gc`` (:mod:`aimass.workspace.gc`)."""
        return self.store.pipelines.delete_version(project, name, version)

    def require_predict(self, principal: Principal, version: PipelineVersion) -> None:
        """PermissionDenied naming the model unless the caller may predict with every model
        the pipeline runs (a key narrowed to some of them is refused)."""
        for model in version.models:
            principal.require("predict", project=version.project, model=model)

    # -- running ---------------------------------------------------------------------

    def predict(
        self,
        ref: str,
        texts: Sequence[str],
        *,
        project: str = DEFAULT_PROJECT,
        explain: str | bool | None = None,
    ) -> tuple[PipelineVersion, PipelineRun]:
        """Run pipeline ``ref`` over ``texts`` in this process (limits from the settings)."""
        from aimass.serving.pipelines import pseudonym_key, run_pipeline

        inputs = self._ws.serving.check_inputs(texts)
        if explain:
            self._ws.serving.check_explain_batch(inputs)
        version = self.get(ref, project=project)

        async def predict(pin: dict[str, Any], batch: list[str]) -> list[dict[str, Any]]:
            predictor = self._predictor(pin, project)
            return await asyncio.to_thread(predictor.predict, batch)

        async def explain_with(
            pin: dict[str, Any], batch: list[str], results: list[dict[str, Any]], method: Any
        ) -> list[dict[str, Any]]:
            predictor = self._predictor(pin, project)
            return await asyncio.to_thread(predictor.with_explanations, batch, results, method)

        run = _run_sync(
            run_pipeline(
                version.spec,
                inputs,
                predict=predict,
                explain=explain_with,
                method=explain,
                key=pseudonym_key(version.spec, self.settings.home, version.project),
            )
        )
        return version, run

    def _predictor(self, pin: dict[str, Any], project: str) -> Any:
        found = self._ws.models.get(pin["model"], project=project)
        return self._ws.serving.load_version(pinned_version(pin, found))


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to the end from synchronous code, also when this thread already
    runs an event loop (a notebook): then in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="aimass-pipeline")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
