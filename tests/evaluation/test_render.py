"""The report renders in a real browser at a laptop's width (headless Chromium), offline.

The screenshots are kept under ``test-artifacts/`` (git-ignored) for people to look at.
Chromium is installed by ``scripts/install-chromium`` (``make test`` runs it).
"""

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

# A real Chromium: the make test suite, not the fast one.
pytestmark = pytest.mark.subprocess

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium is not installed; run scripts/install-chromium (make test does)")
    return None


def _screenshot(html: Path, out: Path, profile: Path, *, width: int, height: int) -> Image.Image:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    subprocess.run(
        [
            _chromium(),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out}",
            f"--window-size={width},{height}",
            html.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    return Image.open(out).convert("RGB")


def test_report_renders_at_laptop_width(ws, report, tmp_path):
    html = ws.reports.report_file(report, fmt="html")
    shot = _screenshot(
        html, ARTIFACTS / "evaluation-report.png", tmp_path / "profile", width=1366, height=900
    )
    assert shot.size == (1366, 900)
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # text, cards and badges, not a blank page
    dark = sum(n for n, (r, g, b) in colours if r + g + b < 150)
    assert dark > 2000  # the title, numbers and table text are drawn
    # Nothing overflows sideways at this width: the right margin is plain background.
    margin = shot.crop((1366 - 60, 0, 1366, 900)).getcolors()
    assert margin is not None and len(margin) == 1


def test_full_page_screenshot_for_people(ws, report, tmp_path):
    html = ws.reports.report_file(report, fmt="html")
    shot = _screenshot(
        html,
        ARTIFACTS / "evaluation-report-full.png",
        tmp_path / "profile",
        width=1366,
        height=7000,
    )
    # Every figure is drawn: below the first screen there is still a lot of content.
    lower = shot.crop((0, 900, 1366, 7000)).getcolors(maxcolors=1 << 20)
    assert lower is not None and len(lower) > 200
