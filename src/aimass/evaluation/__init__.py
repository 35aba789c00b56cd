"""Evaluation reports: quality, calibration, fairness, robustness, explanations, resources.

``build_report(model, data, options)`` runs the sections registered for the
model's task, gives each a pass/warn/fail verdict (:mod:`aimass.evaluation.verdicts`)
and returns a :class:`Report` whose JSON is validated against
:data:`REPORT_SCHEMA` and whose HTML is one self-contained page. The model is
given as plain callables (:class:`ModelUnderTest`), so this package needs no
serving code; ``aimass.jobs.evaluate`` composes the two.
"""

from aimass.evaluation.base import (
    EvaluationData,
    ModelUnderTest,
    ReportContext,
    ReportOptions,
    Section,
    SectionResult,
    get_report_sections,
    get_section,
    register_report_task,
    register_section,
)
from aimass.evaluation.perturbations import (
    Perturbation,
    PiiMasking,
    get_perturbation,
    list_perturbations,
    register_perturbation,
)
from aimass.evaluation.report import Report, build_report, check_labels, render_html
from aimass.evaluation.schema import REPORT_SCHEMA, validate_report
from aimass.evaluation.verdicts import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    Verdict,
    report_verdict,
    section_verdict,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "REPORT_SCHEMA",
    "EvaluationData",
    "ModelUnderTest",
    "Perturbation",
    "PiiMasking",
    "Report",
    "ReportContext",
    "ReportOptions",
    "Section",
    "SectionResult",
    "Thresholds",
    "Verdict",
    "build_report",
    "check_labels",
    "get_perturbation",
    "get_report_sections",
    "get_section",
    "list_perturbations",
    "register_perturbation",
    "register_report_task",
    "register_section",
    "render_html",
    "report_verdict",
    "section_verdict",
    "validate_report",
]
