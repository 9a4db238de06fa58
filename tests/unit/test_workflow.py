"""Issue 33 item 6: the GitHub workflows follow the hardening rules.

check-jsonschema (with its vendored GitHub workflow schema) is not in requirements.lock, and
adding it means re-locking a file every engineer shares, so these checks read the YAML with
PyYAML and test the structure and the rules themselves: the keys GitHub requires, least-privilege
permissions, a concurrency group, actions pinned by 40-hex commit SHA with the tag in a comment,
checkout without persisted credentials, the venv cache keyed by the Python version, and no
``${{ }}`` expression pasted into a shell script (values go through ``env:``).
"""

import re
from pathlib import Path

import pytest
import yaml

WORKFLOWS = sorted((Path(__file__).resolve().parents[2] / ".github" / "workflows").glob("*.y*ml"))
TOP_KEYS = {"name", "run-name", "on", "permissions", "env", "defaults", "concurrency", "jobs"}
STEP_KEYS = {"id", "if", "name", "uses", "run", "with", "env", "shell", "working-directory", "continue-on-error",
             "timeout-minutes"}
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
PERMISSIONS = {"read", "write", "none"}


def problems(text: str) -> list:
    """Every rule the workflow ``text`` breaks, one line each ([] when none)."""
    doc = yaml.safe_load(text)
    out = []
    on = doc.get("on", doc.get(True))  # PyYAML reads the bare key `on` as the boolean True
    if not on:
        out.append("no `on:` trigger")
    out += [f"unknown top-level key {k!r}" for k in doc if k not in TOP_KEYS and k is not True]
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
    jobs = doc.get("jobs") or {}
    if not jobs:
        out.append("no jobs")
    for jname, job in jobs.items():
        if "runs-on" not in job or not job.get("steps"):
            out.append(f"job {jname}: needs runs-on and steps")
        for i, step in enumerate(job.get("steps") or []):
            where = f"job {jname} step {i + 1} ({step.get('name') or step.get('uses') or 'run'})"
            out += [f"{where}: unknown key {k!r}" for k in step if k not in STEP_KEYS]
            if ("uses" in step) == ("run" in step):
                out.append(f"{where}: needs exactly one of uses / run")
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
