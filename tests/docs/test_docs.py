"""The README and every page in docs/ run as written, and the site's nav and links hold.

See ``runner.py`` for how blocks are found and run and for the marker syntax.
Each page gives one test per tier its blocks need (``fast``, ``slow``, ``long``);
a suite runs each page once, at the heaviest tier it allows. Running a page
starts real ``aimass`` processes, so every page test is also marked
``subprocess``: ``make test`` runs them, ``make test-fast`` only the static checks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import SUITES
from tests.docs.runner import TIERS, default_venv_bin, parse, run_page

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]

# Links out of the site that prose may make on purpose (none in code blocks, none to
# CDNs). Loopback URLs (a local `aimass serve`) are always allowed.
ALLOWED_LINKS: frozenset[str] = frozenset()
_URL = re.compile(r"https?://[^\s)>\]\"'`]+")
_LOOPBACK = re.compile(r"https?://(127\.0\.0\.1|localhost)(:\d+)?(?![\w.-])")


def _suite(config: pytest.Config) -> str:
    return config.getoption("--suite") or os.environ.get("AIMASS_TEST_SUITE") or "fast"


def _cases() -> list[object]:
    cases = []
    for path in PAGES:
        page = parse(path)
        for tier in page.tiers:
            # A page runs real `aimass` processes: make test runs it, make test-fast does not.
            marks = [pytest.mark.subprocess]
            if tier != "fast":
                marks.append(getattr(pytest.mark, tier))
            name = f"{path.relative_to(REPO)}[{tier}]"
            cases.append(pytest.param(path, tier, id=name, marks=marks))
    return cases


@pytest.mark.parametrize(("path", "tier"), _cases())
def test_page_runs(path: Path, tier: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The page's code blocks, up to ``tier``, run in order as a reader would run them."""
    page = parse(path)
    allowed = [t for t in page.tiers if t not in SUITES[_suite(request.config)]]
    if allowed and allowed[-1] != tier:
        pytest.skip(f"covered by the {allowed[-1]!r} run of this page")
    label = str(path.relative_to(REPO))
    run_page(page, tier=tier, workdir=tmp_path, venv_bin=default_venv_bin(REPO), label=label)


def test_markers_parse() -> None:
    """Every marker names a known tier and every fence is closed (parse raises if not)."""
    for path in PAGES:
        for block in parse(path).blocks:
            assert block.tier in TIERS


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def test_nav_lists_every_page() -> None:
    """mkdocs.yml's nav names every page in docs/, and only pages that exist (or are generated)."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = set(_nav_pages(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    generated = {"reference/rest.md", "reference/cli.md"}
    assert pages - nav == set(), "pages missing from mkdocs.yml nav"
    assert nav - pages - generated == set(), "nav entries without a page"


def test_theme_loads_nothing_from_outside() -> None:
    """No Google Fonts, no CDN: the built site works offline."""
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["theme"]["font"] is False
    assert not _URL.search((REPO / "mkdocs.yml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_links_outside_the_site(path: Path) -> None:
    """Pages link only within the site (and to a local server), bar allowed prose links."""
    text = path.read_text(encoding="utf-8")
    outside = [
        url
        for url in _URL.findall(text)
        if not _LOOPBACK.match(url) and url.rstrip(".,;:") not in ALLOWED_LINKS
    ]
    assert outside == []


_EXTERNAL_RESOURCE = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*(?:src|href)=\"(?:https?:)?//", re.I
)


def test_built_site_loads_nothing_from_outside() -> None:
    """The built site (``make docs`` builds it before the tests) loads no script, style,
    font or image from another host; links out are fine, loads are not."""
    site = REPO / "build" / "site"
    if not (site / "index.html").exists():
        pytest.skip("build/site is not built: run `make docs` first")
    loads = [
        f"{page.relative_to(site)}: {match.group(0)}"
        for page in site.rglob("*.html")
        for match in _EXTERNAL_RESOURCE.finditer(page.read_text(encoding="utf-8"))
    ]
    assert loads == []
