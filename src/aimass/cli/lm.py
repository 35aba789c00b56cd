"""``aimass generate``, ``aimass tokenizers``, ``aimass bases scratch`` and ``aimass recipes``."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

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

tokenizers_app = typer.Typer(help="Train and list tokenizers.", no_args_is_help=True)
recipes_app = typer.Typer(help="One-command end-to-end recipes.", no_args_is_help=True)


@command
def generate(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS of the model.")],
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 128,
    temperature: Annotated[float, typer.Option(help="0 = greedy; above 0 samples.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass (1 = off).")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Sample among the k likeliest (0 = off).")] = 0,
    stop: Annotated[
        list[str] | None, typer.Option(help="Stop string (repeatable); not included in the text.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (same seed, same text).")] = None,
    stream: Annotated[bool, typer.Option(help="Print the text as it is generated.")] = True,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Generate text with a causal-LM or seq2seq model (on the server with --url / AIMASS_URL)."""
    options = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "stop": stop or [],
        "seed": seed,
    }
    source = backend()
    if json_out or not stream:
        result = source.generate(ref, prompt, project=project, **options)
        if json_out:
            emit_json(result)
        else:
            typer.echo(result["text"])
        return
    final: dict[str, Any] = {}
    for event in source.generate_stream(ref, prompt, project=project, **options):
        if event.get("done"):
            final = event
        else:
            typer.echo(str(event["text"]), nl=False)
    typer.echo("")
    timing = final.get("timing") or {}
    usage = final.get("usage") or {}
    err_console.print(
        f"[dim]{usage.get('completion_tokens')} tokens, finish {final.get('finish_reason')}, "
        f"{timing.get('tokens_per_second')} tokens/s, first token after "
        f"{timing.get('time_to_first_token')} s[/]"
    )


@tokenizers_app.command("train")
@command
def train_tokenizer(
    dataset: Annotated[str, typer.Option(help="Dataset NAME or NAME@VERSION to learn from.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Tokenizer name (a slug).")],
    kind: Annotated[str, typer.Option(help="wordpiece (BERT) or bpe (byte-level).")] = "wordpiece",
    vocab_size: Annotated[int, typer.Option(help="Largest vocabulary.")] = 8000,
    min_frequency: Annotated[int, typer.Option(help="Least count of a merged piece.")] = 2,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Train a tokenizer on a dataset's training split and register it."""
    with console.status(f"training a {kind} tokenizer on {dataset} ..."):
        tokenizer = backend().bases.train_tokenizer(
            dataset,
            name=name,
            kind=kind,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            project=project,
        )
    if json_out:
        emit_json({"tokenizer": tokenizer, "created": tokenizer.created})
        return
    coverage = tokenizer.provenance["coverage"]
    state = "new version" if tokenizer.created else "identical: existing version"
    console.print(
        f"[bold]{tokenizer.ref}[/] ({state})"
        f": {kind}, {coverage['vocab_size']:,} entries; held-out unknown-token rate "
        f"{coverage['unk_rate']:.4%}, {coverage['tokens_per_char']:.3f} tokens per character"
    )


@tokenizers_app.command("list")
@command
def list_tokenizers(project: ProjectOpt = "default", json_out: JsonOpt = False) -> None:
    """Registered tokenizers."""
    found = [b for b in backend().bases.list(project=project) if b.family == "tokenizer"]
    if json_out:
        emit_json(found)
        return
    table(
        "tokenizers",
        ["name", "latest", "kind", "entries", "dataset", "unk rate"],
        [
            [
                t.name,
                t.version,
                t.architecture,
                f"{t.provenance.get('vocab_size', 0):,}",
                t.provenance.get("dataset", "-"),
                f"{t.provenance.get('coverage', {}).get('unk_rate', 0):.4%}",
            ]
            for t in found
        ],
    )


@command
def scratch(
    name: Annotated[str, typer.Argument(help="Base name (a slug).")],
    architecture: Annotated[str, typer.Option(help="bert, llama or bart.")],
    tokenizer: Annotated[str, typer.Option(help="Tokenizer NAME or NAME@VERSION.")],
    preset: Annotated[str, typer.Option(help="tiny, mini or small.")] = "tiny",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a size field, KEY=VALUE (e.g. max_length=512)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random initialisation.")] = 0,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Create a randomly initialised base of a preset size around a trained tokenizer."""
    from aimass.cli._training import parse_options

    with console.status(f"creating a {preset} {architecture} ..."):
        base = backend().bases.create_scratch(
            name,
            architecture=architecture,
            tokenizer=tokenizer,
            preset=preset,
            seed=seed,
            overrides=parse_options(set_ or []),
            project=project,
        )
    if json_out:
        emit_json({"base": base, "created": base.created})
        return
    state = "new version" if base.created else "identical: existing version"
    console.print(
        f"[bold]{base.ref}[/] ({state}): "
        f"{base.architecture} {base.family}, preset {preset}, {base.num_parameters:,} parameters"
    )


@command
def from_model(
    ref: Annotated[str, typer.Argument(help="Model NAME@VERSION or NAME@ALIAS.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Base name (a slug).")],
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """Register a trained version as a base (e.g. a pre-trained encoder), its head dropped."""
    with console.status(f"registering {ref} as base {name} ..."):
        base = backend().bases.from_model(ref, name=name, project=project)
    if json_out:
        emit_json({"base": base, "created": base.created})
        return
    console.print(
        f"[bold]{base.ref}[/] from {ref}: {base.architecture} {base.family}, "
        f"{base.num_parameters:,} parameters"
    )


@command
def shrink(
    ref: Annotated[str, typer.Argument(help="Base NAME or NAME@VERSION to cut.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The new base's name (a slug).")],
    layers: Annotated[int, typer.Option(help="How many of its layers to keep.")],
    pick: Annotated[
        str,
        typer.Option(help="first: layers 0..n-1; spread: evenly spaced from layer 0."),
    ] = "first",
    intermediate_size: Annotated[
        int,
        typer.Option(
            help="Keep this many feed-forward neurons per layer, those with the largest "
            "weights (0: all)."
        ),
    ] = 0,
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """A smaller base from a pretrained one, as a distilled student's start."""
    with console.status(f"cutting {ref} to {layers} layers ..."):
        base = backend().bases.shrink(
            ref,
            name=name,
            layers=layers,
            pick=pick,
            intermediate_size=intermediate_size,
            project=project,
        )
    if json_out:
        emit_json({"base": base, "created": base.created})
        return
    console.print(
        f"[bold]{base.ref}[/] "
        f"({'new version' if base.created else 'identical: existing version'}): "
        f"{base.provenance['description']}, {base.num_parameters:,} parameters"
    )


@recipes_app.command("chinese-ner")
@command
def chinese_ner(
    name: Annotated[str, typer.Option("--name", "-n", help="Model name.")] = "zh-ner",
    base: Annotated[
        str | None,
        typer.Option(
            help="An encoder base to fine-tune (default: m3e-small, Chinese-pretrained, "
            "when installed; else a BERT built from scratch)."
        ),
    ] = None,
    from_scratch: Annotated[
        bool, typer.Option(help="Build and train a BERT from scratch instead of a base.")
    ] = False,
    preset: Annotated[str, typer.Option(help="From-scratch size: tiny, mini or small.")] = "mini",
    pretrain_epochs: Annotated[
        int, typer.Option(help="From scratch: masked-LM epochs on the corpus first (0 = none).")
    ] = 0,
    epochs: Annotated[
        int | None,
        typer.Option(help="NER fine-tuning epochs (default: 2 from a base, 3 from scratch)."),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(help="Fine-tuning step size (default: 2e-4 from a base, 1e-3 from scratch)."),
    ] = None,
    max_train_rows: Annotated[
        int | None,
        typer.Option(
            help="Train on a seeded sample of N sentences (default and 0: all 36,064; "
            "fewer for a quicker, weaker model)."
        ),
    ] = None,
    alias: Annotated[str, typer.Option(help="Alias for the new version.")] = "production",
    project: ProjectOpt = "default",
    json_out: JsonOpt = False,
) -> None:
    """People's Daily 1998 → a Chinese NER model (PER, LOC, ORG), registered and aliased.

    With --url every step runs on the server: the corpus, base and model land there.
    """
    from aimass.cli._recipes import chinese_ner as recipe
    from aimass.cli._recipes import choose_base, license_caveat
    from aimass.training.callbacks import RichProgress

    ops = backend()
    url = settings().url
    where = f" on the server at {url}" if url else ""
    choice = choose_base(ops.bases.packaged(), base, from_scratch=from_scratch, where=where)
    if choice.note:
        err_console.print(f"[yellow]{choice.note}[/]")
    version = recipe(
        ops,
        choice,
        name=name,
        preset=preset,
        pretrain_epochs=pretrain_epochs,
        epochs=epochs,
        lr=lr,
        max_train_rows=max_train_rows,
        alias=alias,
        project=project,
        callbacks=[] if json_out else [RichProgress(metric="f1")],
    )
    caveat = license_caveat(ops.bases.get(version.lineage.base, project=project))
    if caveat:
        err_console.print(f"[bold yellow]License:[/] {caveat}")
    if json_out:
        emit_json(version)
        return
    _print_ner_scores(version, alias)
    sample = ops.predict(
        f"{name}@{alias}", ["江泽民主席昨天在北京会见了联合国秘书长安南。"], project=project
    )
    typer.echo(json.dumps(sample[0], ensure_ascii=False))


def _print_ner_scores(version: Any, alias: str) -> None:
    """Overall and per-type entity scores on the test split."""
    test = version.metrics.get("test") or {}
    console.print(
        f"[bold green]{version.ref}[/] @{alias}: entity F1 {test.get('f1', 0):.4f} (precision "
        f"{test.get('precision', 0):.4f}, recall {test.get('recall', 0):.4f}) on "
        f"{test.get('entities', 0):,} test entities"
    )
    for kind, scores in sorted((test.get("per_type") or {}).items()):
        console.print(
            f"  {kind}: F1 {scores['f1']:.4f} (precision {scores['precision']:.4f}, recall "
            f"{scores['recall']:.4f}; {scores['support']:,} entities)"
        )
