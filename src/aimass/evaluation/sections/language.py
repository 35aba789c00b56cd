"""Language models: held-out loss and perplexity, generation samples, perplexity by group
and under perturbation.

The loss of a row is what the model's training task minimises on it (the model
supplies it as ``ModelUnderTest.nll``): for a masked LM the cross-entropy on
BERT-masked positions (masks drawn from the report seed, so the number is
reproducible); for a causal LM the next-token NLL of every token of a text, or
of the response tokens only for a prompt/response pair; for a seq2seq model the
NLL of the target tokens given the source (teacher forcing). Perplexity is
``exp(total NLL / total tokens)`` over the rows — a token-weighted mean, not a
mean of per-row perplexities.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from aimass.errors import AimassError
from aimass.evaluation import plots
from aimass.evaluation.base import (
    NOT_APPLICABLE,
    ReportContext,
    Section,
    SectionResult,
    register_section,
)
from aimass.evaluation.html import esc, img, kv_table, table
from aimass.evaluation.sections.fairness import (
    PLOT_GROUPS,
    GroupFairness,
    definitions,
    excluded_note,
    intro,
)
from aimass.evaluation.sections.robustness import PerturbationRobustness

__all__ = [
    "GenerationSamples",
    "LanguageModelFairness",
    "LanguageModelQuality",
    "LanguageModelRobustness",
    "loss_definition",
    "perplexity_of",
]

SAMPLE_CHARS = 400
MAX_LOSS = 50.0  # exp(50) is already meaningless; keeps a diverged model's number finite


def perplexity_of(nll: np.ndarray, tokens: np.ndarray) -> tuple[float, float, int]:
    """``(mean loss per token, perplexity, tokens)`` of rows' summed NLL and token counts."""
    count = int(np.sum(tokens))
    loss = float(np.sum(nll) / count) if count else 0.0
    return loss, float(np.exp(min(loss, MAX_LOSS))), count


def loss_definition(task: str, kind: str) -> str:
    """What the loss of a row is, for the report reader."""
    if task == "masked-lm":
        return (
            "cross-entropy on the BERT-masked positions: 15 % of the non-special tokens "
            "selected (80 % replaced by the mask token, 10 % by a random token, 10 % kept), "
            "masks drawn from the report seed exactly as in training"
            + ("; prompts and responses are scored as separate texts" if kind == "pairs" else "")
        )
    if task == "seq2seq":
        return "NLL of the target tokens (and EOS) given the source, with teacher forcing"
    if kind == "pairs":
        return (
            "NLL of the response tokens (and EOS) given the prompt, formatted as in training; "
            "prompt tokens carry no loss"
        )
    return "next-token NLL of every token of the text (BOS, text, EOS)"


def _quantiles(per_row: np.ndarray) -> dict[str, float]:
    if not len(per_row):
        return {}
    qs = (0.1, 0.5, 0.9)
    return {
        f"p{round(q * 100):02d}": float(v)
        for q, v in zip(qs, np.quantile(per_row, qs), strict=True)
    }


class LanguageModelQuality(Section):
    """Held-out loss, perplexity and the number of tokens they are computed on."""

    key = "quality.language-model"
    name = "quality"
    title = "Quality"

    def compute(self, ctx: ReportContext) -> SectionResult:
        nll, tokens = ctx.row_nll
        loss, perplexity, count = perplexity_of(nll, tokens)
        scored = tokens > 0
        per_row = np.exp(np.minimum(nll[scored] / tokens[scored], MAX_LOSS))
        data: dict[str, Any] = {
            "loss": loss,
            "perplexity": perplexity,
            "tokens": count,
            "rows": len(ctx.data),
            "rows_scored": int(scored.sum()),
            "loss_definition": loss_definition(ctx.model.task, ctx.data.kind),
            "seed": ctx.options.seed,
            "row_perplexity_quantiles": _quantiles(per_row),
        }
        notes = []
        if data["rows_scored"] < len(ctx.data):
            notes.append(
                f"{len(ctx.data) - data['rows_scored']} row(s) had no token to score (e.g. a "
                "prompt that fills the whole context) and count for nothing."
            )
        return SectionResult(
            data=data,
            summary={"perplexity": perplexity, "loss": loss, "tokens": count},
            notes=notes,
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        q = data["row_perplexity_quantiles"]
        return (
            f'<p class="note">Loss per token: {esc(data["loss_definition"])}. Perplexity is '
            "exp(total loss / total tokens) over the split; lower is better, and it is only "
            "comparable between models with the same tokenizer.</p>"
            + kv_table(
                [
                    ("held-out loss (nats per token)", data["loss"]),
                    ("perplexity", data["perplexity"]),
                    ("tokens scored", data["tokens"]),
                    ("rows scored / rows", f"{data['rows_scored']:,} / {data['rows']:,}"),
                    (
                        "per-row perplexity p10 / median / p90",
                        " / ".join(f"{q[k]:.4g}" for k in ("p10", "p50", "p90")) if q else "—",
                    ),
                    ("seed", data["seed"]),
                ]
            )
        )


class GenerationSamples(Section):
    """A few held-out prompts with the model's greedy output beside the reference."""

    key = "samples"
    name = "samples"
    title = "Generation samples"

    def compute(self, ctx: ReportContext) -> SectionResult:
        if ctx.model.generate is None:
            return SectionResult.skipped(
                f"{ctx.model.task!r} models do not generate text", status=NOT_APPLICABLE
            )
        opts = ctx.options
        if not opts.include_examples:
            return SectionResult.skipped(
                "dataset texts are kept out of this report (--no-examples)"
            )
        if opts.generation_samples == 0:
            return SectionResult.skipped("no samples were asked for (generation_samples 0)")
        n = min(len(ctx.data), opts.generation_samples)
        rows = np.sort(ctx.rng("generation-samples").choice(len(ctx.data), size=n, replace=False))
        ctx.phase(f"generating {n} samples", n)
        samples, failed = [], []
        for i in rows.tolist():
            prompt, reference = _prompt_and_reference(ctx, i)
            started = time.perf_counter()
            try:
                generated = ctx.model.generate(prompt, opts.sample_tokens)
            except AimassError as exc:
                failed.append(f"row {i}: {exc.message}")
                ctx.advance(1)
                continue
            samples.append(
                {
                    "row": i,
                    "prompt": prompt,
                    "reference": reference,
                    "generated": generated,
                    "seconds": time.perf_counter() - started,
                }
            )
            ctx.advance(1)
        if not samples:
            return SectionResult.skipped("no sample could be generated: " + "; ".join(failed))
        data = {
            "decoding": "greedy",
            "max_new_tokens": opts.sample_tokens,
            "prompt_source": (
                "the first half of the text; the reference is the rest"
                if ctx.data.targets is None
                else "the prompt (source); the reference is the dataset's response (target)"
            ),
            "samples": samples,
        }
        return SectionResult(data=data, notes=[f"Not generated: {f}" for f in failed])

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        rows = "".join(
            f"<tr><td>{esc(s['row'])}</td><td>{esc(_clip(s['prompt']))}</td>"
            f"<td>{esc(_clip(s['reference']))}</td><td>{esc(_clip(s['generated']))}</td>"
            f'<td class="n">{s["seconds"]:.2f}</td></tr>'
            for s in data["samples"]
        )
        return (
            f'<p class="note">{esc(data["decoding"]).capitalize()} decoding, at most '
            f"{esc(data['max_new_tokens'])} new tokens. Prompt: {esc(data['prompt_source'])}.</p>"
            '<div class="wrap"><table><thead><tr><th>row</th><th>prompt</th><th>reference</th>'
            f"<th>generated</th><th>seconds</th></tr></thead><tbody>{rows}</tbody></table></div>"
        )


def _prompt_and_reference(ctx: ReportContext, i: int) -> tuple[str, str]:
    text = ctx.data.texts[i]
    if ctx.data.targets is not None:
        return text, ctx.data.targets[i]
    cut = max(1, len(text) // 2)  # as the training task's sample table cuts a text
    return text[:cut], text[cut:]


def _clip(text: str) -> str:
    return text if len(text) <= SAMPLE_CHARS else text[: SAMPLE_CHARS - 1] + "…"


LM_FAIRNESS_DEFINITIONS = {
    "groups": "rows grouped by the value of the group field; groups below the minimum size are "
    "reported but excluded from the differences",
    "perplexity": "per group: exp(total loss / total tokens) over the group's rows",
    "perplexity_ratio": "highest group perplexity / lowest group perplexity (1 = parity)",
    "loss_difference": "max - min over groups of the loss per token (nats)",
    "parity_metrics": "demographic parity and equalized odds are defined for predicted classes; "
    "a language model predicts tokens, so they are not reported",
}


class LanguageModelFairness(GroupFairness):
    """Perplexity per group and its spread."""

    key = "fairness.language-model"

    def compare_groups(
        self, ctx: ReportContext, mask: np.ndarray, groups: np.ndarray, eligible: list[str]
    ) -> SectionResult:
        nll, tokens = ctx.row_nll
        nll, tokens = nll[mask], tokens[mask]
        by_group: list[dict[str, Any]] = []
        for g in eligible:
            rows = groups == g
            loss, perplexity, count = perplexity_of(nll[rows], tokens[rows])
            by_group.append(
                {
                    "group": g,
                    "count": int(rows.sum()),
                    "tokens": count,
                    "loss": loss,
                    "perplexity": perplexity,
                }
            )
        losses = [g["loss"] for g in by_group]
        perplexities = [g["perplexity"] for g in by_group]
        loss, perplexity, _ = perplexity_of(nll, tokens)
        data = {
            "groups": by_group,
            "overall": {"loss": loss, "perplexity": perplexity},
            "loss_difference": max(losses) - min(losses),
            "perplexity_ratio": max(perplexities) / min(perplexities)
            if min(perplexities) > 0
            else None,
            "definitions": LM_FAIRNESS_DEFINITIONS,
        }
        shown = by_group[:PLOT_GROUPS]
        figure = plots.bar_groups(
            [g["group"] for g in shown],
            [("perplexity", {"perplexity": [g["perplexity"] for g in shown]}, None)],
        )
        return SectionResult(
            data=data,
            figures={"groups": figure},
            summary={
                "perplexity_ratio": data["perplexity_ratio"],
                "loss_difference": data["loss_difference"],
            },
        )

    def render(self, data: dict[str, Any], figures: dict[str, str]) -> str:
        return (
            intro(data)
            + kv_table(
                [
                    ("perplexity ratio (highest / lowest group)", data["perplexity_ratio"]),
                    ("loss difference between groups (nats)", data["loss_difference"]),
                    ("overall perplexity (compared rows)", data["overall"]["perplexity"]),
                ]
            )
            + img(figures.get("groups"), "perplexity per group")
            + "<h3>Per group</h3>"
            + table(
                ("group", "rows", "tokens", "loss", "perplexity"),
                [
                    (g["group"], g["count"], g["tokens"], g["loss"], g["perplexity"])
                    for g in data["groups"]
                ],
            )
            + excluded_note(data)
            + definitions(data)
        )


class LanguageModelRobustness(PerturbationRobustness):
    """Perplexity on perturbed inputs and its ratio to the clean perplexity of the same rows."""

    key = "robustness.language-model"
    metric = "perplexity"
    worst = ("worst_perplexity_ratio", "perplexity_ratio")

    def perturbed_input(self, ctx: ReportContext) -> str:
        if ctx.data.targets is None:
            return "the text itself (which is also what is scored)"
        return "the prompt (source) only; the loss is still taken on the unchanged response"

    def measure(
        self,
        ctx: ReportContext,
        idx: np.ndarray,
        perturbed: list[str] | None,
        clean: dict[str, Any] | None,
    ) -> dict[str, Any]:
        if perturbed is None:
            nll, tokens = ctx.row_nll
            nll, tokens = nll[idx], tokens[idx]
        else:
            targets = None if ctx.data.targets is None else [ctx.data.targets[i] for i in idx]
            nll, tokens = ctx.nll(perturbed, targets)
        loss, perplexity, count = perplexity_of(nll, tokens)
        out: dict[str, Any] = {"loss": loss, "perplexity": perplexity, "tokens": count}
        if clean is not None:
            out["loss_increase"] = loss - clean["loss"]
            out["perplexity_ratio"] = (
                perplexity / clean["perplexity"] if clean["perplexity"] > 0 else 0.0
            )
        return out

    def columns(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        return [
            ("perplexity", "perplexity"),
            ("× clean", "perplexity_ratio"),
            ("loss", "loss"),
            ("loss increase", "loss_increase"),
            ("tokens", "tokens"),
        ]

    def clean_note(self, data: dict[str, Any]) -> str:
        return (
            f"clean perplexity {data['clean']['perplexity']:.4g} on the same rows; "
            "× clean: perturbed / clean perplexity"
        )


register_section(LanguageModelQuality())
register_section(GenerationSamples())
register_section(LanguageModelFairness())
register_section(LanguageModelRobustness())
