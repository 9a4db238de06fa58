"""ML-SUPERB score (hand-computed values), the ML-SUPERB leaderboard sections, per-language CER
tables, language x layer heatmaps, and SD / SS in the SUPERB summary, on fake run folders."""

from __future__ import annotations

import math
import re
import statistics
import zlib

import matplotlib.image as mpimg
import pandas as pd
import pytest

from harness import leaderboard
from harness.board.mlsuperb_section import MLSUPERB_REAL_HEADER, MLSUPERB_SYNTH_HEADER, is_mlsuperb_task
from harness.board.page import SYNTH_HEADER
from harness.errors import HarnessError
from harness.report import write_report
from harness.results import atomic_write_json, run_dir, slug
from harness.scores import mlsuperb_metrics, mlsuperb_score

A, B = "random:hubert_tiny", "mfcc"  # A: 5 layers, B and fbank: 1 layer
LAYERS = {"fbank": 1, A: 5, B: 1}

# test metrics per (upstream, task); the 7 ML-SUPERB metrics of the 10-min budget, by hand:
#   mono cer          fbank 40, A 20, B 30 -> best 20:  A 1000, B 500
#   ml cer_normal     fbank 50, A 30, B 10 -> best 10:  A 500,  B 1000
#   ml cer_fewshot    fbank 80, A 60, B 70 -> best 60:  A 1000, B 500   => multi A 750, B 750
#   lid acc           fbank 20, A 60, B 100 -> best 100: A 500, B 1000
#   asr_lid lid_acc   fbank 10, A 90, B 50 -> best 90:  A 1000, B 500
#   asr_lid cer_norm  fbank 60, A 30, B 45 -> best 30:  A 1000, B 500
#   asr_lid cer_few   fbank 90, A 70, B 50 -> best 50:  A 500,  B 1000  => ASR+LID A 833.33, B 666.67
#   score A = (1000 + 750 + 500 + 833.33) / 4 = 770.83;  B = (500 + 750 + 1000 + 666.67) / 4 = 729.17
TEN = {
    "fbank": {"mono_asr_10min": {"cer": 40.0}, "ml_asr_10min": {"cer": 55.0, "cer_normal": 50.0, "cer_fewshot": 80.0},
              "lid_ctc_10min": {"acc": 20.0, "macro_acc": 18.0},
              "asr_lid_10min": {"lid_acc": 10.0, "cer_normal": 60.0, "cer_fewshot": 90.0}},
    A: {"mono_asr_10min": {"cer": 20.0}, "ml_asr_10min": {"cer": 35.0, "cer_normal": 30.0, "cer_fewshot": 60.0},
        "lid_ctc_10min": {"acc": 60.0, "macro_acc": 55.0},
        "asr_lid_10min": {"lid_acc": 90.0, "cer_normal": 30.0, "cer_fewshot": 70.0}},
    B: {"mono_asr_10min": {"cer": 30.0}, "ml_asr_10min": {"cer": 20.0, "cer_normal": 10.0, "cer_fewshot": 70.0},
        "lid_ctc_10min": {"acc": 100.0, "macro_acc": 100.0},
        "asr_lid_10min": {"lid_acc": 50.0, "cer_normal": 45.0, "cer_fewshot": 50.0}},
}
PRIMARY = {"mono_asr": ("cer", False), "ml_asr": ("cer_normal", False), "lid_ctc": ("acc", True),
           "asr_lid": ("lid_acc", True), "sd": ("der", False), "ss": ("si_sdri", True)}
A_ML_LANG_CER = {"de": 10.0, "en": 5.0, "es": 80.0, "fr": 40.0, "it": 20.0, "sv": 90.0, "tr": 60.0}
# lid_ctc: per-language accuracy, and the tag sequence's token error rate (insertions count: up to 230%)
A_LID_LANG_ACC = {"de": 80.0, "en": 40.0, "fr": 60.0}
A_LID_LANG_TAG_ERR = {"de": 230.0, "en": 120.0, "fr": 60.0}
B_ML_LANG_CER = {"de": 12.0, "en": 8.0, "es": 30.0, "fr": 14.0, "it": 16.0, "sv": 20.0}  # no "tr"


def long_table(metrics):
    rows = [(u, t, m, v) for u, tasks in metrics.items() for t, ms in tasks.items() for m, v in ms.items()]
    return pd.DataFrame(rows, columns=["upstream", "task", "metric", "value"])


# ---------------------------------------------------------------- score


def test_mlsuperb_metric_set():
    g = mlsuperb_metrics("1h")
    assert g == {"mono": [("mono_asr_1h", "cer")], "multi": [("ml_asr_1h", "cer_normal"), ("ml_asr_1h", "cer_fewshot")],
                 "lid": [("lid_ctc_1h", "acc")],
                 "asr_lid": [("asr_lid_1h", "lid_acc"), ("asr_lid_1h", "cer_normal"), ("asr_lid_1h", "cer_fewshot")]}
    assert sum(len(v) for v in g.values()) == 7
    with pytest.raises(HarnessError, match="budget '2h'"):
        mlsuperb_metrics("2h")


def test_mlsuperb_score_by_hand():
    table = long_table(TEN)
    # other budgets and tasks in the table are ignored
    extra = pd.DataFrame([("fbank", "mono_asr_1h", "cer", 1.0), (B, "mono_asr_1h", "cer", 99.0),
                          (A, "asr", "wer", 3.0)], columns=table.columns)
    s = mlsuperb_score(pd.concat([table, extra]), "10min")
    assert s["fbank"] == pytest.approx(0.0)
    assert s[A] == pytest.approx((1000 + 750 + 500 + 2500 / 3) / 4)  # 770.83
    assert s[B] == pytest.approx((500 + 750 + 1000 + 2000 / 3) / 4)  # 729.17
    assert s.tasks_used == ["mono", "multi", "lid", "asr_lid"] and not s.tasks_skipped
    assert len(s.metrics_used) == 7
    assert s.task_scores["multi"] == {"fbank": 0.0, A: pytest.approx(750.0), B: pytest.approx(750.0)}
    assert s.task_scores["asr_lid"][A] == pytest.approx(2500 / 3)
    # a CER worse than fbank's scores below zero (lower is better): C's mono 60 -> -1000; C lacks the rest
    c = pd.concat([table, pd.DataFrame([("C", "mono_asr_10min", "cer", 60.0)], columns=table.columns)])
    s2 = mlsuperb_score(c, "10min")
    assert math.isnan(s2["C"]) and s2.task_scores["mono"]["C"] == pytest.approx(-1000.0)
    assert s2[A] == pytest.approx(s[A])


def test_mlsuperb_score_missing_task():
    table = long_table(TEN)
    no_lid = table[table["task"] != "lid_ctc_10min"]
    with pytest.raises(HarnessError, match=r"lid_ctc_10min acc: no result on the board"):
        mlsuperb_score(no_lid, "10min")
    s = mlsuperb_score(no_lid, "10min", require_all=False)
    assert s.tasks_used == ["mono", "multi", "asr_lid"] and "lid" in s.tasks_skipped
    assert s[A] == pytest.approx((1000 + 750 + 2500 / 3) / 3)
    no_fbank = table[~((table["upstream"] == "fbank") & (table["metric"] == "cer_fewshot"))]
    with pytest.raises(HarnessError, match=r"ml_asr_10min cer_fewshot: no fbank result"):
        mlsuperb_score(no_fbank, "10min")
    s3 = mlsuperb_score(no_fbank, "10min", require_all=False)  # multi: cer_normal only; asr_lid: 2 of 3
    assert s3.task_scores["multi"][A] == pytest.approx(500.0)
    assert s3.task_scores["asr_lid"][B] == pytest.approx(500.0)
    assert set(s3.tasks_skipped) == {"multi (partly)", "asr_lid (partly)"}


# ---------------------------------------------------------------- leaderboard on fake run folders


def write_run(root, upstream, task, metrics, seed=1, lr=1e-3, extra=None, corpus="synth", kind="real"):
    # kind "real": these fake runs test the board-relative ML-SUPERB score of real corpora (the
    # absolute score of synth boards is tested in test_board_instrument.py)
    base = task.rsplit("_", 1)[0] if is_mlsuperb_task(task) else task
    primary, hib = PRIMARY[base]
    h = f"h{zlib.crc32(repr((upstream, task)).encode()):08x}"  # lr and seed are not in a config hash
    d = run_dir(root, corpus, upstream, task, lr, seed, h)
    n = LAYERS[upstream]
    w = [1.0 / n] * n
    atomic_write_json(d / "config.json", {"lr": lr, "seed": seed})
    atomic_write_json(d / "result.json", {
        "run_id": f"{slug(upstream)}/{task}/{d.name}", "corpus": corpus, "corpus_kind": kind, "corpus_size": "tiny",
        "upstream": upstream, "upstream_family": upstream.split(":")[-1], "num_layers": n, "task": task,
        "profile": "quick", "lr": lr, "seed": seed, "config_hash": h, "git_sha": "abc123",
        "versions": {"torch": "2.11.0"}, "primary_metric": primary, "higher_is_better": hib,
        "metrics": {"dev": dict(metrics), "test": dict(metrics)}, "extra": extra or {},
        "layer_weights": {"softmax": w, "layer_norm": [1.0] * n, "corrected": w}, "best_step": 10,
        "history": [], "timing": {"steps": 10}, "finished_at": "2026-01-01T00:00:00+00:00",
    })


def lang_lw(n, seed):
    out = {}
    for i, lg in enumerate(("de", "en", "fr")):
        w = [float(1 + (j + i + seed) % n) for j in range(n)]
        out[lg] = [x / sum(w) for x in w]
    return out


@pytest.fixture()
def runs(tmp_path):
    root = tmp_path / "runs"
    for up, tasks in TEN.items():
        for task, m in tasks.items():
            extra = {}
            if task == "ml_asr_10min" and up in (A, B):
                extra["per_language_cer"] = A_ML_LANG_CER if up == A else B_ML_LANG_CER
            if task == "lid_ctc_10min" and up == A:
                extra.update(per_language_acc=A_LID_LANG_ACC, per_language_cer=A_LID_LANG_TAG_ERR)
            if task == "mono_asr_10min":
                extra["per_language_cer"] = {"de": m["cer"] - 5, "en": m["cer"] + 5}
                extra["per_language_layer_weights"] = lang_lw(LAYERS[up], 0)
            if task == "mono_asr_10min" and up == A:  # two seeds: test cer 18 / 22 -> mean 20
                for seed, cer in ((1, 18.0), (2, 22.0)):
                    ex = {"per_language_cer": {"de": cer - 5, "en": cer + 5},
                          "per_language_layer_weights": lang_lw(LAYERS[up], seed)}
                    write_run(root, up, task, {"cer": cer}, seed=seed, extra=ex)
                continue
            write_run(root, up, task, m, extra=extra)
    # a worse lr for A on lid_ctc (dev 10): must not be selected
    write_run(root, A, "lid_ctc_10min", {"acc": 10.0, "macro_acc": 9.0}, lr=1e-2)
    # 1h: only mono_asr (a partial score)
    write_run(root, "fbank", "mono_asr_1h", {"cer": 30.0})
    write_run(root, A, "mono_asr_1h", {"cer": 15.0}, extra={"per_language_layer_weights": lang_lw(5, 3)})
    # SUPERB tasks SD and SS
    write_run(root, "fbank", "sd", {"der": 20.0, "der_dev_setting": 21.0})
    write_run(root, A, "sd", {"der": 10.0, "der_dev_setting": 11.0})
    write_run(root, "fbank", "ss", {"si_sdri": 2.0, "si_sdr": 1.0})
    write_run(root, A, "ss", {"si_sdri": 6.0, "si_sdr": 5.0})
    return root


def _row(md: str, section: str, first_cell: str) -> list:
    """Cells of the table row starting with `first_cell` in the part of `md` after `section`."""
    part = md[md.index(section):]
    line = next(ln for ln in part.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_leaderboard_mlsuperb_sections(runs, tmp_path):
    out = tmp_path / "lb"
    paths = leaderboard.build(runs, out)
    md = (out / "synth.md").read_text()
    # SUPERB summary: SD and SS columns (no published-reference score: 2 of its 10 tasks); no ML-SUPERB task
    summary = md[md.index("### Summary"):md.index("### ML-SUPERB")]
    head = next(ln for ln in summary.splitlines() if ln.startswith("| upstream"))
    assert "sd der ↓" in head and "ss si_sdri ↑" in head and "mono_asr" not in head
    # upstream facts (only the layers are in these result.json files), then value #rank per task, the score
    assert _row(md, "### Summary", A)[1:] == ["–", "5", "–", "–", "–", "10.00 #1", "6.00 #1"]
    assert _row(md, "### Summary", "fbank")[1:] == ["–", "1", "–", "–", "–", "20.00 #2", "2.00 #2"]
    assert "Task ss (primary: si_sdri, higher is better; task version 1)" in md and "Task sd (primary: der, lower is better; task version 1)" in md

    # ML-SUPERB 10 min: the 7 metrics, 4 task scores and the score
    sec = "### ML-SUPERB (10min train budget)"
    assert MLSUPERB_REAL_HEADER in md
    part = md[md.index(sec):]
    head = next(ln for ln in part.splitlines() if ln.startswith("| upstream"))
    assert "mono_asr_10min cer ↓" in head and "asr_lid_10min lid_acc ↑" in head and head.endswith("| ML-SUPERB score |")
    # upstream facts (layers only in these runs), each metric with its rank among the three (A's two mono seeds
    # have a 95 % interval wide enough to allow any place: #1-3), the scores
    assert _row(md, sec, A)[1:] == ["–", "5", "–", "–", "–", "20.00 #1-3", "30.00 #2", "60.00 #1", "60.00 #2",
                                    "90.00 #1", "30.00 #1", "70.00 #2",
                                    "1000.00", "750.00", "500.00", "833.33", "770.83"]
    assert _row(md, sec, B)[-1] == "729.17" and _row(md, sec, "fbank")[-1] == "0.00"
    rows = [ln.split("|")[1].strip() for ln in part.split("####")[0].splitlines() if ln.startswith("| ")][1:]
    assert rows == [A, B, "fbank"]  # best score first
    # 1 h: mono only, marked partial
    sec1 = "### ML-SUPERB (1h train budget)"
    assert "ML-SUPERB score (partial: 1/4 tasks)" in md[md.index(sec1):]
    assert _row(md, sec1, A)[6] == "15.00 #1" and _row(md, sec1, A)[-1] == "1000.00"
    assert "Not in the score: lid: lid_ctc_1h acc: no result on the board." in md

    # per-language CER of ml_asr_10min: columns de en es fr it sv tr, then mean, worst-5 mean, worst 5, std, max-min
    pl = "#### Per-language CER: ml_asr_10min (test, %)"
    cells = _row(md, pl, A)
    vals = list(A_ML_LANG_CER.values())
    assert cells[1:8] == ["10.00", "5.00", "80.00", "40.00", "20.00", "90.00", "60.00"]
    assert cells[8] == f"{sum(vals) / 7:.2f}" == "43.57"
    assert cells[9] == "58.00"  # (90 + 80 + 60 + 40 + 20) / 5
    assert cells[10] == "sv, es, tr, fr, it"
    assert cells[11] == f"{statistics.pstdev(vals):.2f}" and cells[12] == "85.00"
    cb = _row(md, pl, B)
    assert cb[7] == "–" and cb[9] == f"{(30 + 20 + 16 + 14 + 12) / 5:.2f}" and cb[12] == "22.00"
    # mono_asr: A's two seeds averaged per language (de: 13/17 -> 15; en 23/27 -> 25); 2 languages: no worst-5
    mono = "#### Per-language CER: mono_asr_10min"
    assert _row(md, mono, A)[1:] == ["15.00", "25.00", "20.00", "5.00", "10.00"]  # de, en, mean, std, max−min
    mono_part = md[md.index(mono):].split("####")[1]
    assert "worst" not in mono_part.lower()

    # lid_ctc: a language decision, so its table is accuracy (A's tag error of 230% is not shown);
    # 3 languages: no worst-5 columns
    lid = "#### Per-language accuracy: lid_ctc_10min (test, %)"
    assert lid in md and "Per-language CER: lid_ctc" not in md
    assert _row(md, lid, A)[1:] == ["80.00", "40.00", "60.00", "60.00", f"{statistics.pstdev([80, 40, 60]):.2f}",
                                    "40.00"]  # de, en, fr, mean, std, max−min
    assert "230" not in md[md.index(lid):].split("####")[1] and "worst" not in md[md.index(lid):].split("####")[1]

    # languages x layers heatmaps: per (upstream, mono_asr task), linked, PNG on disk; fbank and mfcc
    # have one layer (nothing to weigh): none for them
    hdir = out / "synth" / "quick"
    expected = {f"heatmap_langs_{slug(A)}_{t}.png" for t in ("mono_asr_10min", "mono_asr_1h")}
    names = {p.name for p in paths if p.name.startswith("heatmap_langs_")}
    assert names == expected
    assert not list(hdir.glob("heatmap_langs_fbank_*")) and not list(hdir.glob("heatmap_langs_mfcc_*"))
    for n in expected:
        img = mpimg.imread(hdir / n)
        assert img.ndim == 3 and img.shape[0] > 100 and f"(synth/quick/{n})" in md
    best = leaderboard.select_best(leaderboard.collect(runs)).set_index(["upstream", "task"])
    lw = best.loc[(A, "mono_asr_10min"), "per_language_lw"]
    s1, s2 = lang_lw(5, 1), lang_lw(5, 2)
    assert lw["fr"] == pytest.approx([(x + y) / 2 for x, y in zip(s1["fr"], s2["fr"])])
    assert best.loc[(A, "lid_ctc_10min"), "lr"] == 1e-3


def test_report_shows_mlsuperb(runs, tmp_path):
    """REPORT.md is the one-screen summary: the ML-SUPERB summary table with the ML-SUPERB score of
    each budget; the per-language tables and language heatmaps stay on the full board it links."""
    out = tmp_path / "ci"
    md = write_report(runs, out).read_text()
    part = md[md.index("ML-SUPERB tasks:"):]
    head = next(ln for ln in part.splitlines() if ln.startswith("| upstream"))
    assert head.endswith("| ML-SUPERB score (10min) | ML-SUPERB score (1h, partial: 1/4 tasks) |")
    assert _row(md, "ML-SUPERB tasks:", A)[-2:] == ["770.83 #1", "1000.00 #1"]  # score and its rank
    assert _row(md, "ML-SUPERB tasks:", B)[-2:] == ["729.17 #2", "n/a"]
    assert "Per-language" not in md and "heatmap_langs_" not in md
    board = (out / "synth.md").read_text()
    assert "#### Per-language CER: ml_asr_10min" in board and "Layer weights per language (mono_asr_10min" in board
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert "synth.md" in links
    for link in links:
        assert (out / link).is_file(), link


def test_mlsuperb_only_board_and_real_corpus(tmp_path):
    root = tmp_path / "runs"
    for up in ("fbank", A):
        for task, m in TEN[up].items():
            write_run(root, up, task, m, corpus="mlsuperb", kind="real")
    md = (tmp_path / "out" / "mlsuperb.md")
    leaderboard.build(root, tmp_path / "out")
    text = md.read_text()
    assert "### Summary" not in text and MLSUPERB_REAL_HEADER in text
    assert MLSUPERB_SYNTH_HEADER not in text and SYNTH_HEADER not in text
    assert _row(text, "### ML-SUPERB (10min train budget)", A)[-1] == "1000.00"
    assert "Per-language CER" not in text  # no extra["per_language_cer"] in these runs


def test_mlsuperb_board_where_fbank_is_best_everywhere(tmp_path):
    """fbank is both the zero point and the best run on every metric: no metric has a scale, so
    the section shows the metrics without score columns and says why."""
    root = tmp_path / "runs"
    worse = {t: {m: v / 2 if "acc" in m else v * 2 for m, v in ms.items()} for t, ms in TEN["fbank"].items()}
    for up, tasks in (("fbank", TEN["fbank"]), (A, worse)):
        for task, m in tasks.items():
            write_run(root, up, task, m)
    leaderboard.build(root, tmp_path / "out")
    md = (tmp_path / "out" / "synth.md").read_text()
    sec = "### ML-SUPERB (10min train budget)"
    part = md[md.index(sec):]
    head = next(ln for ln in part.splitlines() if ln.startswith("| upstream"))
    assert "ML-SUPERB score" not in head and head.endswith("| asr_lid_10min cer_fewshot ↓ |")
    assert len(_row(md, sec, A)) == 13 and _row(md, sec, "fbank")[6] == "40.00 #1"
    assert "No ML-SUPERB score on this board" in part
    assert "Not in the score: mono: mono_asr_10min cer: fbank is the best run (no scale)." in part
    # the report's ML-SUPERB summary: metrics and ranks, no empty score column
    report = write_report(root, tmp_path / "ci").read_text()
    head = next(ln for ln in report[report.index("ML-SUPERB tasks:"):].splitlines() if ln.startswith("| upstream"))
    assert "score" not in head and head.endswith("| mono_asr_10min cer ↓ |")
    assert _row(report, "ML-SUPERB tasks:", "fbank")[-1] == "40.00 #1"
