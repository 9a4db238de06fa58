"""Benchmark: the same probe trained from the feature cache vs re-running the frozen upstream on
every batch (what s3prl does). Prints both times, the ratios and both test metrics.

    .venv/bin/python bench/eval_cache.py [--corpus data/synth/small] [--upstream random:hubert_tiny]
        [--task sid] [--steps N] [--grid 3]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from harness.data.corpora import load_corpus  # noqa: E402
from harness.evaluate import build_task, build_upstream, resolve_config, resolve_corpus  # noqa: E402
from harness.features import FeatureSource, prepare_sources  # noqa: E402
from harness.probe import train_probe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="synth")
    ap.add_argument("--upstream", default="random:hubert_tiny")
    ap.add_argument("--task", default="sid")
    ap.add_argument("--steps", type=int, default=None, help="default: the quick profile's steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--grid", type=int, default=3,
                    help="lr grid size for the grid ratio (the paper profile searches several lrs; quick uses one)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    task = build_task(a.task)
    up = build_upstream(a.upstream)
    cfg = resolve_config(task, "quick", overrides={"steps": a.steps} if a.steps else None)
    pcfg = cfg.probe
    lr = pcfg.lrs[0]
    corpus = load_corpus(resolve_corpus(a.corpus))
    splits = task.prepare(corpus)
    n_train = len(splits.train)
    print(f"{a.upstream} / {a.task} on {corpus.name} ({corpus.meta.get('size')}): {n_train} train utts, "
          f"{pcfg.steps} steps, lr {lr:g}, seed {pcfg.seed}, {a.threads} threads")

    tmp = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    try:
        t0 = time.perf_counter()
        cached = prepare_sources(up, splits.as_dict(), splits.pools, tmp, budget_gb=100.0, log=lambda *_: None)
        t_extract = time.perf_counter() - t0
        t0 = time.perf_counter()
        res_cache = train_probe(task, splits, cached, up.spec, pcfg, lr, log=lambda *_: None, desc="cached")
        t_cache = time.perf_counter() - t0

        live = {s: FeatureSource(u, upstream=up) for s, u in splits.as_dict().items()}
        t0 = time.perf_counter()
        res_live = train_probe(task, splits, live, up.spec, pcfg, lr, log=lambda *_: None, desc="live")
        t_live = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    m = task.primary_metric
    grid = a.grid
    print(f"cache: extract {t_extract:.1f} s once + train {t_cache:.1f} s   test {m} {res_cache.test[m]:.2f}")
    print(f"live:  train {t_live:.1f} s (upstream re-run every batch)   test {m} {res_live.test[m]:.2f}")
    print(f"ratio (probe training, cache reused): {t_live / t_cache:.1f}x")
    print(f"ratio (one run incl. extraction):     {t_live / (t_extract + t_cache):.1f}x")
    print(f"ratio (lr grid of {grid} incl. extraction): {grid * t_live / (t_extract + grid * t_cache):.1f}x")
    agree = abs(res_cache.test[m] - res_live.test[m])
    print(f"test metric difference: {agree:.3f} ({'agree' if agree <= 1.0 else 'DISAGREE'})")


if __name__ == "__main__":
    main()
