"""The int8 feature cache against the float16 one: bytes, probe training time, test metrics.

Reads two run stores made with the same upstream, tasks and seeds, one with the default float16
cache and one with `--cache-dtype int8`, and the cache folder both used:

    harness eval --upstream U --task pr,asr,ks,sid,asv,sd,ss --seeds 3 --runs RUNS16 --cache CACHE
    harness eval --upstream U --task pr,asr,ks,sid,asv,sd,ss --seeds 3 --runs RUNS8 --cache CACHE \
        --cache-dtype int8
    .venv/bin/python bench/int8_cache.py --upstream U --float16-runs RUNS16 --int8-runs RUNS8 --cache CACHE

Prints per task: the float16 test mean with its 95 % t-interval over seeds, the int8 mean and
whether it is inside that interval, and the mean probe training time of each (result.json
timing.train_s: batch assembly, int8 decoding included, and the updates); then the bytes of the
upstream's float16 and int8 pools (CACHE/features/<weights hash>/<pool>[-int8]).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def runs_of(store: Path, upstream_slug: str) -> dict:
    """{task: [result dicts]} of `upstream_slug`'s runs under `store` (any corpus folder)."""
    out: dict = {}
    for p in sorted(Path(store).glob(f"*/{upstream_slug}/*/*/result.json")):
        r = json.loads(p.read_text())
        out.setdefault(r["task"], []).append(r)
    return out


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--float16-runs", type=Path, required=True)
    ap.add_argument("--int8-runs", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    a = ap.parse_args(argv)
    from harness.evaluate import build_upstream
    from harness.results import slug
    from harness.scores import mean_ci95

    up = build_upstream(a.upstream)
    s = slug(up.spec.name)
    f16, i8 = runs_of(a.float16_runs, s), runs_of(a.int8_runs, s)
    print(f"upstream {up.spec.name}: {up.spec.num_layers} layers x {up.spec.hidden_size}")
    print("| task | metric | float16 mean ± 95 % | int8 mean | inside | train s float16 | train s int8 | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for task in sorted(set(f16) & set(i8)):
        m = f16[task][0]["primary_metric"]
        x16 = [r["metrics"]["test"][m] for r in f16[task]]
        x8 = [r["metrics"]["test"][m] for r in i8[task]]
        (mu16, ci), mu8 = mean_ci95(x16), statistics.mean(x8)
        inside = "yes" if abs(mu8 - mu16) <= ci else ("n/a" if math.isnan(ci) else "no")
        t16 = statistics.mean(r["timing"]["train_s"] for r in f16[task])
        t8 = statistics.mean(r["timing"]["train_s"] for r in i8[task])
        print(f"| {task} | {m} | {mu16:.2f} ± {ci:.2f} ({len(x16)}) | {mu8:.2f} ({len(x8)}) | {inside} | "
              f"{t16:.1f} | {t8:.1f} | {t8 / t16:.2f} |")
    root = a.cache / "features" / up.weights_hash()  # where `harness eval --cache C` keeps its pools
    pairs = [p for p in root.glob("*") if p.is_dir() and not p.name.endswith("-int8")
             and (root / f"{p.name}-int8").is_dir()]  # pools that both runs built
    b16 = sum(folder_bytes(p) for p in pairs)
    b8 = sum(folder_bytes(root / f"{p.name}-int8") for p in pairs)
    print(f"pools of {root} ({len(pairs)} built in both dtypes): float16 {b16 / 1e6:.1f} MB, int8 {b8 / 1e6:.1f} MB "
          f"({b8 / b16:.3f} of float16)" if b16 else f"no pool under {root} in both float16 and int8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
