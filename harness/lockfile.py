"""requirements.lock: every package of `./run setup`, pinned, resolved from pyproject.toml.

`./run lock` resolves it (uv pip compile, universal: entries carry environment markers) and then
`python -m harness.lockfile stamp` writes into its first line a hash of the dependency lists of
pyproject.toml (`[project] dependencies`, `optional-dependencies`, `requires-python`).
`./run setup` runs `python -m harness.lockfile check` first: a lock resolved from another
pyproject.toml is refused, naming the command that refreshes it. Standard library only: this
runs before the project (or anything else) is installed.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

LOCK = "requirements.lock"
PYPROJECT = "pyproject.toml"
STAMP = "# pyproject-deps-sha256: "
REFRESH = "./run lock"
#: optional extras the lock does not pin (`./run lock` resolves the dependencies and the test
#: extra): gpu's faiss-gpu-cu12 replaces the locked faiss-cpu on a GPU machine, so it cannot
#: share the CPU install's lock
UNLOCKED_EXTRAS = ("gpu",)

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)\s*(?:;\s*(.+))?$")


def dependency_lists(pyproject: Path) -> Dict[str, object]:
    """What the lock is resolved from: requires-python, dependencies, optional-dependencies."""
    project = tomllib.loads(Path(pyproject).read_text())["project"]
    return {"requires-python": project.get("requires-python"), "dependencies": project.get("dependencies", []),
            "optional-dependencies": project.get("optional-dependencies", {})}


def deps_hash(pyproject: Path) -> str:
    """sha256 of the dependency lists (canonical JSON): formatting and comments do not count."""
    text = json.dumps(dependency_lists(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def recorded_hash(lock: Path) -> Optional[str]:
    """The hash stamped into the lock, or None."""
    for line in Path(lock).read_text().splitlines():
        if line.startswith(STAMP):
            return line[len(STAMP):].strip()
    return None


def pins(lock: Path) -> List[Tuple[str, str, Optional[str]]]:
    """(name, version, marker or None) of every requirement line; any other non-comment line is
    an error (a lock pins every package exactly)."""
    out = []
    for line in Path(lock).read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = _PIN.match(s)
        if not m:
            raise ValueError(f"{lock}: not an exact pin: {s!r}")
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def stamp(lock: Path, pyproject: Path) -> None:
    """Write (or replace) the stamp line at the top of the lock."""
    lines = [ln for ln in Path(lock).read_text().splitlines() if not ln.startswith(STAMP)]
    Path(lock).write_text("\n".join([STAMP + deps_hash(pyproject)] + lines) + "\n")


def check(lock: Path, pyproject: Path) -> Optional[str]:
    """None when the lock was resolved from this pyproject.toml, else why not."""
    if not Path(lock).is_file():
        return f"{lock} is missing: run {REFRESH}"
    if recorded_hash(lock) != deps_hash(pyproject):
        return f"{lock} was resolved from other dependency lists than {pyproject}'s: run {REFRESH}"
    return None


def main(argv: List[str]) -> int:
    """`python -m harness.lockfile stamp|check` in the repository root."""
    if argv[:1] == ["stamp"]:
        stamp(Path(LOCK), Path(PYPROJECT))
        return 0
    if argv[:1] == ["check"]:
        problem = check(Path(LOCK), Path(PYPROJECT))
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    print("usage: python -m harness.lockfile stamp|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
