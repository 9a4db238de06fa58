"""The CI-sized benchmark (``harness ci``, ``scripts/ci_benchmark.sh``): small enough for every change.

One call builds the tiny synth corpus, pre-trains the ``hubert_ci`` recipe briefly, probes it and
the hand-made baselines on one task of each kind (content: PR; speaker: SID; language: LID;
multi-speaker: SD) with several probe seeds, runs the layer analysis (harness analyze: PWCCA and
cluster MI per layer) on the pre-trained model, then writes the board and the report. Every stage
is reused when unchanged: the corpus, the pre-training run (by recipe and corpus), the feature
caches (by upstream weights) and finished probe runs (by config hash), so a CI cache of the run
store makes a re-run cheap. With a base store the report compares against it and a regressed
primary metric fails the call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from harness import compare as cmp
from harness.errors import HarnessError

TASKS = ("pr", "sid", "lid", "sd")
BASELINES = ("fbank", "mfcc")
RECIPE = "hubert_ci"
#: probe seeds per (upstream, task): enough for an interval, so the gate compares intervals
#: rather than single runs (a base store from another machine differs by run-to-run noise)
SEEDS = 3


@dataclass(frozen=True)
class Outcome:
    """What the benchmark did: the report, the failed jobs and the regressions found."""

    report: Path
    failed: int
    regressions: int
    seconds: float

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or self.regressions else 0


def benchmark(runs: Path, cache: Path, out: Path, data: Path = Path("data/synth"), size: str = "tiny",
              recipe: str = RECIPE, tasks: Sequence[str] = TASKS, baselines: Sequence[str] = BASELINES,
              seeds: int = SEEDS, workers: int = 2, base: Optional[Path] = None,
              threshold: Optional[float] = None, fmt: str = "github", analysis: bool = True,
              log: Callable[[str], None] = print) -> Outcome:
    """Corpus -> pre-training -> probes -> board and report (-> comparison with ``base``).

    Args:
        runs, cache: the run store and the feature cache (both reused when present).
        out: where the board, the heatmaps and the report go.
        data: parent folder of the synth corpus (``<data>/<size>``).
        base: a base run store to compare against; None compares nothing.
        fmt: the report format ("github" writes GITHUB.md, "markdown" REPORT.md).
        analysis: run `harness analyze` (its default measures) on the pre-trained upstream, for
            the board's layer-analysis section.

    Raises:
        HarnessError: a bad argument (checked before any work) or a stage that cannot run.
    """
    from harness.data.synth import generate
    from harness.evaluate import build_task, build_upstream
    from harness.leaderboard import build
    from harness.report import FORMATS, write_report
    from harness.request import EvalRequest
    from harness.sweep import run_jobs, run_pretrainings

    if seeds < 1:
        raise HarnessError(f"--seeds must be >= 1, got {seeds}")
    if fmt not in FORMATS:
        raise HarnessError(f"unknown report format {fmt!r}: use {' | '.join(FORMATS)}")
    if base is not None and not Path(base).is_dir():
        raise HarnessError(f"base run store {base} is not a folder")
    for t in tasks:
        build_task(t)
    for u in baselines:
        build_upstream(u)
    t0 = time.time()
    corpus = generate(Path(data) / size, size=size, seed=0)
    log(f"corpus synth {size} ready in {time.time() - t0:.0f} s")
    (pre,) = run_pretrainings([recipe], str(corpus), runs, workers=1, log=log)
    from harness.controls import controls

    # the board carries its controls: the recipe's random-init twin and the un-normalised filter bank
    upstreams = list(baselines) + [str(pre / "iter1" / "upstream")]
    upstreams += [c for c in controls([recipe]) if c not in upstreams]
    jobs = [EvalRequest(u, t, str(corpus), Path(runs), Path(cache), seeds) for t in tasks for u in upstreams]
    failed = run_jobs(jobs, workers, log)
    if analysis:  # the board's "Layer analysis" section for the CI upstream (harness analyze)
        from harness.analysis.run import analyze

        t1 = time.time()
        analyze(str(pre / "iter1" / "upstream"), str(corpus), Path(runs), Path(cache), log=log)
        log(f"layer analysis of {recipe}-it1 done in {time.time() - t1:.0f} s")
    build(runs, out)
    cells = cmp.compare(base, runs, threshold) if base is not None else None
    report = write_report(runs, out, fmt=fmt, base_runs=base, threshold=threshold, cells=cells)
    regressed = len(cmp.regressions(cells)) if cells is not None else 0
    return Outcome(report, failed, regressed, time.time() - t0)
