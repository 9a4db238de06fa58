"""The mutant list of scripts/mutants.py cannot rot silently (issue 36): every mutant's original
text is still in its file exactly once (a refactor that moves the code must move the mutant), the
names are unique, the tests it names exist, and there are at least 30 of them. Running the
mutants themselves is not part of the suite (tens of minutes); see the script's docstring."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    """scripts/mutants.py as a module (scripts/ is no package); registered before it runs, as
    its dataclass needs."""
    if "mutants_script" not in sys.modules:
        spec = importlib.util.spec_from_file_location("mutants_script", ROOT / "scripts" / "mutants.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules["mutants_script"] = mod
        spec.loader.exec_module(mod)
    return sys.modules["mutants_script"]


def test_every_original_text_occurs_once_and_every_named_test_exists():
    mod = _module()
    assert mod.check_list() == []
    for m in mod.MUTANTS:
        text = (ROOT / m.file).read_text()
        assert text.count(m.original) == 1, m.name
        assert text.replace(m.original, m.replacement) != text, m.name


def test_at_least_30_mutants_with_unique_names_covering_the_number_making_code():
    mod = _module()
    names = [m.name for m in mod.MUTANTS]
    assert len(names) >= 30 and len(set(names)) == len(names)
    files = {m.file for m in mod.MUTANTS}
    for f in ("tasks/metrics.py", "harness/featurizer.py", "harness/probe.py", "harness/board/select.py",
              "harness/features.py", "harness/pretrain/model.py", "harness/data/corpus.py", "tasks/base_ctc.py"):
        assert f in files, f


def test_check_list_reports_a_rotten_entry(tmp_path):
    mod = _module()
    (tmp_path / "a.py").write_text("x = 1\nx = 1\n")
    (tmp_path / "t.py").write_text("")
    bad = [mod.Mutant("m", "a.py", "x = 1", "x = 2", ("t.py",), "twice"),
           mod.Mutant("m", "a.py", "y = 1", "y = 2", ("missing.py",), "absent")]
    problems = mod.check_list(bad, root=tmp_path)
    assert any("occurs 2 times" in p for p in problems)
    assert any("occurs 0 times" in p for p in problems)
    assert any("duplicate name" in p for p in problems)
    assert any("missing.py does not exist" in p for p in problems)
    (tmp_path / "b.py").write_text("if x:\n    y = 1\n")
    broken = mod.Mutant("b", "b.py", "    y = 1\n", "", ("t.py",), "empty block")
    assert any("does not compile" in p for p in mod.check_list([broken], root=tmp_path))
