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
from tasks import base, base_lr

DOC = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"
_ROW = re.compile(r"^\| `([^`]+)` \| `(.+?)` \| (.+) \| `([^`]+)` \|$")
#: a row's source: REPO@COMMIT PATH[:LINE[-LINE]]
_SOURCE = re.compile(r"^([\w.-]+)@([0-9a-f]{7,40}) ([\w.{}/-]+\.\w+)(?::(\d+)(?:-(\d+))?)?$")
#: the page's table of commits read: `owner/name@<40 hex>`
_COMMIT = re.compile(r"`([\w.-]+)/([\w.-]+)@([0-9a-f]{40})`")


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
#: every table row of the page (the rows `_rows` parses must be all of them)
TABLE_ROWS = [line for line in DOC.read_text(encoding="utf-8").splitlines() if re.match(r"^\| `[^`]+` \| `", line)]


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
    assert len(ROWS) == len(TABLE_ROWS)  # a row without a source cell is not parsed, so not tested


def test_every_row_names_a_commit_of_the_page_and_a_file():
    """Each row's source is REPO@COMMIT PATH:LINE, the commit a prefix of one in the page's table
    of commits read (40 hex, with its owner/name), so a reader can open the exact line."""
    text = DOC.read_text(encoding="utf-8")
    commits = {(name, sha) for _, name, sha in _COMMIT.findall(text)}
    assert {"s3prl", "espnet", "kaldi"} <= {n for n, _ in commits}
    lined = 0
    for line in TABLE_ROWS:
        m = _ROW.match(line)
        assert m, f"row without a source cell: {line}"
        src = _SOURCE.match(m.group(4))
        assert src, f"source {m.group(4)!r} is not REPO@COMMIT PATH[:LINE]"
        repo, short, path, first, last = src.groups()
        assert any(n == repo and sha.startswith(short) for n, sha in commits), \
            f"{m.group(4)!r}: commit {short} of {repo} is not in the page's table of commits"
        assert "/" in path, f"{m.group(4)!r}: give the path inside the repository"
        if first:
            lined += 1
            assert int(first) >= 1 and (last is None or int(last) > int(first))
    assert lined >= len(TABLE_ROWS) - 2  # only option names without a line (abs_task.py's --grad_clip)


def test_source_pattern_rejects_what_a_reader_could_not_open():
    for bad in ("s3prl ctc/libriphone.yaml:2", "s3prl@xyz1234 ctc/libriphone.yaml:2", "s3prl@abc12 a/b.yaml",
                "s3prl@ec8064b588 libriphone", "s3prl@ec8064b588 a/b.yaml:x"):
        assert not _SOURCE.match(bad), bad
    assert _SOURCE.match("s3prl@ec8064b588 s3prl/downstream/asr/dataset.py:97-98").groups()[3:] == ("97", "98")


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


def test_asv_dev_selection_and_lid_without_a_recipe_are_departures():
    """Issue 28 finding 7 (b), (c): both are stated with every result, not only on this page."""
    from tasks.asv import ASV_DEV_SELECTION

    assert build_task("asv").departures[-1] == ASV_DEV_SELECTION
    assert "best test EER" in ASV_DEV_SELECTION and "held out" in ASV_DEV_SELECTION
    (lid,) = build_task("lid").departures
    assert lid.startswith("no reference recipe")
    assert build_task("lid").reference_lr is None
    page = DOC.read_text(encoding="utf-8")
    assert "## `lid`" in page and "tasks.asv.ASV_DEV_SELECTION" in page


def test_the_asr_batch_is_the_16_s3prl_trains_with():
    """s3prl halves every 32-utterance bucket whose longest item exceeds 2000 samples (all of
    LibriSpeech): 16 per update, and the seconds cap never cuts below 16 at LibriSpeech's 35 s."""
    p = resolve_config(build_task("asr"), "paper").probe
    assert p.max_batch_items == 16 and p.grad_accum == 1
    assert p.batch_seconds >= 16 * 35.0


def test_the_xvector_head_has_no_batch_norm_by_default_and_the_quick_profile_opts_in():
    import torch

    from tasks.heads_speaker import XVectorHead

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


SUPERB_TASKS = ("pr", "asr", "ks", "sid", "asv", "sd", "ss")


@pytest.mark.parametrize("name", SUPERB_TASKS + ("lid",))
def test_the_paper_profile_searches_five_or_more_decades_around_the_recipe_lr(name):
    t = build_task(name)
    lrs = resolve_config(t, "paper").probe.lrs
    ref = t.reference_lr if t.reference_lr is not None else 1e-4  # lid: the ML-SUPERB lr it borrows
    assert len(lrs) >= base_lr.SUPERB_LR_COUNT == 5
    assert ref in lrs
    assert list(lrs) == sorted(lrs)
    for a, b in zip(lrs, lrs[1:]):
        assert b / a == pytest.approx(10.0)  # whole decades: a log-scale grid
    lo, hi = base_lr.SUPERB_LR_RANGE
    assert lo <= lrs[0] and lrs[-1] <= hi


def test_superb_lr_grid_widens_the_maintainers_grid_towards_the_recipe_lr():
    g = base_lr.superb_lr_grid
    assert g(1e-2, (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)) == (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # pr.sh as is
    assert g(1e-4, (1e-3, 1e-4, 1e-5)) == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # both sides, ties down first
    assert g(1e-4, (1e-1, 1e-2, 1e-3, 1e-4)) == (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # 1e-1 is the range's top
    assert g(1e-4, (1e-2, 1e-3, 1e-4, 1e-5)) == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)  # the nearer side first
    assert g(1e-4, (1e0, 1e-1, 1e-6)) == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # 1e0 out of range; gaps filled
    assert g(1e-7) == (1e-7, 1e-6, 1e-5, 1e-4, 1e-3)
    with pytest.raises(ValueError, match="3e-05 is not a power of ten"):
        g(3e-5)


def test_the_board_shows_the_dev_best_lr_of_the_paper_grid_and_every_lr_dev_metric(tmp_path):
    """One paper-profile run per lr of asr's grid: the board's row is the dev-best lr's (not the
    test-best's), and its "mean per lr" cell lists the dev WER of all five."""
    from harness import leaderboard
    from tests.unit.test_leaderboard import write_run

    lrs = resolve_config(build_task("asr"), "paper").probe.lrs
    dev = dict(zip(lrs, (90.0, 40.0, 30.0, 35.0, 99.0)))  # 1e-4 (the recipe's) is dev-best
    test = dict(zip(lrs, (91.0, 20.0, 31.0, 36.0, 98.0)))  # 1e-5 would win on test
    for lr in lrs:
        write_run(tmp_path / "runs", "synth", "synth", "fbank", "asr", lr, 1, dev[lr], test[lr], 1, profile="paper")
    leaderboard.build(tmp_path / "runs", tmp_path / "lb")
    md = (tmp_path / "lb" / "synth.md").read_text()
    (row,) = [line for line in md.splitlines() if line.startswith("| fbank | 31.00")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "0.0001" in cells and "dev" in cells
    assert "1e-06: 90.00, 1e-05: 40.00, 0.0001: 30.00, 0.001: 35.00, 0.01: 99.00" in cells


def test_mlsuperb_profiles_keep_the_recipe_single_lr():
    assert resolve_config(build_task("ml_asr_10min"), "paper").probe.lrs == (1e-4,)


def test_the_departures_reach_result_json(tiny_corpus, tmp_path):
    """What a task declares is what its result.json on disk says (finding 7 (b) and (c))."""
    from harness.evaluate import evaluate
    from harness.request import EvalRequest

    for name in ("asv", "lid"):
        evaluate(EvalRequest("fbank", name, str(tiny_corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3],
                             overrides={"steps": 2, "eval_every": 2}), log=lambda *_: None)
        (saved,) = (tmp_path / "runs").rglob(f"{name}/*/result.json")
        deps = json.loads(saved.read_text())["departures"]
        assert deps == list(build_task(name).departures) and len(deps) == {"asv": 3, "lid": 1}[name]


def test_pr_results_say_which_phones_they_used(tiny_corpus, tmp_path):
    from harness.evaluate import evaluate
    from harness.request import EvalRequest

    res = evaluate(EvalRequest("fbank", "pr", str(tiny_corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-2],
                               overrides={"steps": 2, "eval_every": 2}), log=lambda *_: None)
    r = json.loads(json.dumps(res[0]))
    assert r["extra"]["phones_source"] == "espeak" and r["departures"] == []
    words = sorted({w for u in _speech(tiny_corpus) for w in (u.text or "").upper().split()})
    lex = tmp_path / "lex.txt"
    lex.write_text("".join(f"{w} P{k % 7} Q{k % 5}\n" for k, w in enumerate(words)))
    res = evaluate(EvalRequest("fbank", "pr", str(tiny_corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-2],
                               overrides={"steps": 2, "eval_every": 2, "lexicon": str(lex)}), log=lambda *_: None)
    assert res[0]["extra"]["phones_source"] == "lexicon" and res[0]["extra"]["lexicon_file"] == str(lex)


def _speech(corpus_dir):
    from harness.data.corpora import load_corpus

    return [u for u in load_corpus(str(corpus_dir)).utterances if u.subset == "speech"]
