"""A packaged base on ``sys.path`` for tests: a tiny BERT in ``model/``, every file pinned."""

import hashlib
import shutil
from pathlib import Path
from typing import Any

from aimass.jobs import bases
from aimass.jobs.bases import PackagedBase


def fake_packaged_base(
    site: Path, tiny_bert_dir: Path, monkeypatch: Any = None, *, name: str = "fake", **fields: Any
) -> PackagedBase:
    """Write the package ``fake_<name>`` under ``site`` and, with ``monkeypatch``, register it.

    ``fields`` override the :class:`PackagedBase` fields (``license``, ``commercial_use``).
    """
    module = f"fake_{name.replace('-', '_')}"
    model = site / module / "model"
    shutil.copytree(tiny_bert_dir, model)
    pins = {f"model/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in model.iterdir()}
    base = PackagedBase(
        **{
            "name": name,
            "package": f"fake-{name}",
            "module": module,
            "description": "a tiny BERT",
            "license": "none",
            "locate": lambda package_dir, _scratch: package_dir / "model",
            "version": "0.0.1",
            "sha256": pins,
            **fields,
        }
    )
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setitem(bases._PACKAGED, base.name, base)
    return base
