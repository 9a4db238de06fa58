"""The board's modules import one way (issue 32): no import cycle runs through harness.board.*,
harness.leaderboard, harness.ablation, harness.diagnostics or harness.probe; the probe reaches
none of the board (nor harness.scores); every module of harness/board stays under 400 lines. Imports are read with
ast from the source (function-level imports included), so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

ROOT = Path(__file__).resolve().parents[2]
WATCHED = ("harness.board", "harness.leaderboard", "harness.ablation", "harness.diagnostics", "harness.probe")
MAX_LINES = 400


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT, package: str = "harness") -> Dict[str, Set[str]]:
    """{module: the modules of `package` it imports anywhere in its source}. ``from a import b``
    counts as importing ``a.b`` where that is a module, else ``a``; a package's ``__init__`` is
    not added for its submodules (it imports nothing of them here)."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    graph: Dict[str, Set[str]] = {}
    for name, path in files.items():
        edges = set()
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
        graph[name] = edges
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def reachable(graph: Dict[str, Set[str]], start: str) -> Set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def watched(module: str) -> bool:
    return any(module == w or module.startswith(w + ".") for w in WATCHED)


def test_no_import_cycle_through_the_board_the_ablation_the_diagnostics_or_the_probe():
    graph = import_graph()
    assert {"harness.leaderboard", "harness.board.page", "harness.board.select", "harness.probe"} <= set(graph)
    assert [c for c in cycles(graph) if any(watched(m) for m in c)] == []
    # the leaf: the markdown helpers import nothing of the board
    assert not {m for m in graph["harness.board.markdown"] if m.startswith("harness.board")}
    # nothing of the board imports its public entry back
    assert [m for m in graph if m.startswith("harness.board") and "harness.leaderboard" in graph[m]] == []
    # the probe, at any depth, reaches no board code (nor the board's scores)
    board = ("harness.board", "harness.leaderboard", "harness.scores", "harness.report", "harness.compare")
    assert sorted(m for m in reachable(graph, "harness.probe") if m.startswith(board)) == []


def test_the_graph_reader_finds_a_cycle_hidden_in_a_function(tmp_path):
    pkg = tmp_path / "harness"
    (pkg / "board").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "board" / "__init__.py").write_text("")
    (pkg / "board" / "page.py").write_text("from harness.board import markdown\nfrom . import rows\n")
    (pkg / "board" / "rows.py").write_text("import math\n")
    (pkg / "board" / "markdown.py").write_text("def f():\n    from harness.board.page import g\n")
    graph = import_graph(tmp_path)
    assert graph["harness.board.page"] == {"harness.board.markdown", "harness.board.rows"}
    assert graph["harness.board.markdown"] == {"harness.board.page"}
    assert cycles(graph) == [["harness.board.markdown", "harness.board.page"]]


def test_every_board_module_is_under_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in sorted((ROOT / "harness" / "board").glob("*.py"))}
    assert len(sizes) >= 10
    assert {n: k for n, k in sizes.items() if k >= MAX_LINES} == {}
    assert len((ROOT / "harness" / "leaderboard.py").read_text().splitlines()) < 60  # a thin entry
