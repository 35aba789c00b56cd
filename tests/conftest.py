"""Shared fixtures: a clean environment, a tmp aimass home, tiny models and datasets.

Default tests are fast, offline and CPU-only: models come from tiny random
configs (hidden size 32, two layers), stores live in ``tmp_path``. Three suites
(``--suite`` or ``AIMASS_TEST_SUITE``):

* ``fast`` (the default; ``make test-fast``): no test marked ``slow``,
  ``subprocess`` or ``long``;
* ``test`` (``make test``, and so CI): adds ``subprocess`` tests (real runner
  processes, a real ``aimass serve``) and ``slow`` tests (real pretrained
  weights, a minute or two of CPU), so every layer and every real-weights path
  is exercised;
* ``all`` (``make test-all``): adds ``long`` tests (long trainings, the
  10,000-request load test, the GGUF conversions).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aimass.settings import Settings

POSITIVE = ["good", "great", "fine", "happy", "lovely", "superb"]
NEGATIVE = ["bad", "awful", "sad", "poor", "dreadful", "boring"]
FILLER = ["the", "a", "film", "was", "is", "and", "very", "not", "movie", "plot", "it"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two pytest workers share the two cores: one torch thread each, or their OpenMP
    # threads spin against each other. Set before any test imports torch.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Real services some tests run against (PostgreSQL, an S3-compatible server, a Ray
# cluster), each started on loopback by its plugin and skipped, saying why, without it.
pytest_plugins = ["tests.plugins.postgres", "tests.plugins.s3", "tests.plugins.ray_cluster"]

# Ray reads its auth mode once, when it is imported: whichever test imports it first,
# token authentication is on (as aimass.cluster ensures for the product).
os.environ.setdefault("RAY_AUTH_MODE", "token")

SUITES = {
    # suite → the markers whose tests it skips
    "fast": ("slow", "subprocess", "long"),
    "test": ("long",),
    "all": (),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--suite",
        choices=sorted(SUITES),
        default=None,
        help="fast (default), test (make test: adds slow and subprocess) or all (adds long)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    suite = config.getoption("--suite") or os.environ.get("AIMASS_TEST_SUITE") or "fast"
    if suite not in SUITES:
        raise pytest.UsageError(f"AIMASS_TEST_SUITE={suite!r}: use one of {sorted(SUITES)}")
    for marker in SUITES[suite]:
        skip = pytest.mark.skip(
            reason=f"{marker}: not in the {suite!r} suite (see tests/conftest.py)"
        )
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AIMASS_* variable leaks into a test; HOME points at tmp; hubs are off."""
    for key in list(os.environ):
        if key.startswith("AIMASS_") and key != "AIMASS_TEST_SUITE":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("AIMASS_HOME", str(tmp_path / "aimass-home"))


@pytest.fixture
def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tempfile`` in this process writes under the test's own folder: reports the
    CLI downloads (and leaves for the user to open) do not pile up in /tmp.

    Not for tests that start Ray: its socket paths under a long folder would pass
    the 107-byte limit of Unix sockets.
    """
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh aimass home under ``tmp_path``."""
    return Settings(home=tmp_path / "home", device="cpu")


@pytest.fixture
def workspace(settings: Settings) -> Iterator[object]:
    """A :class:`~aimass.workspace.Workspace` on a fresh home."""
    from aimass.workspace import Workspace

    ws = Workspace(settings)
    yield ws
    ws.close()


def tiny_vocab() -> list[str]:
    """The vocabulary of the tiny test tokenizer."""
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'")
    return SPECIAL + POSITIVE + NEGATIVE + FILLER + letters


def tiny_bert_model(
    *,
    vocab_size: int,
    layers: int = 2,
    hidden: int = 32,
    intermediate: int | None = None,
    max_positions: int = 64,
    seed: int = 0,
):
    """A random ``BertModel`` with two heads (feed-forward twice the width unless told)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=intermediate or 2 * hidden,
        max_position_embeddings=max_positions,
    )
    return BertModel(config)


def make_tiny_bert(directory: Path, *, seed: int = 0, layers: int = 2, hidden: int = 32) -> Path:
    """Save a random BERT (2 layers, hidden 32 unless told) with a matching tokenizer."""
    from transformers import BertTokenizer

    vocab = tiny_vocab()
    model = tiny_bert_model(vocab_size=len(vocab), layers=layers, hidden=hidden, seed=seed)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT Hugging Face directory (built once per session)."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "tiny-bert")


def sentiment_rows(n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """Synthetic sentiment rows a tiny model can learn: the label follows the words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(POSITIVE if label == "pos" else NEGATIVE, 2) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label, "group": rng.choice("xy")})
    return rows


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    """Write ``rows`` as JSON lines."""
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def sentiment_file(tmp_path: Path) -> Path:
    """A 200-row synthetic sentiment JSONL file."""
    return write_jsonl(tmp_path / "sentiment.jsonl", sentiment_rows(200))


def regression_rows(n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """Synthetic rows whose numeric label is (positive words - negative words) plus noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos, neg = rng.randint(0, 2), rng.randint(0, 2)
        words = rng.sample(POSITIVE, pos) + rng.sample(NEGATIVE, neg) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        value = pos - neg + rng.gauss(0, 0.1)
        rows.append({"text": " ".join(words), "label": value, "group": "xy"[i % 2]})
    return rows


def import_few_and_pool(ws: Any, root: Path) -> list[dict[str, object]]:
    """Distillation data: 'few' (40 labelled rows) and 'pool' (400 rows without labels);
    returns the rows of 'few'."""
    few = sentiment_rows(40, seed=1)
    ws.datasets.import_file(write_jsonl(root / "few.jsonl", few), name="few")
    pool = [{"text": r["text"]} for r in sentiment_rows(400, seed=2)]
    ws.datasets.import_file(write_jsonl(root / "pool.jsonl", pool), name="pool")
    return few


TINY_FINETUNE = {"mode": "finetune", "epochs": 3, "lr": 1e-3, "batch_size": 16}


def trained_workspace(home: Path, tiny_bert_dir: Path, data_dir: Path, *, regression: bool = False):
    """A workspace with dataset 's', base 'tiny' and model 'm' trained on them (and 'r' for
    regression on dataset 'rs' when asked). Used by module-scoped fixtures: train once per module."""
    from aimass.jobs.train import TrainSpec
    from aimass.workspace import Workspace

    # One thread: tiny models gain nothing from two, and on a busy machine they stall on them.
    ws = Workspace(Settings(home=home, device="cpu", num_threads=1))
    data_dir.mkdir(parents=True, exist_ok=True)
    ws.datasets.import_file(write_jsonl(data_dir / "s.jsonl", sentiment_rows(200)), name="s")
    ws.bases.import_(str(tiny_bert_dir), name="tiny")
    ws.jobs.train(TrainSpec(dataset="s", base="tiny", model="m", config=TINY_FINETUNE))
    if regression:
        ws.datasets.import_file(write_jsonl(data_dir / "rs.jsonl", regression_rows(200)), name="rs")
        ws.jobs.train(
            TrainSpec(
                dataset="rs", base="tiny", model="r", config={**TINY_FINETUNE, "task": "regression"}
            )
        )
    return ws


def register_copy(ws: Any, ref: str, name: str, *, config_digest: str, metrics: bool = True) -> Any:
    """Register the bundle of version ``ref`` again, straight in the store, as the next
    version of ``name`` (same digest, files and lineage): a second model, or a new
    version of the same one, without training. ``config_digest`` tells the copies apart.
    """
    v = ws.models.get(ref)
    return ws.store.registry.create_version(
        "default",
        name,
        task=v.task,
        digest=v.digest,
        uri=v.uri,
        metrics=v.metrics if metrics else {},
        lineage=v.lineage,
        config_digest=config_digest,
    )


@pytest.fixture(scope="session")
def trust_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path):
    """The tiny classifier 'm' (dataset 's') and regressor 'r' (dataset 'rs'), trained once per
    session for the explanation and evaluation tests."""
    root = tmp_path_factory.mktemp("trust")
    ws = trained_workspace(root / "home", tiny_bert_dir, root / "data", regression=True)
    yield ws
    ws.close()


# -- language-model fixtures (tiny from-scratch models on synthetic data) ---------------

LM_WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "city"]
NAMES = ["Alice", "Bob", "Carol", "Dave"]
PLACES = ["Paris", "Rome", "Oslo"]


def text_rows(n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """Short texts from a 12-word vocabulary with a pattern a tiny LM can learn."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        subject = rng.choice(["the cat", "a dog"])
        rows.append({"text": f"{subject} sat on the {rng.choice(['mat', 'park', 'city'])}"})
    return rows


def ner_rows(n: int, *, seed: int = 0) -> list[dict[str, object]]:
    """Sentences with a person and a place, BIO-tagged."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        name, place = rng.choice(NAMES), rng.choice(PLACES)
        if rng.random() < 0.5:
            rows.append(
                {
                    "tokens": [name, "Smith", "went", "to", place],
                    "tags": ["B-PER", "I-PER", "O", "O", "B-LOC"],
                }
            )
        else:
            rows.append(
                {
                    "tokens": ["in", place, "we", "met", name],
                    "tags": ["O", "B-LOC", "O", "O", "B-PER"],
                }
            )
    return rows


def pair_rows(n: int) -> list[dict[str, object]]:
    """Instruction pairs: 'repeat X' → 'X X'."""
    return [{"prompt": f"repeat {w}", "response": f"{w} {w}"} for w in LM_WORDS] * (n // 12)


@pytest.fixture(scope="session")
def lm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An aimass home with the language-model fixtures, built once per session."""
    from aimass.workspace import Workspace

    tmp_path = tmp_path_factory.mktemp("lm-home")
    workspace = Workspace(Settings(home=tmp_path / "home", device="cpu"))
    _build_lm_home(workspace, tmp_path)
    workspace.close()
    return tmp_path / "home"


@pytest.fixture
def lm_ready(lm_home: Path, tmp_path: Path) -> Iterator[object]:
    """A private copy of ``lm_home``: datasets text/ner/pairs, tokenizer 'tok', tiny bases
    'bert', 'llama' and 'bart'."""
    import shutil

    from aimass.workspace import Workspace

    shutil.copytree(lm_home, tmp_path / "lm-home")
    workspace = Workspace(Settings(home=tmp_path / "lm-home", device="cpu"))
    yield workspace
    workspace.close()


def _build_lm_home(workspace, tmp_path: Path) -> None:
    from aimass.data.importer import ImportOptions

    workspace.datasets.import_file(write_jsonl(tmp_path / "t.jsonl", text_rows(120)), name="text")
    workspace.datasets.import_file(
        write_jsonl(tmp_path / "n.jsonl", ner_rows(120)),
        name="ner",
        options=ImportOptions(kind="tokens"),
    )
    workspace.datasets.import_file(
        write_jsonl(tmp_path / "p.jsonl", pair_rows(120)),
        name="pairs",
        options=ImportOptions(kind="pairs"),
    )
    corpus = write_jsonl(
        tmp_path / "c.jsonl",
        text_rows(100)
        + [{"text": " ".join(r["tokens"])} for r in ner_rows(100)]
        + [{"text": f"{r['prompt']} {r['response']}"} for r in pair_rows(120)],
    )
    workspace.datasets.import_file(corpus, name="corpus")
    workspace.bases.train_tokenizer("corpus", name="tok", vocab_size=300, min_frequency=1)
    for arch in ("bert", "llama", "bart"):
        workspace.bases.create_scratch(arch, architecture=arch, tokenizer="tok", preset="tiny")


@pytest.fixture(scope="session")
def gen_home_template(lm_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LM home plus 'echo@production' (a tiny causal LM) and 'mlm' (a masked LM, which
    cannot generate), trained once per session."""
    import shutil

    from aimass.jobs.train import TrainSpec
    from aimass.workspace import Workspace

    home = tmp_path_factory.mktemp("gen") / "home"
    shutil.copytree(lm_home, home)
    workspace = Workspace(Settings(home=home, device="cpu"))
    small = {"epochs": 1, "max_train_rows": 24}
    workspace.jobs.train(
        TrainSpec(
            dataset="pairs",
            base="llama",
            model="echo",
            config={"task": "causal-lm", **small},
            alias="production",
        )
    )
    workspace.jobs.train(
        TrainSpec(dataset="text", base="bert", model="mlm", config={"task": "masked-lm", **small})
    )
    workspace.close()
    return home


@pytest.fixture(scope="module")
def gen_home(gen_home_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test module's own copy of ``gen_home_template`` (its keys and audit log are its own)."""
    import shutil

    home = tmp_path_factory.mktemp("gen-copy") / "home"
    shutil.copytree(gen_home_template, home)
    return home


@pytest.fixture(scope="module")
def live_gen(gen_home: Path) -> Iterator[tuple[str, str, object]]:
    """``(url, admin key, app)`` of a real uvicorn server on ``gen_home``, in a thread
    (real sockets: streaming and disconnects behave as in production). It serves in
    process (no runner processes), so tests can reach the predictor it generates with."""
    yield from live_server(gen_home, serve_runners=0)


def live_server(
    home: Path, *, job_workers: int = 0, **settings: Any
) -> Iterator[tuple[str, str, object]]:
    """Run ``create_app`` for ``home`` under a real uvicorn in a thread until closed."""
    import socket
    import threading
    import time

    import uvicorn

    from aimass.server import create_app

    app = create_app(Settings(home=home, device="cpu", **settings), job_workers=job_workers)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", (home / "admin.key").read_text().strip(), app
    server.should_exit = True
    thread.join(timeout=30)
