"""The shape of the source tree that import-linter cannot see (issue 14).

* No module of ``src/aimass`` is over 500 lines: a module that grows past it is
  split by what it does, the way ``schemas`` and ``workspace`` were.
* The REST routes, the CLI and ``LocalClient`` reach the metadata store only
  through the workspace's services (``ws.datasets``, ``ws.models``, ``ws.jobs``,
  ...), never around them with ``ws.store.*``: the policy a service owns (name
  checks, limits, who may move an alias) cannot be skipped by a caller.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "aimass"
MAX_LINES = 500
CALLERS = [
    *sorted((SRC / "server" / "routes").glob("*.py")),
    SRC / "server" / "state.py",
    *sorted((SRC / "cli").glob("*.py")),
    *sorted((SRC / "workspace").glob("*local*.py")),
]
REACH_AROUND = re.compile(r"\b(?:ws|workspace|_ws|state\.workspace)\.store\.")


def test_no_module_is_over_the_line_cap():
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text("utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines, split them: {long}"


def test_callers_use_the_services_not_the_store():
    found = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in CALLERS
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if REACH_AROUND.search(line)
    ]
    assert not found, "call a workspace service instead:\n" + "\n".join(found)


def test_the_check_sees_a_reach_around():
    assert REACH_AROUND.search("    found = ws.store.registry.list_models(project)")
    assert not REACH_AROUND.search("    found = ws.models.list(project=project)")
