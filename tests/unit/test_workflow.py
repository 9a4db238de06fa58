"""Issue 33 item 6: the GitHub workflows are valid and follow the hardening rules.

Validity is GitHub's own workflow schema, through check-jsonschema (in requirements.lock) and the
copy of the schema it vendors, so the check runs offline: unknown keys, a job without runs-on,
a step with both uses and run, a missing trigger. The hardening rules are beyond any schema and
are read here with PyYAML: least-privilege permissions, a concurrency group, actions pinned by
40-hex commit SHA with the tag in a comment, checkout without persisted credentials, the venv
cache keyed by the Python version, and no ``${{ }}`` expression pasted into a shell script
(values go through ``env:``).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.y*ml"))
#: the console script installed beside the interpreter running the tests (the venv's bin/)
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
PERMISSIONS = {"read", "write", "none"}


def schema_check(paths) -> subprocess.CompletedProcess:
    """check-jsonschema on ``paths`` against its vendored GitHub workflow schema (no network)."""
    assert CHECK_JSONSCHEMA.is_file(), f"{CHECK_JSONSCHEMA} missing: install requirements.lock"
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", "--color", "never",
                           *map(str, paths)], capture_output=True, text=True, timeout=120)


def problems(text: str) -> list:
    """Every hardening rule the workflow ``text`` breaks, one line each ([] when none); its
    structure is the schema's to check."""
    doc = yaml.safe_load(text)
    out = []
    perms = doc.get("permissions")
    if not isinstance(perms, dict) or not perms:
        out.append("no top-level `permissions:` block (the token would get the repository default)")
    else:
        out += [f"permission {k}: {v}" for k, v in perms.items() if v not in PERMISSIONS]
        out += [f"permission {k}: write at the top level" for k, v in perms.items() if v == "write"]
    conc = doc.get("concurrency")
    if not isinstance(conc, dict) or "group" not in conc or "cancel-in-progress" not in conc:
        out.append("no `concurrency:` group with cancel-in-progress")
    comments = {ln.split("uses:", 1)[1].split("#")[0].strip(): ln for ln in text.splitlines() if "uses:" in ln}
    for jname, job in (doc.get("jobs") or {}).items():
        for i, step in enumerate(job.get("steps") or []):
            where = f"job {jname} step {i + 1} ({step.get('name') or step.get('uses') or 'run'})"
            uses = step.get("uses")
            if uses is not None:
                if not PINNED.match(uses):
                    out.append(f"{where}: {uses} is not pinned by a 40-hex commit SHA")
                elif not re.search(r"#\s*v\d", comments.get(uses, "")):
                    out.append(f"{where}: {uses} has no `# vX.Y.Z` tag comment")
                name = uses.split("@")[0]
                if name == "actions/checkout" and (step.get("with") or {}).get("persist-credentials") is not False:
                    out.append(f"{where}: checkout without persist-credentials: false")
                if name.startswith("actions/cache") and ".venv" in str((step.get("with") or {}).get("path")):
                    if "python-version" not in str(step["with"].get("key")):
                        out.append(f"{where}: venv cache key without the Python version")
            if "${{" in str(step.get("run", "")):
                out.append(f"{where}: an expression inside run: (pass it through env:)")
    return out


def test_there_is_a_workflow():
    assert WORKFLOWS


def test_workflows_are_valid_under_githubs_schema():
    r = schema_check(WORKFLOWS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validation done" in r.stdout


@pytest.mark.parametrize("broken, says", [
    (lambda t: t.replace("\njobs:", "\nbogus: 1\njobs:"), "'bogus' was unexpected"),
    (lambda t: re.sub(r"\n +runs-on: .*", "", t), "is not valid under any of the given schemas"),
    (lambda t: t.replace("persist-credentials: false", "persist-credentials: false\n        run: echo both", 1),
     "is not valid under any of the given schemas"),
    (lambda t: re.sub(r"\non:\n(  .*\n)+", "\n", t), "'on' is a required property"),
], ids=["unknown top-level key", "runs-on missing", "uses and run", "no trigger"])
def test_the_schema_check_fails_on_a_broken_workflow(tmp_path, broken, says):
    good = WORKFLOWS[0].read_text()
    text = broken(good)
    assert text != good
    path = tmp_path / WORKFLOWS[0].name
    path.write_text(text)
    r = schema_check([path])
    assert r.returncode == 1 and "Schema validation errors" in r.stdout, r.stdout + r.stderr
    assert says in r.stdout, r.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_is_hardened(path):
    assert problems(path.read_text()) == []


def test_the_checks_catch_each_rule():
    """Each rule fails on a workflow that breaks it (so the test above can fail)."""
    good = WORKFLOWS[0].read_text()
    sha = re.search(r"actions/checkout@([0-9a-f]{40})", good).group(1)
    broken = {
        "pinned by a 40-hex": good.replace(f"actions/checkout@{sha}", "actions/checkout@v4"),
        "tag comment": good.replace(f"actions/checkout@{sha}  # v4.4.0", f"actions/checkout@{sha}"),
        "persist-credentials": good.replace("persist-credentials: false", "persist-credentials: true"),
        "permissions": good.replace("permissions:\n  contents: read\n", ""),
        "write at the top level": good.replace("contents: read", "contents: write"),
        "concurrency": re.sub(r"concurrency:\n(  .*\n)+", "", good),
        "Python version": good.replace("venv-${{ runner.os }}-py${{ steps.python.outputs.python-version }}",
                                       "venv-${{ runner.os }}"),
        "inside run": good.replace('cat board-ci/GITHUB.md', 'cat ${{ github.workspace }}/board-ci/GITHUB.md'),
    }
    for rule, text in broken.items():
        assert text != good, rule
        found = problems(text)
        assert any(rule in p for p in found), (rule, found)
