"""Issue 33 item 8: --help, `list tasks`, `list upstreams` and name/value errors answer without
importing torch.

An import check, not a timing: each command runs in a fresh interpreter, which then reports
whether torch (or torchaudio, transformers) was ever imported.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.registry import TASK_NAMES, TASKS, check_task_name, load_all

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchaudio", "transformers")
PROBE = """
import json, sys
from harness.cli import app
sys.argv = ["harness", *json.loads(sys.argv[1])]
try:
    app()
except SystemExit as e:
    code = e.code
print("MODULES " + json.dumps([m for m in %r if m in sys.modules]), file=sys.stderr)
""" % (HEAVY,)


def run_cli(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    mods = json.loads(p.stderr.rsplit("MODULES ", 1)[1])
    return p.stdout + p.stderr.rsplit("MODULES ", 1)[0], mods


@pytest.mark.parametrize("args,expect", [
    (["--help"], "Pre-train, probe and rank"),
    (["leaderboard", "--help"], "--format"),
    (["list", "tasks"], "\n".join(TASK_NAMES)),
    (["list", "upstreams", "--runs", "nowhere"], "random init, wavlm preset large, seed 0"),
    (["eval", "--upstream", "nope", "--task", "ks"], "unknown upstream 'nope'. Accepted: a registered name"),
    (["eval", "--upstream", "fusion:fbank+mfccc", "--task", "ks"], "unknown upstream 'mfccc'. Did you mean: mfcc"),
    (["eval", "--upstream", "s3prll:hubert:x.pt", "--task", "ks"], "unknown upstream source 's3prll:'"),
    (["list", "nope"], "'nope' is not one of"),  # the Listing enum: click's one error box
    (["eval", "--upstream", "fbank", "--task", "sdi"], "unknown task 'sdi'. Did you mean: sd, sid"),
    (["eval", "--upstream", "fbank", "--task", "pr", "--seeds", "0"], "--seeds must be an integer >= 1, got 0"),
    (["eval", "--upstream", "fbank", "--task", "pr", "--workers", "2"], "launcher options need --launcher"),
    (["eval", "--upstream", "fbank", "--task", "pr", "--lr", "0"], "every learning rate must be a positive"),
    (["leaderboard", "--runs", "nowhere", "--format", "xml"], "'xml' is not one of 'csv',"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_answers_without_torch(args, expect):
    out, heavy = run_cli(args)
    assert expect in out, out
    assert heavy == [], f"{' '.join(args)} imported {heavy}"


def test_the_probe_sees_torch_when_a_command_needs_it(tmp_path):
    """An export under --runs is described by building it on the meta device, so `list upstreams`
    then imports torch: the check can fail."""
    from upstreams.base import export_encoder, get_family

    fam = get_family("hubert")
    export_encoder(fam.random_encoder(fam.preset("tiny")), "hubert", tmp_path / "it1" / "upstream", "t-it1")
    out, heavy = run_cli(["list", "upstreams", "--runs", str(tmp_path)])
    assert "random:hubert_tiny" in out and "export 't-it1'" in out and "torch" in heavy


def test_static_task_names_are_the_registry():
    load_all()
    assert list(TASK_NAMES) == TASKS.names()
    with pytest.raises(HarnessError) as static:
        check_task_name("sdi")
    with pytest.raises(HarnessError) as registry:
        TASKS.get("sdi")
    assert str(static.value) == str(registry.value)
