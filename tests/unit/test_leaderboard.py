"""Leaderboards, heatmaps and the CI report on fake run folders."""

import re
import zlib

import matplotlib.image as mpimg
import pytest

from harness import leaderboard
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


def weights(n, task):
    w = [float(i + 1) for i in range(n)] if task == "asr" else [float(n - i) for i in range(n)]
    s = sum(w)
    return [x / s for x in w]


def write_run(root, corpus, kind, upstream, task, lr, seed, dev, test, n_layers, extra_test=None, lw=True):
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
        "extra": {}, "timing": {"features_s": 1.0, "train_s": 2.0, "total_s": 3.0, "steps": 10}, "best_step": 10,
        "finished_at": "2025-01-01T00:00:00+00:00",
    }
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
    assert leaderboard.SYNTH_HEADER in md
    assert "16.00 ± 25.41" in md  # hubert asr test WER at lr 1e-4
    assert "80.00 ± 38.12" in md  # hubert ks test acc at lr 1e-4: mean 80, s = 4.243
    assert "54.00 ± 25.41" in md  # fbank asr at lr 1e-3
    assert "8.00 ± 12.71" in md  # hubert asr test CER (other metric)
    assert "random-hubert_tiny-asr-lr0.0001-s1, random-hubert_tiny-asr-lr0.0001-s2" in md
    assert "lr0.01" not in md and "unfin01" not in md
    # summary row: synth score fbank 0, hubert 1000 (best on both tasks)
    row = next(line for line in md.splitlines() if line.startswith("| random:hubert_tiny | 16.00 |"))
    assert row.endswith("| 1000.00 |")
    assert next(line for line in md.splitlines() if line.startswith("| fbank | 54.00 |")).endswith("| 0.00 |")
    pngs = [p for p in paths if p.suffix == ".png"]
    names = {p.name for p in pngs}
    for kind in ("raw", "corrected"):
        assert {f"heatmap_upstream_fbank_{kind}.png", f"heatmap_upstream_random-hubert_tiny_{kind}.png",
                f"heatmap_task_asr_{kind}.png", f"heatmap_task_ks_{kind}.png"} <= names
    assert len(pngs) == 8
    for p in pngs:
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] > 100 and img.shape[1] > 100
    # wider upstream -> wider task heatmap than the 1-layer fbank heatmap
    w_task = mpimg.imread(out / "synth" / "quick" / "heatmap_task_asr_raw.png").shape[1]
    w_fbank = mpimg.imread(out / "synth" / "quick" / "heatmap_upstream_fbank_raw.png").shape[1]
    assert w_task > w_fbank


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
    # a one-screen summary: the summary table, not the full board (which it links)
    assert "| random:hubert_tiny | 16.00 | 80.00 | 1000.00 |" in md and "(synth.md)" in md
    assert "16.00 ± 25.41" not in md and "16.00 ± 25.41" in (out / "synth.md").read_text()


def test_empty_runs_root(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="no finished runs were found under .*empty"):
        leaderboard.build(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(HarnessError, match="no finished runs were found under"):
        write_report(tmp_path / "missing", tmp_path / "out")


def test_real_corpus_published_scores_and_no_mixing(tmp_path):
    root = tmp_path / "runs"
    # PROTOCOL section 4 HuBERT Base test metrics on a real corpus (one lr, one seed, no layer weights)
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
    assert leaderboard.SYNTH_HEADER not in real and "41.00" not in real
    synth = (tmp_path / "out" / "synth.md").read_text()
    assert "hubert_base" not in synth and leaderboard.SYNTH_HEADER in synth
    assert not any("superb/" in p.as_posix() and p.suffix == ".png" for p in paths)


def test_seed_comparisons_say_which_way_it_falls():
    import pandas as pd

    from harness.leaderboard import seed_comparisons

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
