"""Find the code blocks of a Markdown page and run them the way a reader would.

A page's fenced ``bash`` and ``python`` blocks are code; every other fence
(``text`` for sample output, ``json``, ...) is shown, never run. Blocks run in
page order in one fresh directory with a fresh ``AIMASS_HOME`` and ``HOME``, so
a page can build on its earlier blocks: files and the home carry over, but each
block is its own process, so a variable exported in one block is gone in the
next (and a background job, e.g. ``aimass serve ... &``, lives until the page
ends, when its process group is killed). Bash runs with ``-euo pipefail``.

Markers are HTML comments on a line of their own::

    <!-- docs-test: slow -->

At the top of a page (before its first block, not directly above a block) a
marker applies to the whole page; directly above a block (blank lines between
are allowed) it applies to that block only. ``slow`` means real pretrained
weights (a minute or two at most), ``long`` anything that trains for minutes;
they map to the pytest markers of the same name. A suite that skips a block's
marker skips the block, so later unmarked blocks must not need it.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RUNNABLE = ("bash", "python")
TIERS = ("fast", "slow", "long")  # lightest first
TIMEOUT = {"fast": 120, "slow": 600, "long": 7200}  # seconds per block

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<tier>[a-z]+)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, code, 1-based position and line, and tier."""

    lang: str
    code: str
    number: int
    line: int
    tier: str = "fast"


@dataclass
class Page:
    """A Markdown page: its tier and its blocks."""

    path: Path
    tier: str = "fast"
    blocks: list[Block] = field(default_factory=list)

    @property
    def runnable(self) -> list[Block]:
        """The blocks that are code."""
        return [b for b in self.blocks if b.lang in RUNNABLE]

    @property
    def tiers(self) -> list[str]:
        """Every tier some runnable block of the page needs, lightest first."""
        used = {b.tier for b in self.runnable}
        return [t for t in TIERS if t in used]


def _heavier(a: str, b: str) -> str:
    return a if TIERS.index(a) >= TIERS.index(b) else b


def _tier(name: str, where: str) -> str:
    if name not in TIERS:
        raise ValueError(f"{where}: unknown docs-test marker {name!r}; use one of {TIERS}")
    return name


def parse(path: Path) -> Page:
    """Parse ``path`` into its blocks, with page and block markers applied."""
    lines = path.read_text(encoding="utf-8").splitlines()
    page = Page(path)
    pending: str | None = None  # a marker waiting for the next non-blank line
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        fence = _FENCE.match(line)
        if marker:
            if pending is not None:  # two markers in a row: the first was for the page
                page.tier = _heavier(page.tier, pending)
            pending = _tier(marker["tier"], f"{path}:{i + 1}")
            i += 1
            continue
        if fence:
            end = i + 1
            close = re.compile(
                rf"^[ \t]*{re.escape(fence['fence'][0])}{{{len(fence['fence'])},}}\s*$"
            )
            while end < len(lines) and not close.match(lines[end]):
                end += 1
            if end == len(lines):
                raise ValueError(f"{path}:{i + 1}: code block is never closed")
            indent = len(fence["indent"])
            body = "\n".join(line[indent:] for line in lines[i + 1 : end])
            tier = _heavier(page.tier, pending) if pending else page.tier
            page.blocks.append(
                Block(fence["info"].lower(), body + "\n", len(page.blocks) + 1, i + 1, tier)
            )
            pending = None
            i = end + 1
            continue
        if line.strip() and pending is not None:  # a marker followed by prose: the page's
            page.tier = _heavier(page.tier, pending)
            pending = None
        i += 1
    # A page marker raises every block to at least that tier.
    page.blocks = [
        Block(b.lang, b.code, b.number, b.line, _heavier(b.tier, page.tier)) for b in page.blocks
    ]
    return page


class BlockFailed(AssertionError):
    """A block exited non-zero or timed out."""


def environment(root: Path, venv_bin: Path) -> dict[str, str]:
    """A reader's environment: fresh home, offline hubs, the venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIMASS_")}
    (root / "user-home").mkdir()
    env.update(
        AIMASS_HOME=str(root / "aimass-home"),
        HOME=str(root / "user-home"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    env.pop("VIRTUAL_ENV", None)
    return env


def _kill_group(pgid: int) -> None:
    """End a block's process group (its background jobs too): TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def run_page(page: Page, *, tier: str, workdir: Path, venv_bin: Path, label: str) -> list[str]:
    """Run the page's blocks up to ``tier`` in order, in ``workdir``; return what was skipped.

    Raises:
        BlockFailed: naming the page, the block, its code and its output.
    """
    run_dir = workdir / "work"
    run_dir.mkdir()
    env = environment(workdir, venv_bin)
    # The blocks' own temporary files (a report `aimass evaluate` leaves for the reader
    # to open) go to a folder removed with the page. It is short and directly under
    # /tmp, not under workdir: Unix socket paths under it must stay within 107 bytes.
    scratch = tempfile.mkdtemp(prefix="aimass-docs-")
    env["TMPDIR"] = scratch
    groups: list[int] = []
    skipped = []
    serves = any("aimass serve" in b.code for b in page.runnable)
    with _serve_lock(serves):
        try:
            for block in page.runnable:
                if TIERS.index(block.tier) > TIERS.index(tier):
                    skipped.append(f"block {block.number} ({block.tier})")
                    continue
                _run_block(block, run_dir, env, venv_bin, label, groups)
        finally:
            for pgid in groups:
                _kill_group(pgid)
            shutil.rmtree(scratch, ignore_errors=True)
    return skipped


@contextmanager
def _serve_lock(needed: bool) -> Iterator[None]:
    """Pages that start `aimass serve` use the documented port 8600: one at a time, also
    across pytest-xdist workers (an exclusive lock on a file in the temp directory)."""
    if not needed:
        yield
        return
    with open(Path(tempfile.gettempdir()) / "aimass-docs-serve.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_block(
    block: Block, run_dir: Path, env: dict[str, str], venv_bin: Path, label: str, groups: list[int]
) -> None:
    suffix = "sh" if block.lang == "bash" else "py"
    script = run_dir.parent / f"block-{block.number}.{suffix}"
    script.write_text(block.code, encoding="utf-8")
    command = (
        ["bash", "-euo", "pipefail", str(script)]
        if block.lang == "bash"
        else [str(venv_bin / "python"), str(script)]
    )
    log = run_dir.parent / f"block-{block.number}.log"
    # Output goes to a file, not a pipe: a background job (a server started with `&`)
    # keeps a pipe open and would make the wait hang. Its own session, to kill it later.
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=run_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        groups.append(proc.pid)
        try:
            rc = proc.wait(timeout=TIMEOUT[block.tier])
        except subprocess.TimeoutExpired:
            rc = None
    if rc != 0:
        output = log.read_text(encoding="utf-8", errors="replace")[-6000:]
        outcome = "timed out" if rc is None else f"exited {rc}"
        raise BlockFailed(
            f"{label}: block {block.number} (line {block.line}, {block.lang}) {outcome}\n"
            f"--- code ---\n{block.code}--- output (last 6000 characters) ---\n{output}"
        )


def default_venv_bin(repo: Path) -> Path:
    """The venv's bin directory (the repository's .venv, else this interpreter's)."""
    candidate = repo / ".venv" / "bin"
    return candidate if (candidate / "python").exists() else Path(sys.executable).parent
