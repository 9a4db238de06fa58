"""`./run demo`: synth corpus -> probes of the baselines on every SUPERB task -> leaderboard.

Every stage is resumable: the corpus, the feature caches and finished runs are reused, so a
second `./run demo` only rebuilds the leaderboard. Output: leaderboards/synth.md, REPORT.md and
the heatmaps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from harness.errors import HarnessError

UPSTREAMS = ["fbank", "mfcc", "random:hubert_tiny"]
TASKS = ["pr", "asr", "ks", "sid", "asv", "lid"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="./run demo", description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="small", help="synth size (tiny for a smoke run)")
    ap.add_argument("--runs", type=Path, default=Path("runs"))
    ap.add_argument("--cache", type=Path, default=Path("cache"))
    ap.add_argument("--out", type=Path, default=Path("leaderboards"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from rich.console import Console

    from harness.data.synth import generate
    from harness.evaluate import evaluate
    from harness.leaderboard import build
    from harness.report import write_report

    con = Console(stderr=True)
    t0 = time.time()
    try:
        corpus = generate(Path("data/synth") / a.size, size=a.size, seed=0)
        con.print(f"[bold]corpus[/] synth {a.size} ready in {time.time() - t0:.0f} s")
        for up in UPSTREAMS:
            for task in TASKS:
                t1 = time.time()
                evaluate(up, task, str(corpus), a.runs, a.cache, profile="quick", log=con.print)
                con.print(f"[bold]{up} / {task}[/] done in {time.time() - t1:.0f} s")
        for p in build(a.runs, a.out):
            con.print(f"wrote {p}")
        con.print(f"wrote {write_report(a.runs, a.out)}")
    except HarnessError as e:
        con.print(f"[bold red]error:[/] {e}")
        return 1
    con.print(f"[bold green]demo finished in {time.time() - t0:.0f} s[/]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
