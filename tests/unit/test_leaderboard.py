"""Leaderboards, heatmaps and the CI report on fake run folders."""

import math
import re
import zlib

import matplotlib.image as mpimg
import pandas as pd
import pytest

from harness import leaderboard
from harness.board.flags import FLAG_LEGEND
from harness.board.learning_curves import learning_curve_points
from harness.board.loader import output_ratio
from harness.board.page import SYNTH_HEADER
from harness.board.ranks import fmt_rank
from harness.board.seed_comparisons import seed_comparisons
from harness.board.summary import task_ranks, upstream_cells
from harness.board.task_section import probe_updates_line
from harness.errors import HarnessError
from harness.report import write_report
from harness.results import atomic_write_json, run_dir, slug

UPSTREAMS = {"fbank": 1, "random:hubert_tiny": 5}  # name -> L+1

# (upstream, task) -> {lr: [(dev, test) for seeds 1, 2]}; primary metric only
PRIMARY = {
    # lr 1e-3 holds the best single dev seed (10) but lr 1e-4 has the best dev mean (15.5 < 20)
    ("random:hubert_tiny", "asr"): {1e-3: [(10.0, 11.0), (30.0, 31.0)], 1e-4: [(15.0, 14.0), (16.0, 18.0)]},
    ("fbank", "asr"): {1e-3: [(50.0, 52.0), (54.0, 56.0)], 1e-4: [(60.0, 61.0), (62.0, 63.0)]},
    # higher is better: lr 1e-3 best single seed (99) but lr 1e-4 has the best mean (80 > 60)
    ("random:hubert_tiny", "ks"): {1e-3: [(99.0, 98.0), (21.0, 20.0)], 1e-4: [(79.0, 77.0), (81.0, 83.0)]},
    ("fbank", "ks"): {1e-3: [(40.0, 41.0), (42.0, 43.0)], 1e-4: [(30.0, 31.0), (32.0, 33.0)]},
}
TASK_META = {"asr": ("wer", False), "ks": ("acc", True)}
# result.json's upstream_facts (harness.catalog.upstream_facts), as eval writes them
FACTS = {"fbank": {"family": "fbank", "layers": 1, "width": 240, "frame_rate_hz": 100.0, "params": 0,
                   "source": "torchaudio.compliance.kaldi.fbank", "pretraining": None},
         "random:hubert_tiny": {"family": "hubert", "layers": 5, "width": 128, "frame_rate_hz": 50.0,
                                "params": 1205248, "source": "random init, hubert preset tiny, seed 0",
                                "pretraining": None}}


def weights(n, task):
    w = [float(i + 1) for i in range(n)] if task == "asr" else [float(n - i) for i in range(n)]
    s = sum(w)
    return [x / s for x in w]


def write_run(root, corpus, kind, upstream, task, lr, seed, dev, test, n_layers, extra_test=None, lw=True,
              extra=None, **fields):
    h = f"h{zlib.crc32(repr((upstream, task)).encode()):08x}"  # lr and seed are not in a config hash
    d = run_dir(root, corpus, upstream, task, lr, seed, h)
    primary, hib = TASK_META.get(task, (None, None))
    result = {
        "run_id": f"{slug(upstream)}-{task}-lr{lr:g}-s{seed}", "corpus": corpus, "corpus_kind": kind,
        "upstream": upstream, "upstream_family": upstream.split(":")[-1], "task": task, "profile": "quick",
        "lr": lr, "seed": seed, "config_hash": h, "git_sha": "abc123def456",
        "versions": {"python": "3.12", "torch": "2.11.0", "torchaudio": "2.11.0", "harness": "0.1.0"},
        "primary_metric": primary, "higher_is_better": hib,
        "metrics": {"dev": {primary: dev}, "test": {primary: test, **(extra_test or {})}},
        "extra": extra or {}, "timing": {"features_s": 1.0, "train_s": 2.0, "total_s": 3.0, "steps": 10}, "best_step": 10,
        "finished_at": "2025-01-01T00:00:00+00:00", **fields,
    }
    if upstream in FACTS and "upstream_facts" not in fields:
        result["upstream_facts"] = FACTS[upstream]
    if lw:
        w = weights(n_layers, task)
        result["layer_weights"] = {"softmax": w, "layer_norm": [1.0] * n_layers, "corrected": list(reversed(w))}
    atomic_write_json(d / "config.json", {"lr": lr, "seed": seed})
    atomic_write_json(d / "result.json", result)
    return d


@pytest.fixture()
def runs(tmp_path):
    root = tmp_path / "runs"
    for (up, task), by_lr in PRIMARY.items():
        for lr, seeds in by_lr.items():
            for seed, (dev, test) in enumerate(seeds, start=1):
                extra = {"cer": test / 2} if task == "asr" else None
                write_run(root, "synth", "synth", up, task, lr, seed, dev, test, UPSTREAMS[up], extra)
    # an unfinished run (no result.json) with a dev value better than anything above: must be ignored
    d = run_dir(root, "synth", "random:hubert_tiny", "asr", 1e-2, 1, "unfin01")
    atomic_write_json(d / "config.json", {"lr": 1e-2})
    atomic_write_json(d / "progress.json", {"best_dev": {"wer": 0.5}})
    return root


def test_collect_reads_only_finished_runs(runs):
    df = leaderboard.collect(runs)
    assert len(df) == 16
    assert 1e-2 not in set(df["lr"])
    s = leaderboard.scan(runs)
    assert [p.name for p in s.unfinished] == ["lr0.01_seed1_unfin01"]


def test_select_best_uses_dev_mean(runs):
    best = leaderboard.select_best(leaderboard.collect(runs)).set_index(["upstream", "task"])
    assert best.loc[("random:hubert_tiny", "asr"), "lr"] == 1e-4
    assert best.loc[("random:hubert_tiny", "ks"), "lr"] == 1e-4
    assert best.loc[("fbank", "asr"), "lr"] == 1e-3
    assert best.loc[("fbank", "ks"), "lr"] == 1e-3
    r = best.loc[("random:hubert_tiny", "asr")]
    assert r["test.wer.mean"] == pytest.approx(16.0)
    assert r["test.wer.ci"] == pytest.approx(12.706204736174698 * 2.0)  # t_{.975,1} * s(14, 18) / sqrt 2
    assert r["dev.wer.mean"] == pytest.approx(15.5)
    assert r["test.cer.mean"] == pytest.approx(8.0)
    assert r["n_seeds"] == 2 and r["seeds"] == [1, 2]
    assert r["lr_scores"] == {1e-4: 15.5, 1e-3: 20.0}
    assert len(r["lw_softmax"]) == 5 and sum(r["lw_softmax"]) == pytest.approx(1.0)


def test_build_markdown_and_heatmaps(runs, tmp_path):
    out = tmp_path / "lb"
    paths = leaderboard.build(runs, out)
    page = out / "synth.md"
    assert page in paths
    md = page.read_text()
    assert SYNTH_HEADER in md
    assert "16.00 ± 25.41" in md  # hubert asr test WER at lr 1e-4
    assert "80.00 ± 38.12" in md  # hubert ks test acc at lr 1e-4: mean 80, s = 4.243
    assert "54.00 ± 25.41" in md  # fbank asr at lr 1e-3
    assert "8.00 ± 12.71" in md  # hubert asr test CER (other metric)
    # run ids live in the run details at the bottom, not in the task tables
    details = md[md.index("## Run details"):]
    assert "random-hubert_tiny-asr-lr0.0001-s1, random-hubert_tiny-asr-lr0.0001-s2" in details
    assert "random-hubert_tiny-asr-lr0.0001-s1" not in md[:md.index("## Run details")]
    assert "lr0.01" not in md and "unfin01" not in md
    # summary row: upstream facts, then each task's value with its rank range (the two upstreams' 95 %
    # intervals overlap on both tasks), then the absolute score: n/a, the board lacks 5 of its 7 tasks
    summary = md[md.index("### Summary"):].split("\n\n")[1]
    rows = {line.split(" | ")[0][2:]: line for line in summary.splitlines()}
    assert rows["random:hubert_tiny"] == ("| random:hubert_tiny | 1.21M | 5 | 50 Hz | none (random init) | – | "
                                          "16.00 #1-2 | 80.00 #1-2 | n/a |")
    assert rows["fbank"] == "| fbank | 0 | 1 | 100 Hz | none (no weights) | – | 54.00 #1-2 | 42.00 #1-2 | n/a |"
    assert "Without a score: fbank: no pr, ks, sid, asr, asv, sd, ss" in md  # no metric_specs: unversioned runs
    pngs = [p for p in paths if p.suffix == ".png"]
    names = {p.name for p in pngs}
    # fbank has one layer: no upstream heatmap of its own and no row to draw in the task heatmaps
    assert names == {f"heatmap_{v}_{kind}.png" for kind in ("raw", "corrected")
                     for v in ("upstream_random-hubert_tiny", "task_asr", "task_ks")}
    assert not list((out / "synth" / "quick").glob("heatmap_upstream_fbank_*"))
    assert "Single-layer upstreams (fbank) weigh nothing and are not drawn." in md
    for p in pngs:
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] > 100 and img.shape[1] > 100


def test_report_links_resolve(runs, tmp_path):
    out = tmp_path / "ci"
    bad = runs / "synth" / "fbank" / "ks" / "lr0.5_seed9_broken1"
    bad.mkdir(parents=True)
    (bad / "result.json").write_text('{"run_id": "x"}')  # schema keys missing: counted, not read
    page = write_report(runs, out)
    assert page == out / "REPORT.md"
    md = page.read_text()
    assert "runs read: 16 finished" in md
    assert "skipped as unfinished (run folder without result.json): 1" in md
    assert "skipped as unreadable result.json: 1" in md and "lr0.5_seed9_broken1/result.json" in md
    links = re.findall(r"\]\(([^)]+)\)", md)
    images = [l for l in links if l.endswith(".png")]
    assert sorted(images) == ["synth/quick/heatmap_task_asr_corrected.png", "synth/quick/heatmap_task_ks_corrected.png"]
    for link in links:
        assert (out / link).is_file(), link
    # a one-screen summary: the board's summary table (same row), not the full board (which it links)
    row = "| random:hubert_tiny | 1.21M | 5 | 50 Hz | none (random init) | – | 16.00 #1-2 | 80.00 #1-2 | n/a |"
    assert row in md and row in (out / "synth.md").read_text() and "(synth.md)" in md
    assert "## Run details" not in md
    assert "16.00 ± 25.41" not in md and "16.00 ± 25.41" in (out / "synth.md").read_text()


def test_empty_runs_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no finished runs were found under .*empty"):
        leaderboard.build(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(HarnessError, match="no finished runs were found under"):
        write_report(tmp_path / "missing", tmp_path / "out")


def test_real_corpus_published_scores_and_no_mixing(tmp_path):
    root = tmp_path / "runs"
    # docs/protocol.md section 4 HuBERT Base test metrics on a real corpus (one lr, one seed, no layer weights)
    hubert = {("pr", "per"): 5.41, ("asr", "wer"): 6.42, ("ks", "acc"): 96.30, ("qbe", "mtwv"): 0.0736,
              ("sid", "acc"): 81.42, ("asv", "eer"): 5.11, ("sd", "der"): 5.88, ("er", "acc"): 64.92,
              ("ic", "acc"): 98.34, ("sf", "f1"): 88.53, ("sf", "cer"): 25.20}
    for (task, metric), v in hubert.items():
        if (task, metric) == ("sf", "cer"):
            continue
        TASK_META.setdefault(task, (metric, metric not in ("per", "wer", "eer", "der")))
        extra = {"cer": 25.20} if task == "sf" else None
        write_run(root, "superb", "real", "hubert_base", task, 1e-4, 1337, v, v, 13, extra, lw=False)
    write_run(root, "synth", "synth", "fbank", "ks", 1e-3, 1, 40.0, 41.0, 1)
    for k in [k for k in TASK_META if k not in ("asr", "ks")]:
        del TASK_META[k]
    paths = leaderboard.build(root, tmp_path / "out")
    real = (tmp_path / "out" / "superb.md").read_text()
    assert "941.04" in real and "80.80" in real
    assert SYNTH_HEADER not in real and "41.00" not in real
    synth = (tmp_path / "out" / "synth.md").read_text()
    assert "hubert_base" not in synth and SYNTH_HEADER in synth
    assert not any("superb/" in p.as_posix() and p.suffix == ".png" for p in paths)


def test_seed_comparisons_say_which_way_it_falls():
    import pandas as pd

    rows = [  # SD: DER, lower is better; SS: SI-SDRi, higher is better
        {"task": "sd", "primary_metric": "der", "higher_is_better": False, "upstream": "wavlm_tiny-it1",
         "n_seeds": 3, "test.der.mean": 20.0, "test.der.ci": 1.0},
        {"task": "sd", "primary_metric": "der", "higher_is_better": False, "upstream": "hubert_tiny-it1",
         "n_seeds": 3, "test.der.mean": 25.0, "test.der.ci": 1.5},
        {"task": "sd", "primary_metric": "der", "higher_is_better": False, "upstream": "fbank",
         "n_seeds": 1, "test.der.mean": 10.0, "test.der.ci": float("nan")},
        {"task": "ss", "primary_metric": "si_sdri", "higher_is_better": True, "upstream": "wavlm_tiny-it1",
         "n_seeds": 3, "test.si_sdri.mean": 1.0, "test.si_sdri.ci": 0.5},
        {"task": "ss", "primary_metric": "si_sdri", "higher_is_better": True, "upstream": "hubert_tiny-it1",
         "n_seeds": 3, "test.si_sdri.mean": 1.2, "test.si_sdri.ci": 0.4},
    ]
    md = seed_comparisons(pd.DataFrame(rows))
    lines = md.splitlines()
    assert len(lines) == 4  # header, rule, one pair per task; fbank (1 seed) is left out
    assert "fbank" not in md
    sd = next(x for x in lines if x.startswith("| sd"))
    assert "wavlm_tiny-it1 better beyond the intervals" in sd
    ss = next(x for x in lines if x.startswith("| ss"))
    assert "within the intervals (hubert_tiny-it1 ahead by 0.2)" in ss
    assert seed_comparisons(pd.DataFrame(rows[2:3])) == ""


# ---------------------------------------------------------------- what a researcher reads


def _lines(md, start):
    """Rows of the first table after heading `start`, as {first cell: [cells]}."""
    part = md[md.index(start):]
    table = part.split("\n\n")[1]
    return {ln.strip("|").split("|")[0].strip(): [c.strip() for c in ln.strip("|").split("|")]
            for ln in table.splitlines()[2:]}


def test_one_seed_bare_mean_flags_and_details(tmp_path):
    """One seed: the bare mean, no "±"; a transcription probe whose test output is near-empty, one that
    learned nothing and one with NaN steps are flagged on their rows; the details section keys runs
    by task and upstream."""
    root = tmp_path / "runs"
    near_empty = {"test_output_tokens": {"u1": [0, 40], "u2": [3, 20]}}  # 3 of 60 reference tokens
    healthy = {"test_output_tokens": {"u1": [38, 40], "u2": [21, 20]}}
    write_run(root, "synth", "synth", "fbank", "asr", 1e-3, 1, 50.0, 52.0, 1, extra=healthy)
    write_run(root, "synth", "synth", "random:hubert_tiny", "asr", 1e-3, 1, 97.0, 96.0, 5, extra=near_empty)
    write_run(root, "synth", "synth", "fbank", "ks", 1e-3, 1, 40.0, 41.0, 1, learned_nothing=True)
    for seed, steps in ((1, 0), (2, 3)):
        write_run(root, "synth", "synth", "random:hubert_tiny", "ks", 1e-3, seed, 60.0, 61.0, 5, nan_steps=steps)
    leaderboard.build(root, tmp_path / "out")
    md = (tmp_path / "out" / "synth.md").read_text()
    asr = _lines(md, "### Task asr")
    assert asr["fbank"][1] == "52.00" and "±" not in " ".join(asr["fbank"])
    assert asr["random:hubert_tiny"][1] == "96.00 ⚠ near-empty output (1/1 seeds; output/reference tokens 0.05)"
    ks = _lines(md, "### Task ks")
    assert ks["fbank"][1] == "41.00 ⚠ learned nothing (1/1 seeds)"
    assert ks["random:hubert_tiny"][1] == "61.00 ± 0.00 ⚠ NaN (1/2 seeds)"  # two seeds: an interval
    assert FLAG_LEGEND in md
    summary = _lines(md, "### Summary")
    assert summary["random:hubert_tiny"][6:8] == ["96.00 #2 ⚠", "61.00 #1 ⚠"]
    assert summary["fbank"][6:8] == ["52.00 #1", "41.00 #2 ⚠"]
    # no run id, hash, sha or version in a task table; all of them in the details, keyed by task and upstream
    for head in ("run id", "config hash", "git sha", "torch", "machine"):
        assert head not in md[md.index("### Task asr"):md.index("## Run details")].split("\n\n")[1].splitlines()[0]
    details = md[md.index("## Run details"):]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in details.splitlines() if ln.startswith("| ks |")]
    assert rows[1][:5] == ["ks", "random:hubert_tiny", "0.001", "1, 2",
                           "random-hubert_tiny-ks-lr0.001-s1, random-hubert_tiny-ks-lr0.001-s2"]
    assert rows[1][7] == "harness 0.1.0, python 3.12, torch 2.11.0, torchaudio 2.11.0"


def test_task_ranks_on_a_hand_made_board():
    import pandas as pd

    rows = [("a", "asr", "wer", False, 10.0), ("b", "asr", "wer", False, 30.0), ("c", "asr", "wer", False, 10.0),
            ("d", "asr", "wer", False, float("nan")),
            ("a", "ks", "acc", True, 50.0), ("b", "ks", "acc", True, 90.0), ("c", "ks", "acc", True, 70.0)]
    b = pd.DataFrame([{"upstream": u, "task": t, "primary_metric": m, "higher_is_better": h, f"test.{m}.mean": v}
                      for u, t, m, h, v in rows])
    # equal means without intervals share the range 1-2; distinct means are ordered
    assert task_ranks(b) == {("a", "asr"): (1, 2), ("c", "asr"): (1, 2), ("b", "asr"): (3, 3),
                                         ("b", "ks"): (1, 1), ("c", "ks"): (2, 2), ("a", "ks"): (3, 3)}
    # overlapping 95 % intervals share ranks: b (90 ± 15) and c (70 ± 10) overlap, a (50 ± 5) is
    # beaten beyond the intervals by b only (c's 60..80 and a's 45..55 do not overlap either)
    b["test.acc.ci"] = [math.nan] * 4 + [5.0, 15.0, 10.0]
    got = task_ranks(b)
    assert (got[("b", "ks")], got[("c", "ks")], got[("a", "ks")]) == ((1, 2), (1, 2), (3, 3))
    b.loc[b["upstream"] == "c", "test.acc.ci"] = 12.0  # c: 58..82
    b.loc[b["upstream"] == "a", "test.acc.ci"] = 9.0  # a: 41..59 overlaps c, not b (75..105)
    got = task_ranks(b)
    assert (got[("b", "ks")], got[("c", "ks")], got[("a", "ks")]) == ((1, 2), (1, 3), (2, 3))
    assert [fmt_rank(got[("b", "ks")]), fmt_rank(got[("b", "asr")])] == ["#1-2", "#3"]


def test_summary_shows_the_pretraining_an_export_recorded(tmp_path):
    """An export's upstream.json pre-training record reaches result.json through
    catalog.upstream_facts and the summary through the run folder alone."""
    from harness.catalog import upstream_facts
    from upstreams.base import export_encoder, get_family, load_exported

    fam = get_family("hubert")
    record = {"corpus": "data/synth/small", "utterances": 120, "hours": 0.25, "updates": 2000,
              "recipe": "hubert_tiny", "iteration": 2, "objective": "masked_prediction"}
    folder = export_encoder(fam.random_encoder(fam.preset("tiny")), "hubert", tmp_path / "up", "hubert_tiny-it2",
                            pretraining=record)
    facts = upstream_facts(load_exported(folder))
    assert facts["pretraining"] == record and facts["layers"] == 5 and facts["frame_rate_hz"] == 50.0
    assert facts["params"] == FACTS["random:hubert_tiny"]["params"]
    root = tmp_path / "runs"
    write_run(root, "synth", "synth", "hubert_tiny-it2", "ks", 1e-3, 1, 60.0, 61.0, 5, upstream_facts=facts)
    write_run(root, "synth", "synth", "fbank", "ks", 1e-3, 1, 40.0, 41.0, 1)
    leaderboard.build(root, tmp_path / "out")
    row = _lines((tmp_path / "out" / "synth.md").read_text(), "### Summary")["hubert_tiny-it2"]
    assert row[1:7] == ["1.21M", "5", "50 Hz", "data/synth/small (0.25 h, 120 utts)", "2000", "61.00 #1"]
    fusion = {"members": [record, None]}
    assert upstream_cells({"params": 5, "layers": 5, "frame_rate_hz": 50.0, "pretraining": fusion})[3:] \
        == ["data/synth/small (0.25 h, 120 utts) + –", "2000 + –"]


def test_transcription_output_lengths():
    """probe.output_tokens: per test utterance, the output's and the reference's tokens (characters
    without spaces for character-level tasks, symbols otherwise); None for other tasks."""
    from types import SimpleNamespace

    from harness.probe import output_tokens

    chars = SimpleNamespace(level="sequence", char_level=True)
    assert output_tokens(chars, {"b": "", "a": "HI YOU"}, {"a": "HELLO YOU", "b": "NO"}) == {"a": [5, 8], "b": [0, 2]}
    phones = SimpleNamespace(level="sequence", char_level=False)
    assert output_tokens(phones, {"a": "ah b"}, {"a": "ah b k"}) == {"a": [2, 3]}
    assert output_tokens(SimpleNamespace(level="utterance"), {"a": "x"}, {"a": "x"}) is None
    assert output_ratio({"a": [5, 8], "b": [0, 2]}) == pytest.approx(0.5)


def test_heatmap_families_share_one_colour_scale(tmp_path, monkeypatch):
    """Every task heatmap of a board gets the same vmin / vmax (plots.family_scale over all of
    them), so do the upstream heatmaps; single-layer rows are left out; a dot marks each weight
    above its row's uniform 1/(L+1)."""
    import numpy as np

    from harness import plots

    seen = []
    draw = plots.heatmap
    monkeypatch.setattr(plots, "heatmap", lambda m, labels, title, path, axis, vmin, vmax:
                        seen.append((path.name, vmin, vmax, m)) or draw(m, labels, title, path, axis, vmin, vmax))
    weights = {("a", "asr"): {"softmax": [0.1, 0.2, 0.7], "corrected": [0.2, 0.3, 0.5]},
               ("a", "ks"): {"softmax": [0.3, 0.3, 0.4], "corrected": [0.25, 0.25, 0.5]},
               ("b", "asr"): {"softmax": [0.05, 0.05, 0.1, 0.8, 0.0], "corrected": [0.2] * 5},
               ("fbank", "asr"): {"softmax": [1.0], "corrected": [1.0]}}
    drawn = plots.layer_heatmaps(weights, tmp_path)
    assert set(drawn) == {"task:asr", "task:ks", "upstream:a", "upstream:b"}
    task = [(v0, v1) for name, v0, v1, _ in seen if name.startswith("heatmap_task_")]
    ups = [(v0, v1) for name, v0, v1, _ in seen if name.startswith("heatmap_upstream_")]
    assert task == [(0.0, pytest.approx(80.0))] * 4  # b's 80% on layer 3
    assert ups == [(0.0, pytest.approx(80.0))] * 4
    assert set(task) == {plots.family_scale(m for name, *_, m in seen if name.startswith("heatmap_task_"))}
    only_a = plots.layer_heatmaps({k: v for k, v in weights.items() if k[0] == "a"}, tmp_path / "a")
    assert only_a and seen[-1][2] == pytest.approx(70.0)  # the family's own maximum: a / asr's 70%
    asr = next(m for name, *_, m in seen if name == "heatmap_task_asr_raw.png")
    assert asr.shape == (2, 5)  # rows a and b; fbank's single layer is not a row
    assert plots.above_uniform(asr).tolist() == [[False, False, True, False, False],
                                                 [False, False, False, True, False]]
    assert np.isnan(asr[0, 3:]).all()


def test_pretraining_provenance_counts_continued_updates(tmp_path):
    """What an iteration's export records: the corpus pretrain was given, the utterances and hours
    trained on, and the updates behind the weights (a continued iteration adds its predecessor's;
    one trained from scratch does not)."""
    import json

    from harness.pretrain.batches import Item
    from harness.pretrain.recipe import DataConfig, IterationConfig, Recipe, TrainConfig
    from harness.pretrain.export import provenance

    its = (IterationConfig(train=TrainConfig(steps=100)),
           IterationConfig(train=TrainConfig(steps=50), continue_previous=True),
           IterationConfig(train=TrainConfig(steps=30)))
    rec = Recipe(name="r", data=DataConfig(), iterations=its)
    (tmp_path / "recipe.json").write_text(json.dumps({"corpus": "data/synth/small"}))
    kept = [Item(id=f"u{i}", path="a.wav", offset=0.0, num_samples=16000 * 1800) for i in range(2)]  # 2 x 30 min
    p = [provenance(rec, k, kept, tmp_path) for k in (1, 2, 3)]
    assert [x["updates"] for x in p] == [100, 150, 30]
    assert p[1] == {"corpus": "data/synth/small", "utterances": 2, "hours": 1.0, "updates": 150, "recipe": "r",
                    "iteration": 2, "objective": "masked_prediction", "step": 50, "train_seconds": None}
    # a step export (--export-every) of the continued iteration: its step, plus the predecessor's updates
    mid = provenance(rec, 2, kept, tmp_path, step=20, train_seconds=3.25)
    assert (mid["updates"], mid["step"], mid["train_seconds"]) == (120, 20, 3.25)


def test_departures_and_substitute_phones_are_marked_next_to_the_number(tmp_path):
    import json

    root = tmp_path / "runs"
    TASK_META.setdefault("pr", ("per", False))
    for kind, corpus in (("real", "librispeech"), ("synth", "synth")):
        d = write_run(root, corpus, kind, "fbank", "pr", 1e-3, 1, 40.0, 41.0, 1)
        r = json.loads((d / "result.json").read_text())
        r["departures"] = ["crops from cached features"]
        r["extra"] = {"phones_source": "espeak"}
        (d / "result.json").write_text(json.dumps(r))
    out = tmp_path / "b"
    leaderboard.build(root, out)
    real, synth = (out / "librispeech.md").read_text(), (out / "synth.md").read_text()
    row = next(ln for ln in real.split("### Task pr")[1].splitlines() if ln.startswith("| fbank |"))
    assert "41.00 †" in row and "substitute phones (1/1 seeds: espeak" in row
    assert "† Departure from the reference recipe kept by this harness: crops from cached features." in real
    # synth's phones are espeak's by construction: no substitute mark there, the departure still shown
    assert "substitute phones (" not in synth and "41.00 †" in synth


def _pre(step, seconds):
    """upstream_facts of a hubert export after `step` updates of run micro's iteration 1."""
    return {**FACTS["random:hubert_tiny"], "source": f"runs/pre/iter1/exports/step{step:06d}",
            "pretraining": {"corpus": "synth", "utterances": 16, "hours": 0.01, "updates": step, "recipe": "micro",
                            "iteration": 1, "objective": "masked_prediction", "step": step,
                            "train_seconds": seconds}}


def test_learning_curve_section(tmp_path):
    root = tmp_path / "runs"
    # ks accuracy of the exports after 5, 10 and 12 (final) updates, two seeds each; fbank and mfcc lines
    points = {"micro-it1-step000005": (5, 60.0, [40.0, 42.0]), "micro-it1-step000010": (10, 120.0, [60.0, 64.0]),
              "micro-it1": (12, 150.0, [70.0, 74.0])}
    for up, (step, secs, tests) in points.items():
        for seed, t in enumerate(tests, start=1):
            write_run(root, "synth", "synth", up, "ks", 1e-3, seed, t, t, 5, upstream_facts=_pre(step, secs))
    for up, tests in (("fbank", [50.0, 52.0]), ("mfcc", [55.0, 55.0])):
        for seed, t in enumerate(tests, start=1):
            write_run(root, "synth", "synth", up, "ks", 1e-3, seed, t, t, 1,
                      upstream_facts={**FACTS["fbank"], "family": up})
    best = leaderboard.select_best(leaderboard.collect(root))
    curves = learning_curve_points(best)
    assert list(curves) == ["micro-it1"]
    pts = curves["micro-it1"]
    assert pts["updates"].tolist() == [5, 10, 12]
    assert pts["mean"].tolist() == pytest.approx([41.0, 62.0, 72.0])
    assert pts["minutes"].tolist() == pytest.approx([1.0, 2.0, 2.5])
    out = tmp_path / "lb"
    paths = leaderboard.build(root, out)
    png = out / "synth" / "quick" / "curve_micro-it1.png"
    assert png in paths
    img = mpimg.imread(png)
    assert img.shape[0] > 200 and img[..., :3].std() > 0.05
    md = (out / "synth.md").read_text()
    sec = md[md.index("### Learning curves"):]
    sec = sec[: sec.index("\n### ")] if "\n### " in sec else sec
    assert "![micro-it1 learning curve](synth/quick/curve_micro-it1.png)" in sec
    rows = [ln for ln in sec.splitlines() if ln.startswith("| ks |")]
    assert [ln.split(" | ")[2:6] for ln in rows] == [
        ["5", "1.00", "micro-it1-step000005", "41.00 ± 12.71"],
        ["10", "2.00", "micro-it1-step000010", "62.00 ± 25.41"],
        ["12", "2.50", "micro-it1", "72.00 ± 25.41"]]
    assert all(ln.endswith("| 51.00 ± 12.71 | 55.00 ± 0.00 |") for ln in rows)  # fbank, mfcc (equal seeds)
    # the step exports are curve points, not rows of the summary or task tables; the run details keep them
    tables = md[: md.index("### Learning curves")]
    assert "| micro-it1 |" in tables and "step000005" not in tables and "step000010" not in tables
    assert "micro-it1-step000005" in md[md.index("## Run details"):]

    # one exported step per run (the final upstream alone) draws no curve; a stale PNG goes
    for d in root.rglob("result.json"):
        if "step0000" in str(d):
            d.unlink()
    leaderboard.build(root, out)
    assert "Learning curves" not in (out / "synth.md").read_text()
    assert not png.exists()


def test_board_without_step_exports_has_no_learning_curves(runs, tmp_path):
    leaderboard.build(runs, tmp_path / "lb")
    assert "Learning curves" not in (tmp_path / "lb" / "synth.md").read_text()
    assert not list((tmp_path / "lb").rglob("curve_*.png"))


def test_pretraining_diagnostics_section(tmp_path):
    """The section reads the pre-training iteration's summary.json and curves.png under the runs
    root (only for upstreams on the board) and gives each probe's weighted mean layer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    root = tmp_path / "runs"
    for seed in (1, 2):
        write_run(root, "synth", "synth", "micro-it1", "ks", 1e-3, seed, 70.0, 70.0, 5,
                  upstream_facts=_pre(12, 150.0))
        write_run(root, "synth", "synth", "fbank", "ks", 1e-3, seed, 50.0, 50.0, 1)
    it1 = root / "pretrain" / "micro" / "iter1"
    stale = root / "pretrain" / "other" / "iter1"  # not on the board: left out
    for d, name in ((it1, "micro-it1"), (stale, "other-it1")):
        atomic_write_json(d / "summary.json", {
            "name": name, "iteration": 1, "k": 12, "features": {"source": "mfcc", "layer": None}, "continues": None,
            "label_quality": {"dev": {"pnmi": 0.4123, "phone_purity": 0.3, "clusters_used": 11, "usage_perplexity": 9.5}},
            "masked_acc": {"dev": 0.2, "majority_label": 0.1}, "unmasked_acc": {"dev": 0.5},
            "train": {"steps": 12, "train_seconds": 150.0, "audio_s_per_s": 40.0},
            "finished_at": "2026-01-01T00:00:00+00:00"})
    fig = plt.figure()
    fig.savefig(it1 / "curves.png")
    plt.close(fig)
    out = tmp_path / "lb"
    paths = leaderboard.build(root, out)
    assert out / "synth" / "quick" / "pretrain_micro-it1.png" in paths
    md = (out / "synth.md").read_text()
    sec = md[md.index("### Pre-training diagnostics"):]
    row = next(ln for ln in sec.splitlines() if ln.startswith("| micro-it1 | MFCC"))
    assert row.split(" | ")[1:13] == ["MFCC", "12", "0.412", "0.300", "11/12", "9.5", "0.200", "0.100", "0.500",
                                      "12", "2.5", "40.0"]
    assert "[curves](synth/quick/pretrain_micro-it1.png)" in row and "other-it1" not in sec
    # ks weights w_i = (5 - i) / 15 over layers 0..4: mean layer = sum(i * w_i) = 20 / 15
    lrow = next(ln for ln in sec.splitlines() if ln.startswith("| micro-it1 | 4 |"))
    assert lrow.endswith("| 1.33 |")


def test_task_sections_say_how_many_updates_the_probes_trained(tmp_path):
    """Each task section gives its probes' training updates from the runs' timing: one number,
    or the range when runs differ; nothing when no run recorded it."""
    root = tmp_path / "runs"
    for seed, steps in ((1, 2000), (2, 2000)):
        write_run(root, "synth", "synth", "fbank", "asr", 1e-3, seed, 60.0, 61.0, 1,
                  timing={"train_s": 1.0, "steps": steps})
    for seed, steps in ((1, 400), (2, 500)):
        write_run(root, "synth", "synth", "fbank", "ks", 1e-3, seed, 90.0, 91.0, 1,
                  timing={"train_s": 1.0, "steps": steps})
    md = (tmp_path / "out" / "synth.md").read_text() if leaderboard.build(root, tmp_path / "out") else ""
    asr = md[md.index("### Task asr"):md.index("### Task ks")]
    ks = md[md.index("### Task ks"):]
    assert "Probe updates: 2000 per run." in asr
    assert "Probe updates: 400-500 per run (they differ" in ks
    assert probe_updates_line(pd.DataFrame({"task": ["asr"], "probe_steps": [[]]})) == ""


def test_task_sections_say_which_corpus_size_the_probes_used(tmp_path):
    """A task probed on a bigger synth size than the others says so; a task whose upstreams were
    probed on different sizes is flagged; a run without a size (a real corpus) adds no line."""
    root = tmp_path / "runs"
    for up in ("fbank", "mfcc"):
        write_run(root, "synth", "synth", up, "asr", 1e-3, 1, 60.0, 61.0, 1, corpus_size="medium")
    write_run(root, "synth", "synth", "fbank", "ks", 1e-3, 1, 90.0, 91.0, 1, corpus_size="small")
    write_run(root, "synth", "synth", "mfcc", "ks", 1e-3, 1, 90.0, 91.0, 1, corpus_size="medium")
    write_run(root, "synth", "synth", "fbank", "sid", 1e-3, 1, 90.0, 91.0, 1, primary_metric="acc", higher_is_better=True)
    leaderboard.build(root, tmp_path / "out")
    md = (tmp_path / "out" / "synth.md").read_text()
    asr = md[md.index("### Task asr"):md.index("### Task ks")]
    ks = md[md.index("### Task ks"):md.index("### Task sid")]
    sid = md[md.index("### Task sid"):md.index("## Run details")]
    assert "Probe data: synth medium (its train, dev and test splits)." in asr
    assert "Probe data: synth medium, small: these upstreams were probed on different corpus sizes" in ks
    assert "Probe data" not in sid


def test_learning_curve_labels_skip_points_that_would_overlap():
    """The iteration-2 curve's exports every 2,000 updates plus the final 12,500: the 12,000
    export is 5 % of the span from the final point (its "19.4 min" printed over the final's
    "20.2 min") and loses its label; the final keeps its own."""
    from harness import plots

    xs = [6500, 8500, 10500, 12500, 14500, 16500, 17000]
    assert plots.spaced_labels(xs) == [0, 1, 2, 3, 4, 6]
    assert plots.spaced_labels(xs, min_gap=0.0) == list(range(7))
    assert plots.spaced_labels([3.0, 1.0, 2.0], min_gap=0.6) == [0, 1]  # unordered x: from the largest back
    assert plots.spaced_labels([]) == []


def test_the_page_names_the_commit_its_runs_were_made_at(tmp_path):
    from harness.board.page import commit_line

    root = tmp_path / "runs"
    write_run(root, "synth", "synth", "random:hubert_tiny", "ks", 1e-2, 1, 80.0, 81.0, 5)
    write_run(root, "synth", "synth", "random:hubert_tiny", "ks", 1e-2, 2, 80.0, 82.0, 5)
    leaderboard.build(root, tmp_path / "boards")
    assert "Code: all 2 runs were made at git commit `abc123def456`." in (tmp_path / "boards" / "synth.md").read_text()
    two = commit_line(pd.DataFrame({"git_sha": ["b", "a", "b"]}))
    assert two.startswith("Code: the runs were made at 2 git commits: `a` (1), `b` (2);")


def test_a_pr_row_with_a_ctc_floor_says_so_under_its_table(tmp_path, monkeypatch):
    monkeypatch.setitem(TASK_META, "pr", ("per", False))  # write_run knows asr and ks only
    root = tmp_path / "runs"
    floor = {"per": 12.5, "utterances": 7, "of": 40, "forced_deletions": 30, "unseen_tokens": 0, "emit_rate_hz": 12.5}
    write_run(root, "synth", "synth", "cvhubert_tiny_80ms-it2", "pr", 1e-2, 1, 70.0, 71.0, 5, extra={"ctc_floor_test": floor})
    write_run(root, "synth", "synth", "cvhubert_tiny_20ms-it2", "pr", 1e-2, 1, 60.0, 61.0, 5)
    leaderboard.build(root, tmp_path / "boards")
    page = (tmp_path / "boards" / "synth.md").read_text()
    assert ("cvhubert_tiny_80ms-it2: with one label per frame at 12.5 Hz its head cannot reach a test per below 12.50 "
            "(7 of 40 test utterances have more phones than it can emit: 30 forced deletions)") in page
    assert "cvhubert_tiny_20ms-it2: with one label" not in page
