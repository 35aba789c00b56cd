"""The operations contract: every operation of aimass, by namespace, once.

Three implementations answer it, so a script, the CLI and the server's callers
see one vocabulary whichever way they reach a home:

* :class:`aimass.Client`: the REST API over HTTP;
* :class:`aimass.AsyncClient`: the same calls, awaited (every method a coroutine
  function, ``generate_stream`` an async iterator);
* :class:`aimass.workspace.local.LocalClient`: the home on this machine, in process,
  no server (what the CLI uses when ``AIMASS_URL`` is unset).

Each namespace is a :class:`typing.Protocol` below; the names, the order of the
positional arguments, the keyword-only options and their defaults are the
contract. ``tests/test_operations_contract.py`` compares every implementation
with it, method by method, so a renamed option or a missing method fails CI
instead of drifting. Every call returns the wire schemas of :mod:`aimass.schemas`,
so ``--json`` output and SDK results have one shape in every mode.

``project`` is keyword-only everywhere and defaults to the client's project
(``"default"``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aimass.schemas import AboutOut, GarbageReportOut, JobOut, PredictResponse, WhoAmI

from aimass.operations._admin import Audit, Keys, Projects
from aimass.operations._namespaces import Bases, Datasets, Jobs, Models, Pipelines

__all__ = [
    "ALL_PROJECTS",
    "NAMESPACES",
    "Audit",
    "Bases",
    "Datasets",
    "Jobs",
    "Keys",
    "Models",
    "Operations",
    "Pipelines",
    "Projects",
    "job_outcome",
    "key_changes",
    "wait_for",
]


#: ``project=`` of a ``keys`` call that means every project (an all-projects key):
#: in process only; the REST API manages one project's keys at a time.
ALL_PROJECTS = "*"


class Operations(Protocol):
    """A whole client: the namespaces, and serving at the top level."""

    @property
    def datasets(self) -> Datasets:
        """``.datasets``."""
        ...

    @property
    def bases(self) -> Bases:
        """``.bases``."""
        ...

    @property
    def models(self) -> Models:
        """``.models``."""
        ...

    @property
    def pipelines(self) -> Pipelines:
        """``.pipelines``."""
        ...

    @property
    def jobs(self) -> Jobs:
        """``.jobs``."""
        ...

    @property
    def keys(self) -> Keys:
        """``.keys``."""
        ...

    @property
    def projects(self) -> Projects:
        """``.projects``."""
        ...

    @property
    def audit(self) -> Audit:
        """``.audit``."""
        ...

    def whoami(self) -> WhoAmI:
        """The caller: its key, project and scopes."""
        ...

    def about(self) -> AboutOut:
        """The deployment: its aimass version and the policies a client adapts to."""
        ...

    def collect_garbage(
        self, *, older_than: float = 3600.0, dry_run: bool = False
    ) -> GarbageReportOut:
        """Remove the artifacts nothing refers to, written more than ``older_than``
        seconds ago (``aimass gc``; all-projects admins)."""
        ...

    def predict(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Predictions for ``inputs`` with ``NAME@ALIAS`` or ``NAME@VERSION``."""
        ...

    def predict_full(
        self,
        ref: str,
        inputs: Sequence[str],
        *,
        explain: bool | str | None = None,
        project: str | None = None,
    ) -> PredictResponse:
        """Predictions plus the version that made them."""
        ...

    def generate(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """Generated text with ``finish_reason``, ``usage`` and ``timing``."""
        ...

    def generate_stream(
        self, ref: str, prompt: str, *, project: str | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Text pieces as they are decoded, then the final event."""
        ...


#: The namespaces of :class:`Operations`, by attribute name.
NAMESPACES: dict[str, type[Any]] = {
    "datasets": Datasets,
    "bases": Bases,
    "models": Models,
    "pipelines": Pipelines,
    "jobs": Jobs,
    "keys": Keys,
    "projects": Projects,
    "audit": Audit,
}


def key_changes(
    predict_budget: int | str | None,
    output_policy: str | None,
    limits: Mapping[str, int | str | None] | None,
) -> dict[str, Any]:
    """What a ``keys.update`` call changes: the options given, with ``"unlimited"`` (or
    ``"none"``) removing the budget and ``"full"`` (or ``"none"``) the output policy."""
    body: dict[str, Any] = {}
    if predict_budget is not None:
        unlimited = str(predict_budget).strip().lower() in ("unlimited", "none")
        body["predict_budget"] = None if unlimited else predict_budget
    if output_policy is not None:
        full = output_policy.strip().lower() in ("full", "none", "")
        body["output_policy"] = None if full else output_policy
    if limits:
        body["limits"] = dict(limits)
    return body


def job_outcome(job: JobOut) -> JobOut:
    """What ``jobs.wait`` returns for a finished ``job``: the job, unless it failed, when
    :class:`~aimass.errors.JobFailed` is raised."""
    from aimass.errors import JobFailed

    if job.status == "failed":
        raise JobFailed(f"job {job.id} failed: {job.error}", job_id=job.id)
    return job


def wait_for(
    get: Callable[[], JobOut],
    *,
    progress: Callable[[JobOut], None] | None,
    poll: float,
    timeout: float | None,
) -> JobOut:
    """What ``jobs.wait`` does on every synchronous surface: ``get()`` the job every
    ``poll`` seconds (each one shown to ``progress``) until it has finished, then
    :func:`job_outcome`; TimeoutError past ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = get()
        if progress is not None:
            progress(job)
        if job.finished:
            return job_outcome(job)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job.id} still {job.status} after {timeout} s")
        time.sleep(poll)
