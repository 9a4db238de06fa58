"""The README is a front page that links into docs/ (issue 32 item 8): its first lines are the two
fresh-machine commands, every link of the README and the docs pages resolves inside the
repository, and the pages that repeat code-defined lists (board columns, Metric fields, the
task's registration lists) name every item."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_readme_is_a_front_page_starting_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 100
    assert lines[:3] == ["# harness", "", "```bash"]
    assert lines[3].startswith("./run demo   # fresh machine:") and lines[4].startswith("./run test   # fresh machine:")
    assert lines[5] == "```"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves_inside_the_repository(page):
    bad = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        path = (page.parent / target.split("#")[0]).resolve()
        if ROOT not in path.parents or not path.exists():
            bad.append(target)
    assert bad == []


def test_the_docs_index_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert [p.name for p in PAGES[1:] if f"(docs/{p.name})" not in readme] == []


def test_outputs_page_lists_every_board_column():
    from harness.board.export import COLUMNS

    page = (ROOT / "docs" / "outputs.md").read_text()
    table = page[page.index("## Board data files"):]
    table = table[:table.index("\n## ")]
    named = set(re.findall(r"`([a-z0-9_]+)`", "\n".join(ln.split(" | ")[0] for ln in table.splitlines()
                                                           if ln.startswith("| `"))))
    assert named == set(COLUMNS)


def test_add_a_task_page_names_every_metric_field_and_registration_list():
    from tasks.base import Metric

    page = (ROOT / "docs" / "add-a-task.md").read_text()
    for f in dataclasses.fields(Metric):
        assert f"| `{f.name}` |" in page, f.name
    for where in ("tasks/__init__.py", "TASK_NAMES", "harness/registry.py", "METRIC_HIGHER_IS_BETTER"):
        assert where in page, where
