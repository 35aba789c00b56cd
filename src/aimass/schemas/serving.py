"""Wire schemas of serving: predicting with a classifier and generating text.

The requests bound their sizes here; the server applies its own, configurable,
limits (``AIMASS_MAX_PREDICT_BATCH``, ``AIMASS_MAX_NEW_TOKENS``, ...) on top.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from aimass.schemas._common import _In, _Out

# -- predict --------------------------------------------------------------------------


class PredictRequest(_In):
    """Inputs to predict (the server bounds how many: ``AIMASS_MAX_PREDICT_BATCH``)."""

    inputs: list[str] = Field(min_length=1, max_length=100_000)
    explain: bool | Literal["integrated-gradients", "attention", "occlusion"] | None = Field(
        default=None,
        description="Add a per-word explanation to each prediction (a NER tagger's: one per "
        "entity it found; a masked LM's: one per mask, of its top fill): true (integrated "
        "gradients) or a method name; at most "
        "AIMASS_MAX_EXPLAIN_BATCH inputs.",
    )


class GenerateRequest(_In):
    """A prompt and how to sample; the server bounds ``max_new_tokens`` (AIMASS_MAX_NEW_TOKENS)
    and the prompt's length (AIMASS_MAX_TEXT_CHARS and the model's context)."""

    prompt: str = Field(min_length=1)
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="Default: 128, or AIMASS_MAX_NEW_TOKENS when lower."
    )
    temperature: float = Field(default=0.0, ge=0, le=100, description="0 = greedy.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0, le=1_000_000, description="0 = off.")
    stop: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=16, description="Strings that end the text (excluded)."
    )
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = Field(
        default=False,
        description="Answer with server-sent events (also when Accept: text/event-stream).",
    )

    def options(self) -> dict[str, Any]:
        """The sampling options given, as ``Workspace.generate`` takes them."""
        return self.model_dump(exclude={"prompt", "stream"}, exclude_none=True)


class GenerateResponse(_Out):
    """The generated text, why it ended (``stop`` or ``length``), token counts and timing."""

    text: str
    finish_reason: Literal["stop", "length"]
    usage: dict[str, int]
    timing: dict[str, float]


class PredictResponse(_Out):
    """One prediction per input, in order, and the version that made them."""

    model: str
    version: int
    predictions: list[dict[str, Any]]
