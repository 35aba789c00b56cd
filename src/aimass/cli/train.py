"""``aimass train``, ``aimass predict`` and ``aimass quickstart``."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aimass.cli import _flows as flows
from aimass.cli._common import (
    JsonOpt,
    ProjectOpt,
    backend,
    command,
    console,
    emit_json,
    err_console,
    settings,
    table,
)
from aimass.cli._training import (
    AliasOpt,
    BatchSizeOpt,
    EpochsOpt,
    EpsilonOpt,
    EvalStepsOpt,
    LrOpt,
    MaxLengthOpt,
    PatienceOpt,
    ReuseOpt,
    SeedOpt,
    given,
    parse_layers,
    parse_options,
    print_version,
)
from aimass.cli.evaluate import EXPLAIN_HELP, print_explanations
from aimass.errors import InvalidArgument
from aimass.training.recipes import RECIPES

if TYPE_CHECKING:
    from aimass.cli._common import Backend


@command
def train(
    dataset: Annotated[str, typer.Option(help="Dataset NAME or NAME@VERSION.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model name to register under.")],
    base: Annotated[
        str | None,
        typer.Option(
            help="Base model NAME or NAME@VERSION (default: the dataset's recommended recipe: "
            "m3e-small fine-tuned for Chinese text, MiniLM features otherwise)."
        ),
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            help="classification, regression, token-classification, masked-lm, causal-lm or "
            "seq2seq."
        ),
    ] = "classification",
    mode: Annotated[
        str | None,
        typer.Option(help="features (frozen encoder + head) or finetune (default per task)."),
    ] = None,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchSizeOpt = None,
    grad_accum: Annotated[
        int | None, typer.Option(help="Batches whose gradients add up into one step.")
    ] = None,
    max_train_rows: Annotated[
        int | None, typer.Option(help="Train on a seeded sample of at most N training rows.")
    ] = None,
    max_length: MaxLengthOpt = 128,
    pooling: Annotated[
        str | None,
        typer.Option(
            help="Encoders: mean, cls or pooler (pooler = Hugging Face's head); "
            "decoders: mean or last (the last real token)."
        ),
    ] = None,
    feature_layers: Annotated[
        int | None,
        typer.Option(help="Pool and concatenate the last N hidden layers (default per mode)."),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            help="Pool these hidden-state indices instead, comma-separated "
            "(0 = embeddings, -1 = output; e.g. '6' or '-1,-4')."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="Task option KEY=VALUE, repeatable (e.g. whole_word_mask=true)."),
    ] = None,
    lora_rank: Annotated[
        int | None,
        typer.Option(
            help="LoRA: train rank-R adapters (and the head) instead of every weight; "
            "finetune mode; classification, regression, causal-lm (0 = off)."
        ),
    ] = None,
    lora_alpha: Annotated[
        float | None, typer.Option(help="LoRA: scale numerator, update x alpha/rank (default 2R).")
    ] = None,
    lora_dropout: Annotated[
        float | None, typer.Option(help="LoRA: dropout on the adapters' input (default 0.05).")
    ] = None,
    lora_targets: Annotated[
        str | None,
        typer.Option(
            help="LoRA: adapted linear layers, comma-separated (default query,value for "
            "BERT-like encoders, q_proj,v_proj for decoders)."
        ),
    ] = None,
    probe_epochs: Annotated[
        int | None,
        typer.Option(
            help="Finetune mode: first train the head alone on frozen features for N epochs "
            "(a linear probe), then fine-tune from it (LP-FT; under --dp both share the budget)."
        ),
    ] = None,
    probe_lr: Annotated[
        float | None, typer.Option(help="The linear probe's step size (default 1e-2).")
    ] = None,
    trainable: Annotated[
        str | None,
        typer.Option(
            help="Finetune mode: which backbone weights train with the head: all (default), "
            "biases (BitFit) or top-N (the last N layers)."
        ),
    ] = None,
    layer_lr_decay: Annotated[
        float | None,
        typer.Option(
            help="Finetune mode: each layer's step size is the one above's times this, "
            "from the head (--lr) down to the embeddings (e.g. 0.8; default 1: all alike)."
        ),
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(
            help="Label smoothing of the training loss: 1-s on the label, s spread over the "
            "classes (e.g. 0.1; default 0: off). Not for regression or distillation."
        ),
    ] = None,
    adversarial_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Classifiers, regressors, NER taggers: train each batch again on its "
            "embeddings moved this far against the model (FGM; e.g. 1.0; default 0: off).",
        ),
    ] = None,
    eval_steps: EvalStepsOpt = None,
    patience: PatienceOpt = None,
    seed: SeedOpt = 0,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Data-parallel training processes on Ray Train (1-64; default 1: in this "
            "process, without Ray). --batch-size stays the global batch, shared out.",
        ),
    ] = None,
    alias: AliasOpt = None,
    reuse: ReuseOpt = False,
    dp: Annotated[
        bool, typer.Option("--dp", help="Train with differential privacy (DP-SGD, Opacus).")
    ] = False,
    target_epsilon: EpsilonOpt = None,
    delta: Annotated[
        float | None, typer.Option(help="DP: delta (default: a power of ten below 1/(10 N)).")
    ] = None,
    max_grad_norm: Annotated[
        float | None, typer.Option(help="DP: per-example gradient clipping bound.")
    ] = None,
    accountant: Annotated[str | None, typer.Option(help="DP: prv (default) or rdp.")] = None,
    grad_sample_mode: Annotated[
        str | None,
        typer.Option(
            help="DP: hooks or ghost (default: hooks for features and for tied weights that "
            "train, ghost for finetune)."
        ),
    ] = None,
    dp_train_embeddings: Annotated[
        bool,
        typer.Option(
            "--dp-train-embeddings",
            help="DP fine-tuning: train the token embeddings too (frozen by default).",
        ),
    ] = False,
    dp_clipping: Annotated[
        str | None,
        typer.Option(
            help="DP: flat (default: the whole gradient bounded by --max-grad-norm) or "
            "per-layer (each trained tensor by max-grad-norm / sqrt(tensors); hooks mode).",
        ),
    ] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Train a model on a dataset from a base and register the result.

    Locally it trains in this process; with --url / AIMASS_URL it submits a job to
    the server and follows its progress.
    """
    from aimass.training.callbacks import RichProgress
    from aimass.training.tasks import headline_metric

    config = given(
        task=task,
        mode=mode,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_train_rows=max_train_rows,
        max_length=max_length,
        pooling=pooling,
        feature_layers=feature_layers,
        layers=parse_layers(layers),
        seed=seed,
        options=parse_options(option or []) or None,
        lora_rank=lora_rank or None,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        lora_targets=[t.strip() for t in lora_targets.split(",")] if lora_targets else None,
        workers=workers,
        probe_epochs=probe_epochs,
        probe_lr=probe_lr,
        trainable=trainable,
        layer_lr_decay=layer_lr_decay,
        label_smoothing=label_smoothing,
        adversarial_epsilon=adversarial_epsilon,
        eval_steps=eval_steps,
        patience=patience,
    )
    dp_options = given(
        target_epsilon=target_epsilon,
        delta=delta,
        max_grad_norm=max_grad_norm,
        accountant=accountant,
        grad_sample_mode=grad_sample_mode,
        train_embeddings=dp_train_embeddings or None,
        clipping=dp_clipping,
    )
    if dp_options and not dp:
        raise InvalidArgument("--target-epsilon, --delta, ... are options of --dp; add --dp")
    spec = {
        "dataset": dataset,
        "base": base,
        "model": name,
        "config": config,
        "alias": alias,
        "privacy": dp_options if dp else None,
    }
    callbacks = [] if json_out else [RichProgress(metric=headline_metric(task))]
    version, _ = flows.train(backend(), spec, project=project, reuse=reuse, callbacks=callbacks)
    if json_out:
        emit_json(version)
    else:
        print_version(version)


@command
def predict(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS.")],
    texts: Annotated[list[str] | None, typer.Argument(help="Texts to predict.")] = None,
    file: Annotated[
        Path | None, typer.Option(help="A file with one text per line ('-' for stdin).")
    ] = None,
    explain: Annotated[str | None, typer.Option(help=EXPLAIN_HELP)] = None,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Predict labels (with probabilities) or values for texts."""
    inputs = list(texts or [])
    if file is not None:
        handle = sys.stdin if str(file) == "-" else open(file, encoding="utf-8")  # noqa: SIM115
        with handle:
            inputs += [line.rstrip("\n") for line in handle if line.strip()]
    if not inputs:
        raise InvalidArgument("give texts as arguments or with --file")
    results = backend().predict(ref, inputs, explain=explain, project=project)
    if json_out:
        emit_json([{"text": t, **r} for t, r in zip(inputs, results, strict=True)])
        return
    if explain:
        print_explanations(results)
        return
    if "entities" in results[0]:
        table(
            f"entities found by {ref}",
            ["text", "entities"],
            [
                [t[:80], "  ".join(f"{e['label']}:{e['text']}" for e in r["entities"]) or "-"]
                for t, r in zip(inputs, results, strict=True)
            ],
        )
    elif "label" in results[0]:
        table(
            f"predictions of {ref}",
            ["text", "label", "score"],
            [
                [t[:80], r["label"], f"{r['score']:.3f}"]
                for t, r in zip(inputs, results, strict=True)
            ],
        )
    elif "value" in results[0]:
        table(
            f"predictions of {ref}",
            ["text", "value"],
            [[t[:80], f"{r['value']:.4f}"] for t, r in zip(inputs, results, strict=True)],
        )
    elif "masks" in results[0]:
        table(
            f"fills by {ref}",
            ["text", "candidates at each mask"],
            [
                [t[:80], "  |  ".join(_candidates(m["candidates"]) for m in r["masks"]) or "-"]
                for t, r in zip(inputs, results, strict=True)
            ],
        )
    else:
        emit_json([{"text": t, **r} for t, r in zip(inputs, results, strict=True)])


def _candidates(candidates: list[dict[str, Any]]) -> str:
    return " ".join(f"{c['token']} {c['score']:.2f}" for c in candidates)


@dataclass(frozen=True)
class _Quickstart:
    """What ``aimass quickstart --lang L`` imports, trains and shows."""

    sample: str
    base: str
    model: str
    mode: str
    texts: tuple[str, ...]
    hint: str
    config: dict[str, Any] = field(default_factory=dict)
    deidentify: dict[str, Any] | None = None


_QUICKSTARTS = {
    "en": _Quickstart(
        sample="rotten-tomatoes",
        base="minilm",
        model="sentiment",
        mode="features",
        texts=(
            "A moving, beautifully acted film that stays with you long after the credits.",
            "Two hours of my life I will never get back: dull, clumsy and far too long.",
            "Sharp, funny and full of heart: the best comedy of the year.",
            "A lifeless sequel that forgets everything that made the original work.",
        ),
        hint="great film",
    ),
    # The recommended Chinese recipe (docs/training.md, bench/chinese.py): the
    # Chinese-pretrained m3e-small, fine-tuned, on reviews masked of PII first.
    "zh": _Quickstart(
        sample="chinese-reviews",
        base=RECIPES["zh"].base,
        model="zh-sentiment",
        mode="finetune",
        texts=(
            "质量很好，物流也快，下次还会再来买。",
            "客服态度太差了，等了一个星期才发货，再也不买了。",
            "这本书写得深入浅出，孩子很喜欢。",
        ),
        hint="物流很快",
        # One epoch on 6,000 of the 13,928 training reviews: about 15 minutes of
        # training on two cores (bench/chinese.py --recipes quickstart-zh measures it).
        config={**RECIPES["zh"].config, "epochs": 1, "max_train_rows": 6000},
        deidentify={"mode": "mask"},
    ),
}

# Under AIMASS_COMMERCIAL_USE_ONLY (m3e-small's weights are non-commercial): the
# commercially usable Chinese recipe (Gemma-3-270M, LoRA on every linear layer of
# its blocks) on 3,000 training reviews: 0.862 on the test split in about 18 minutes
# (bench/results/chinese-gemma-3000-1epoch-all-linear.json; 6,000 rows: 0.878 in 32).
_COMMERCIAL_QUICKSTARTS = {
    "zh": replace(
        _QUICKSTARTS["zh"],
        base=RECIPES["zh-commercial"].base,
        config={**RECIPES["zh-commercial"].config, "max_train_rows": 3000},
    ),
}


def _commercial(be: Backend, base: str) -> bool:
    """Whether the packaged base ``base`` is licensed for commercial use (as the machine
    that trains, the server under --url, knows its packages)."""
    return all(p.commercial_use for p in be.bases.packaged() if p.name == base)


@command
def quickstart(
    lang: Annotated[
        str, typer.Option(help="en: Rotten Tomatoes + MiniLM; zh: Chinese reviews + m3e-small.")
    ] = "en",
    mode: Annotated[
        str | None,
        typer.Option(help="features or finetune (default: en features, zh finetune)."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default per recipe).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a sample, train a sentiment model, register it at @production, predict.

    ``--lang en`` (default): Rotten Tomatoes + MiniLM features. ``--lang zh``: the
    Chinese reviews, de-identified on import, fine-tuning the Chinese m3e-small
    base; it also explains one prediction (with ``AIMASS_COMMERCIAL_USE_ONLY``,
    Gemma-3-270M with LoRA instead: m3e-small's weights are non-commercial). A
    second run reuses the dataset, base and model it finds (identical inputs).
    """
    from aimass.training.callbacks import RichProgress

    if lang not in _QUICKSTARTS:
        raise InvalidArgument(f"--lang {lang!r}: use one of {', '.join(_QUICKSTARTS)}")
    recipe = _QUICKSTARTS[lang]
    say = err_console.print
    be = backend()
    # The policy and the packages of the machine that trains: the server's under --url.
    if be.about().commercial_use_only and not _commercial(be, recipe.base):
        recipe = _COMMERCIAL_QUICKSTARTS[lang]
        url = settings().url
        where = f"the server at {url}" if url else "this home"
        say(
            f"{where} trains only commercially usable weights (AIMASS_COMMERCIAL_USE_ONLY): "
            f"training the commercially usable recipe ({recipe.base}) instead of "
            f"{_QUICKSTARTS[lang].base}, whose weights are not licensed for commercial use"
        )
    mode = mode or recipe.mode
    with err_console.status(f"importing the {recipe.sample} sample ..."):
        dataset = be.datasets.import_sample(
            recipe.sample, seed=0, deidentify=recipe.deidentify, project="default"
        )
    state = {True: "imported", False: "reused", None: "imported or reused"}[dataset.created]
    masked = " with PII masked" if recipe.deidentify else ""
    say(f"dataset {dataset.ref}: {dataset.num_rows:,} rows{masked} ({state})")
    with err_console.status(f"importing the {recipe.base} base ..."):
        base = be.bases.import_(recipe.base, project="default")
    state = {True: "imported", False: "reused", None: "imported or reused"}[base.created]
    say(f"base {base.ref}: {base.num_parameters:,} parameters ({state})")
    if base.provenance.get("commercial_use") is False:
        say(f"[yellow]note[/yellow]: {base.ref}'s license: {base.provenance.get('license')}")
    suffix = {"finetune": "-finetuned"}.get(mode, f"-{mode}")
    model = recipe.model if mode == recipe.mode else recipe.model + suffix
    config = recipe.config if mode == recipe.mode else {}
    spec = {
        "dataset": dataset.ref,
        "base": base.ref,
        "model": model,
        "config": {**config, **given(mode=mode, epochs=epochs)},
        "alias": "production",
    }
    say(f"training {model} ({mode} mode), unless identical inputs were trained before ...")
    progress = [] if json_out else [RichProgress(metric="accuracy")]
    version, reused = flows.train(be, spec, project="default", reuse=True, callbacks=progress)
    if reused:
        say(f"model {version.ref} was trained from identical inputs: reusing it")
    texts = list(recipe.texts)
    results = be.predict(f"{model}@production", texts, project="default")
    explained = None
    if lang != "en":
        explained = be.predict(
            f"{model}@production", texts[:1], explain="occlusion", project="default"
        )
    if json_out:
        emit_json(
            {
                "model": version,
                "predictions": [{"text": t, **r} for t, r in zip(texts, results, strict=True)],
                "explanation": explained[0] if explained else None,
            }
        )
        return
    print_version(version)
    table(
        f"{model}@production predicts",
        ["text", "label", "score"],
        [[t, r["label"], f"{r['score']:.3f}"] for t, r in zip(texts, results, strict=True)],
    )
    if explained:
        print_explanations(explained)
    console.print(
        f"\nNext: aimass models card {version.ref}  |  aimass predict {model}@production "
        f'"{recipe.hint}" --explain occlusion  |  python -c "import aimass; '
        f"print(aimass.load('{model}@production').predict(['{recipe.hint}']))\""
    )
