"""``ws.reports``: evaluation reports attached to versions, and the privacy audit."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aimass.entities import (
    Attachment,
)
from aimass.errors import (
    InvalidArgument,
)
from aimass.refs import parse_ref
from aimass.store import DEFAULT_PROJECT

if TYPE_CHECKING:
    pass
from aimass.workspace._service import Service

__all__ = ["ReportService"]


class ReportService(Service):
    """``ws.reports``: evaluation reports and the membership-inference audit."""

    def audit_privacy(
        self,
        ref: str,
        *,
        dataset: str,
        project: str = DEFAULT_PROJECT,
        max_examples: int = 1000,
        calibrated: bool = True,
    ) -> dict[str, Any]:
        """Membership-inference audit of a version, attached to it; returns the report.

        Runs an ``audit-privacy`` job in this process (``ws.jobs.submit_audit`` queues one).
        """
        from aimass.jobs.audit import AuditSpec

        spec = AuditSpec(
            model=ref, dataset=dataset, max_examples=max_examples, calibrated=calibrated
        )
        return self._ws.jobs.audit_privacy(spec, project=project)

    def evaluations(self, ref: str, *, project: str = DEFAULT_PROJECT) -> list[Attachment]:
        """Evaluation reports attached to a version, newest first."""
        version = self._ws.models.get(ref, project=project)
        return self.store.registry.attachments(project, parse_ref(version.ref), kind="evaluation")

    def report_file(self, attachment: Attachment, *, fmt: str = "html") -> Path:
        """The stored ``report.html`` or ``report.json`` of an evaluation attachment."""
        if fmt not in ("html", "json"):
            raise InvalidArgument(f"report format {fmt!r} is not 'html' or 'json'")
        return self.artifacts.resolve(attachment.uri) / f"report.{fmt}"
