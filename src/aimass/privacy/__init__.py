"""Privacy: differentially private training (Opacus) and empirical privacy audits.

Importing this package is light; Opacus and torch load when a run starts.
PII de-identification lives with the data it cleans, in ``aimass.data.deidentify``.
"""

from aimass.privacy.accountant import (
    ACCOUNTANTS,
    default_delta,
    epsilon_spent,
    noise_for_epsilon,
)
from aimass.privacy.audit import AuditResult, membership_inference
from aimass.privacy.dp import GRAD_SAMPLE_MODES, DPConfig, DPEngine
from aimass.privacy.validate import Problem, find_problems, require_supported

__all__ = [
    "ACCOUNTANTS",
    "GRAD_SAMPLE_MODES",
    "AuditResult",
    "DPConfig",
    "DPEngine",
    "Problem",
    "default_delta",
    "epsilon_spent",
    "find_problems",
    "membership_inference",
    "noise_for_epsilon",
    "require_supported",
]
