"""Every relative link in README.md and docs/ points at a file that exists, and every `#anchor` at a heading
of that file: the README is a door to docs/, and a door to nowhere is the first thing a newcomer meets.

Markdown is parsed by markdown-it-py (CommonMark), so links inside code blocks and code spans are not
links, as on GitHub; anchors follow GitHub's rule for heading ids."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_md = MarkdownIt("commonmark")


def _tokens(text: str) -> list:
    flat = []
    for token in _md.parse(text):
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def links(page: Path) -> list[str]:
    return [t.attrGet("href") for t in _tokens(page.read_text()) if t.type == "link_open"]


def slug(heading: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped (but `-` and `_`), spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    tokens = _tokens(page.read_text())
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            inline = next(t for t in tokens[i + 1:] if t.type == "inline")
            text = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
            base = slug(text)
            name, n = base, 0
            while name in found:  # GitHub numbers repeated headings: name, name-1, name-2 ...
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def problems(page: Path) -> list[str]:
    bad = []
    for href in links(page):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc:  # http(s), mailto: not ours to check here
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not target.exists():
            bad.append(f"{href}: no file {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
        elif parts.fragment and target.suffix == ".md" and unquote(parts.fragment) not in anchors(target):
            bad.append(f"{href}: {target.name} has no heading #{parts.fragment}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_points_somewhere(page):
    assert problems(page) == []


def test_the_checker_sees_a_broken_file_link_and_a_broken_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `.cube` file\n\n## Setting up\n\n## Setting up\n")
    page = tmp_path / "page.md"
    page.write_text("See [gone](missing.md), [bad anchor](other.md#nowhere), [good](other.md#the-cube-file),\n"
                    "[second](other.md#setting-up-1), [here](#top), [web](https://example.com/x.md)\n\n"
                    "# Top\n\n```\n[in code](also-missing.md)\n```\n")
    assert problems(page) == ["missing.md: no file " + str(tmp_path / "missing.md"),
                              "other.md#nowhere: other.md has no heading #nowhere"]


def test_the_readme_is_a_short_door_to_the_docs():
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) <= 250
    linked = {urlsplit(href).path for href in links(readme) if urlsplit(href).path.startswith("docs/")}
    assert len(linked) >= 5  # (that each exists is the test above)


def test_ci_runs_the_readmes_test_command_verbatim():
    """The first README line that runs pytest is the set-up test command a newcomer types; CI must run exactly
    it, so a README command that stopped working fails CI (the quick loop comes after it)."""
    readme = (ROOT / "README.md").read_text().splitlines()
    command = next(line.strip() for line in readme if re.search(r"python3? -m pytest|pytest", line))
    assert command.startswith("python3 -m venv .venv && ")
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert command in ci
