"""The repository stands on its own (issue 32 item 9): no tracked file points at design notes
outside it, and every `docs/<page>.md section N` a file cites exists as a numbered heading."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# built from pieces, so that this file does not match itself
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "DESIGN" + r"\.md", "PROTOCOL" + r"\.md", "PRETRAIN" + r"\.md",
                               r"\b" + "PROTOCOL" + r"( section)? \d", r"\b" + "PRETRAIN" + r" \d",
                               r"\b" + "DESIGN" + r"( section)? \d"]))
CITE = re.compile(r"docs/([a-z0-9_-]+)\.md(?:'s)? sections? (\d+)(?: and (\d+))?")


def tracked_text_files():
    try:
        names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file under the root
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
                 and not {".venv", ".git", "data", "runs", "cache"} & set(p.relative_to(ROOT).parts)]
    for name in filter(None, names):
        path = ROOT / name
        if not path.is_file():
            continue
        try:
            yield name, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # images, heatmaps
            continue


def test_no_file_points_outside_the_repository():
    hits = [f"{name}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)}"
            for name, text in tracked_text_files() for m in OUTSIDE.finditer(text)]
    assert hits == []


@pytest.mark.parametrize("text, found", [
    ("see ../" + "shared/x", True), ("DESIGN" + ".md 6", True), ("(PROTOCOL" + " section 2)", True),
    ("PRETRAIN" + " 5", True), ("docs/pretrain.md section 5", False), ("PRETRAINED weights", False),
])
def test_the_pattern_catches_outside_references(text, found):
    assert bool(OUTSIDE.search(text)) is found


def test_the_docs_pages_exist_and_cited_sections_are_there():
    headings = {}
    for page in ("design", "protocol", "pretrain"):
        text = (ROOT / "docs" / f"{page}.md").read_text()
        headings[page] = set(re.findall(r"^## (\d+)\.", text, flags=re.M))
        assert headings[page], page
    missing = []
    for name, text in tracked_text_files():
        for m in CITE.finditer(text):
            page = m.group(1)
            path = ROOT / "docs" / f"{page}.md"
            if not path.is_file():
                missing.append(f"{name}: docs/{page}.md does not exist")
                continue
            have = headings.get(page) or set(re.findall(r"^## (\d+)\.", path.read_text(), flags=re.M))
            for n in filter(None, (m.group(2), m.group(3))):
                if n not in have:
                    missing.append(f"{name}: docs/{page}.md has no section {n}")
    assert missing == []
