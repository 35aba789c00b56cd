"""``aimass audit-privacy``, and how privacy records are shown in ``models show``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aimass.cli import _flows as flows
from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    table,
)


def privacy_line(privacy: dict[str, Any] | None) -> str:
    """One line for ``models show``: epsilon, delta, noise, sampling, steps, accountant."""
    if not privacy:
        return "not trained with differential privacy"
    return (
        f"DP-SGD epsilon {privacy['epsilon']} (target {privacy['target_epsilon']}), "
        f"delta {privacy['delta']:g}, noise {privacy['noise_multiplier']}, "
        f"clip {privacy['max_grad_norm']}{_per_layer(privacy)}, "
        f"sampling rate {privacy['sample_rate']:.4g}, "
        f"{privacy['steps']} steps, {privacy['accountant']} accountant"
    )


def _per_layer(privacy: dict[str, Any]) -> str:
    """`` per layer (K tensors)`` for a per-layer clipped run; records before it are flat."""
    if privacy.get("clipping") != "per-layer":
        return ""
    return f" per layer ({privacy['clipped_tensors']} tensors)"


def audit_line(summary: dict[str, Any]) -> str:
    """One line for ``models show``: the attack's AUC and TPR at 1 % FPR next to epsilon."""
    parts = [f"membership AUC {summary['auc']:.3f}", f"TPR@1%FPR {summary['tpr_at_1pct_fpr']:.3f}"]
    if "calibrated_auc" in summary:
        parts.append(f"calibrated AUC {summary['calibrated_auc']:.3f}")
    epsilon = summary.get("epsilon")
    parts.append(f"epsilon {epsilon}" if epsilon is not None else "no DP")
    return ", ".join(parts)


@command
def audit_privacy(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION (or @ALIAS) of the model to attack.")],
    dataset: Annotated[str, typer.Option(help="The dataset the model was trained on.")],
    max_examples: Annotated[
        int, typer.Option(help="Members (and as many non-members) to attack.")
    ] = 1000,
    calibrated: Annotated[
        bool,
        typer.Option(help="Also run the reference-model calibrated attack (trains a small head)."),
    ] = True,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Membership-inference audit: can an attacker tell training rows from held-out rows?"""
    spec = {
        "model": ref,
        "dataset": dataset,
        "max_examples": max_examples,
        "calibrated": calibrated,
    }
    with console.status(f"attacking {ref} ..."):
        report = flows.audit_privacy(backend(), spec, project=project)
    if json_out:
        emit_json(report)
        return
    console.print(
        f"[bold]{report['model']}[/] on {report['dataset']}: {report['members']} members (train) "
        f"vs {report['non_members']} non-members (test)"
    )
    table(
        "membership inference",
        ["attack", "AUC", "TPR @ 1% FPR", "advantage"],
        [
            [name, f"{a['auc']:.3f}", f"{a['tpr_at_1pct_fpr']:.3f}", f"{a['advantage']:.3f}"]
            for name, a in report["attacks"].items()
        ],
    )
    if report.get("epsilon") is not None:
        console.print(
            f"  trained with epsilon {report['epsilon']}: DP bounds the advantage by "
            f"{report['dp_advantage_bound']}"
        )
    else:
        console.print("  not trained with differential privacy")
    console.print("  attached to the model version (see 'aimass models show' and the model card)")
