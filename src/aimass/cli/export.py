"""What ``aimass models export`` tells the user about loading the export elsewhere."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["export_note"]


def export_note(directory: Path) -> str | None:
    """A note when Hugging Face's classifier class would not reproduce the model's scores.

    ``config.json``'s ``aimass_head`` says how the head pools the backbone; only
    when ``hf_class_matches`` is false is there something to say.
    """
    try:
        config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    head = config.get("aimass_head") if isinstance(config, dict) else None
    if not isinstance(head, dict) or head.get("hf_class_matches", True):
        return None
    architecture = (config.get("architectures") or ["the bare model"])[0]
    return (
        f"note: this head uses {head.get('pooling')} pooling of hidden states "
        f"{head.get('hidden_states')}, which no Hugging Face *ForSequenceClassification "
        f"computes: load {architecture} with AutoModel and apply the head as "
        "docs/registry.md shows ('Exported classifiers'); train with --pooling pooler "
        "(encoders) for a drop-in AutoModelForSequenceClassification"
    )
