"""The paper profile against the published recipes: every row of docs/conformance.md is a test
that reads the value from the code (issue 12, item 2). A section's rows apply to the first task
named in its heading (`*` = the 10-minute budget) unless a row names its task (`TASK:setting`)."""

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

from harness.evaluate import build_task, resolve_config
from tasks import base

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
_ROW = re.compile(r"^\| `([^`]+)` \| `(.+?)` \| (.+) \|$")


def _rows():
    task, out = None, []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            names = re.findall(r"`([^`]+)`", line)
            task = names[0].replace("*", "10min") if names else None
            continue
        m = _ROW.match(line)
        if m:
            setting, value = m.group(1), m.group(2)
            where, _, setting = setting.rpartition(":")
            out.append(pytest.param(where or task, setting, value, id=f"{where or task}:{setting}"))
    return out


ROWS = _rows()


def _literal(text):
    if re.fullmatch(r"[A-Z_]+(,\))?|\(([A-Z_]+,)+\)", text):  # names of tasks.base constants
        return eval(text, {}, vars(base))  # noqa: S307 - our own doc, constants only
    return ast.literal_eval(text)


def _actual(task_name, setting):
    kind, _, rest = setting.partition(".")
    if kind == "profile":
        cfg = resolve_config(build_task(task_name), "paper")
        return getattr(cfg.probe, rest) if hasattr(cfg.probe, rest) else getattr(cfg, rest)
    if kind == "task":
        return getattr(build_task(task_name), rest)
    module, attr = _split_module(rest)
    obj = importlib.import_module(module)
    if kind == "code":
        for part in attr:
            obj = getattr(obj, part)
        return obj
    if kind == "default":
        cls = getattr(obj, attr[0])
        return inspect.signature(cls.__init__).parameters[attr[1]].default
    raise AssertionError(f"unknown setting kind {kind!r}")


def _split_module(dotted):
    parts = dotted.split(".")
    for k in range(len(parts) - 1, 0, -1):
        try:
            importlib.import_module(".".join(parts[:k]))
            return ".".join(parts[:k]), parts[k:]
        except ModuleNotFoundError:
            continue
    raise AssertionError(f"no module in {dotted!r}")


def test_the_page_has_a_table_for_every_task_family():
    tasks = {p.values[0] for p in ROWS}
    assert {"pr", "asr", "ks", "sid", "asv", "sd", "ss", "ml_asr_10min"} <= tasks
    assert len(ROWS) >= 90


@pytest.mark.parametrize("task_name, setting, value", ROWS)
def test_paper_profile_row(task_name, setting, value):
    want = _literal(value)
    got = _actual(task_name, setting)
    if isinstance(want, float) or isinstance(got, float):
        assert got == pytest.approx(want), f"{task_name} {setting}: {got!r}, the reference says {want!r}"
    else:
        assert got == want, f"{task_name} {setting}: {got!r}, the reference says {want!r}"


def test_every_crop_trained_task_declares_the_feature_cache_departure():
    for name in ("sid", "asv", "sd"):
        t = build_task(name)
        paper = resolve_config(t, "paper").probe
        assert paper.crop_seconds > 0 or paper.crop_frames > 0  # it does train on crops
        assert t.departures[0] == base.FEATURE_CACHE_CROPS
    assert any("2 s" in d for d in build_task("asv").departures)
    assert build_task("pr").departures == () and build_task("asr").departures == ()


def test_the_xvector_head_has_no_batch_norm_by_default_and_the_quick_profile_opts_in():
    import torch

    from tasks.heads import XVectorHead

    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in XVectorHead(8, 16, 24, 12).modules())
    asv = build_task("asv")
    assert resolve_config(asv, "quick").probe.head == "xvector_bn"


def test_pr_reads_a_superb_lexicon_and_records_the_phones_source(tmp_path):
    from harness.data.corpus import Utterance
    from harness.errors import HarnessError
    from tasks.pr import read_lexicon

    lex = tmp_path / "lexicon.txt"
    lex.write_text("HELLO\tHH AH0 L OW1\nHELLO HH EH0 L OW1\nWORLD W ER1 L D\n\nDON'T D OW1 N T\n")
    assert read_lexicon(lex) == {"HELLO": ["HH", "AH0", "L", "OW1"], "WORLD": ["W", "ER1", "L", "D"],
                                 "DON'T": ["D", "OW1", "N", "T"]}  # the first entry of a word wins
    pr = build_task("pr")
    u = Utterance(id="u", path="x", duration=1.0, text="hello world", language="en", custom={"phones": "h @ l"})
    assert pr.tokens(u) == ["h", "@", "l"]  # without a lexicon: the corpus's espeak phones
    pr.set_lexicon(str(lex))
    assert pr.tokens(u) == ["HH", "AH0", "L", "OW1", "W", "ER1", "L", "D"]
    bad = tmp_path / "bad.txt"
    bad.write_text("HELLO\n")
    with pytest.raises(HarnessError, match="line 1"):
        read_lexicon(bad)
    with pytest.raises(HarnessError, match="reads no lexicon"):
        build_task("asr").set_lexicon(str(lex))


def test_pr_results_say_which_phones_they_used(tiny_corpus, tmp_path):
    from harness.evaluate import evaluate

    res = evaluate("fbank", "pr", str(tiny_corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-2],
                   overrides={"steps": 2, "eval_every": 2}, log=lambda *_: None)
    r = json.loads(json.dumps(res[0]))
    assert r["extra"]["phones_source"] == "espeak" and r["departures"] == []
    words = sorted({w for u in _speech(tiny_corpus) for w in (u.text or "").upper().split()})
    lex = tmp_path / "lex.txt"
    lex.write_text("".join(f"{w} P{k % 7} Q{k % 5}\n" for k, w in enumerate(words)))
    res = evaluate("fbank", "pr", str(tiny_corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-2],
                   overrides={"steps": 2, "eval_every": 2, "lexicon": str(lex)}, log=lambda *_: None)
    assert res[0]["extra"]["phones_source"] == "lexicon" and res[0]["extra"]["lexicon_file"] == str(lex)


def _speech(corpus_dir):
    from harness.data.corpora import load_corpus

    return [u for u in load_corpus(str(corpus_dir)).utterances if u.subset == "speech"]
