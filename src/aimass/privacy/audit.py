"""Membership-inference attacks: how well can an attacker tell training members apart?

Pure math over per-example losses (computing them is the caller's business):

* ``loss_threshold`` (Yeom et al. 2018): members tend to have lower loss, so
  the score is ``-loss``.
* ``calibrated`` (difficulty calibration, Watson et al. 2022): an example's
  loss under the target minus its loss under a *reference* model that saw
  neither the members nor the non-members. It removes how hard an example is
  in itself, which is what makes plain loss thresholds weak at low FPR.

For each attack: ROC AUC (0.5 = guessing), the true-positive rate at 1 % false
positives (Carlini et al. 2022: what matters is confident identification of a
few members) and the membership advantage ``max(TPR - FPR)``. A model trained
with epsilon-DP bounds the advantage by ``(e^eps - 1 + 2 delta) / (e^eps + 1)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from aimass.errors import InvalidArgument

__all__ = ["AttackResult", "AuditResult", "attack_metrics", "membership_inference"]


@dataclass(frozen=True)
class AttackResult:
    """One attack's success."""

    auc: float
    tpr_at_1pct_fpr: float
    advantage: float


@dataclass(frozen=True)
class AuditResult:
    """The audit of one model: attacks by name, and how many examples each side had."""

    attacks: dict[str, AttackResult]
    members: int
    non_members: int

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "attacks": {name: asdict(result) for name, result in self.attacks.items()},
            "members": self.members,
            "non_members": self.non_members,
        }


def _roc(scores_members: np.ndarray, scores_non: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR at every threshold (a higher score means 'member')."""
    scores = np.concatenate([scores_members, scores_non])
    labels = np.concatenate([np.ones(len(scores_members)), np.zeros(len(scores_non))])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    # one point per distinct threshold, so ties do not create fake steps
    distinct = np.where(np.diff(scores))[0]
    cut = np.r_[distinct, len(scores) - 1]
    tps = np.cumsum(labels)[cut]
    fps = (cut + 1) - tps
    tpr = np.r_[0.0, tps / len(scores_members)]
    fpr = np.r_[0.0, fps / len(scores_non)]
    return fpr, tpr


def attack_metrics(scores_members: np.ndarray, scores_non: np.ndarray) -> AttackResult:
    """AUC, TPR at 1 % FPR and advantage of scores where higher means 'member'."""
    members = np.asarray(scores_members, dtype=np.float64)
    non = np.asarray(scores_non, dtype=np.float64)
    if len(members) == 0 or len(non) == 0:
        raise InvalidArgument("a membership audit needs both members and non-members")
    if not (np.isfinite(members).all() and np.isfinite(non).all()):
        raise InvalidArgument("attack scores must be finite (a loss was NaN or infinite)")
    fpr, tpr = _roc(members, non)
    auc = float(np.trapezoid(tpr, fpr))
    tpr_low = float(tpr[fpr <= 0.01].max())
    return AttackResult(
        auc=round(auc, 4),
        tpr_at_1pct_fpr=round(tpr_low, 4),
        advantage=round(float((tpr - fpr).max()), 4),
    )


def membership_inference(
    member_losses: np.ndarray,
    non_member_losses: np.ndarray,
    *,
    member_reference: np.ndarray | None = None,
    non_member_reference: np.ndarray | None = None,
) -> AuditResult:
    """Run the loss-threshold attack, and the calibrated one when reference losses are given.

    Args:
        member_losses: Per-example loss of the target on examples it trained on.
        non_member_losses: Per-example loss of the target on held-out examples.
        member_reference: The reference model's losses on the same members.
        non_member_reference: The reference model's losses on the same non-members.
    """
    members = np.asarray(member_losses, dtype=np.float64)
    non = np.asarray(non_member_losses, dtype=np.float64)
    attacks = {"loss_threshold": attack_metrics(-members, -non)}
    if (member_reference is None) != (non_member_reference is None):
        raise InvalidArgument("give reference losses for both members and non-members, or none")
    if member_reference is not None and non_member_reference is not None:
        ref_m = np.asarray(member_reference, dtype=np.float64)
        ref_n = np.asarray(non_member_reference, dtype=np.float64)
        if ref_m.shape != members.shape or ref_n.shape != non.shape:
            raise InvalidArgument("reference losses must match the target losses one to one")
        attacks["calibrated"] = attack_metrics(-(members - ref_m), -(non - ref_n))
    return AuditResult(attacks=attacks, members=len(members), non_members=len(non))


def dp_advantage_bound(epsilon: float, delta: float) -> float:
    """The largest membership advantage an (epsilon, delta)-DP model allows."""
    if epsilon > 50:
        return 1.0
    e = math.exp(epsilon)
    return min(1.0, (e - 1 + 2 * delta) / (e + 1))
