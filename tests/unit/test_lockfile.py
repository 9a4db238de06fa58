"""requirements.lock agrees with pyproject.toml: every dependency (and test extra) is pinned with
a version its specifier allows, every line is an exact pin, and the stamped hash is the one of
pyproject's current dependency lists (so an edited pyproject.toml without `./run lock` fails)."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from harness import lockfile

ROOT = Path(__file__).resolve().parents[2]
LOCK, PYPROJECT = ROOT / lockfile.LOCK, ROOT / lockfile.PYPROJECT


def _locked():
    out = {}
    for name, version, marker in lockfile.pins(LOCK):
        out.setdefault(canonicalize_name(name), []).append((Version(version), marker))
    return out


def _requirements():
    lists = lockfile.dependency_lists(PYPROJECT)
    reqs = list(lists["dependencies"])
    for name, extra in lists["optional-dependencies"].items():
        if name not in lockfile.UNLOCKED_EXTRAS:
            reqs += extra
    return [Requirement(r) for r in reqs]


def test_every_dependency_is_pinned_within_its_specifier():
    locked = _locked()
    reqs = _requirements()
    assert len(reqs) > 20
    for req in reqs:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in {lockfile.LOCK}: run {lockfile.REFRESH}"
        for version, marker in locked[name]:  # a universal lock may pin per Python version
            assert req.specifier.contains(version, prereleases=True), f"{req.name}=={version} violates {req}"
    assert [v for v, _ in locked["torch"]] == [Version("2.11.0")]
    assert [v for v, _ in locked["torchaudio"]] == [Version("2.11.0")]


def test_stamp_matches_pyproject_dependency_lists(tmp_path):
    assert lockfile.check(LOCK, PYPROJECT) is None
    # an edited dependency list no longer matches; comments and formatting do not count
    edited = tmp_path / "pyproject.toml"
    text = PYPROJECT.read_text()
    edited.write_text(text.replace('"numpy",', '"numpy",  # arrays\n'))
    assert lockfile.deps_hash(edited) == lockfile.deps_hash(PYPROJECT)
    edited.write_text(text.replace('"numpy",', '"numpy>=9",'))
    assert "run ./run lock" in lockfile.check(LOCK, edited)


def test_lock_lines_are_exact_pins(tmp_path):
    bad = tmp_path / "requirements.lock"
    bad.write_text("torch>=2.0\n")
    with pytest.raises(ValueError, match="not an exact pin"):
        lockfile.pins(bad)
