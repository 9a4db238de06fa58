"""Ablations: recipes that differ in one choice, trained at equal updates, probed with seeds.

An ablation names its recipes (the first is the method as published, the reference), the tasks
it is read on and the number of probe seeds. `run_ablation` pre-trains every recipe (finished
stages are reused), then probes each recipe's last export on the tasks with that many seeds;
the leaderboard (`ablation_tables`, from the run folders only) writes one table per ablation:
test mean ± 95% interval per task, and for every other variant whether it differs from the
reference beyond both intervals. Written whichever way it falls.

    harness ablate mshubert --corpus synth
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from harness.errors import HarnessError


@dataclass(frozen=True)
class Ablation:
    """One ablation.

    Attributes:
        name: CLI name.
        title: table heading.
        question: what the reader learns, one sentence (printed above the table).
        recipes: pre-training recipes; the first is the reference the others are compared with.
        tasks: probe tasks read.
        seeds: probe seeds per (upstream, task) at the dev-best lr.
    """

    name: str
    title: str
    question: str
    recipes: Tuple[str, ...]
    tasks: Tuple[str, ...]
    seeds: int = 3


ABLATIONS: Dict[str, Ablation] = {a.name: a for a in (
    Ablation("mshubert", "MS-HuBERT: swap and multicluster loss",
             "Does the swap help, and do several label sets beat one (equal updates)?",
             ("mshubert_tiny", "mshubert_tiny_noswap", "mshubert_tiny_single"), ("pr", "asr", "lid")),
    Ablation("mhubert147", "mHuBERT-147: two-level language/dataset up-sampling",
             "Does up-sampling help the few-shot and low-resource languages (equal updates)?",
             ("mhubert147_tiny", "mhubert147_tiny_noupsample"), ("ml_asr_10min", "mono_asr_10min")),
    Ablation("cvhubert", "Multi-resolution HuBERT: 20 vs 40 vs 80 ms frames",
             "What does a coarser frame rate cost on each task, and what does it save in probe time?",
             ("cvhubert_tiny_20ms", "cvhubert_tiny_40ms", "cvhubert_tiny_80ms"),
             ("pr", "asr", "ks", "sid", "asv", "lid", "sd", "ss")),
)}


def get_ablation(name: str) -> Ablation:
    if name not in ABLATIONS:
        raise HarnessError(f"unknown ablation {name!r}; known: {', '.join(sorted(ABLATIONS))}")
    return ABLATIONS[name]


def board_upstream(recipe: str, upstreams) -> Optional[str]:
    """The upstream of `upstreams` that is the recipe's latest iteration on the board
    ("<recipe>-it<k>" with the largest k), or None."""
    pat = re.compile(rf"^{re.escape(recipe)}-it(\d+)$")
    found = [(int(m.group(1)), u) for u in set(upstreams) for m in [pat.match(str(u))] if m]
    return max(found)[1] if found else None


def run_ablation(ab: Ablation, corpus: str, runs: Path, cache: Path, workers: int = 2,
                 log: Callable[[str], None] = print) -> int:
    """Pre-train every recipe of `ab`, probe each last export on its tasks with its seeds.
    Iterations a recipe shares with a finished run under runs/pretrain (e.g. the variants' common
    HuBERT iteration 1) are reused, not retrained: when a variant shares iterations with the
    reference, the reference trains first, alone. Returns the number of failed probes (each one
    logged, the others kept)."""
    from harness.pretrain.recipe import load_recipe
    from harness.pretrain.run import reuse_iterations, shared_iterations
    from harness.sweep import EvalJob, run_jobs, run_pretrainings

    root = Path(runs) / "pretrain"
    recs = {r: load_recipe(r) for r in ab.recipes}

    def train(recipes):
        for r in recipes:
            reuse_iterations(r, corpus, root / r, sorted(p for p in root.glob("*") if p.is_dir()), log)
        return run_pretrainings(recipes, corpus, runs, workers=workers, log=log)

    ref, others = ab.recipes[0], list(ab.recipes[1:])
    if any(shared_iterations(recs[ref], recs[r]) for r in others):
        outs = train([ref]) + train(others)
    else:
        outs = train(list(ab.recipes))
    jobs = [EvalJob(str(out / f"iter{len(recs[r].iterations)}" / "upstream"), task, corpus, runs, cache, ab.seeds)
            for r, out in zip(ab.recipes, outs) for task in ab.tasks]
    return run_jobs(jobs, workers, log)


def _verdict(ref: dict, row: dict, pm: str, hib: bool) -> str:
    m, c = f"test.{pm}.mean", f"test.{pm}.ci"
    if ref is row or pd.isna(ref.get(m)) or pd.isna(row.get(m)):
        return ""
    apart = (row[m] - row[c] > ref[m] + ref[c]) or (ref[m] - ref[c] > row[m] + row[c])
    if not apart:
        return " ≈"
    return " ▲" if (row[m] > ref[m]) == hib else " ▼"


def ablation_tables(b: pd.DataFrame, ablations: Optional[Sequence[Ablation]] = None) -> List[str]:
    """Markdown blocks, one per ablation with at least two of its upstreams on this board (one
    corpus and profile): rows = variants (reference first), columns = tasks (test primary metric,
    mean ± 95% CI, seeds) and the summed mean probe training time. ▲ / ▼: better / worse than the
    reference beyond both intervals; ≈: within them."""
    from harness.leaderboard import _arrow, fmt, fmt_ci, md_table

    blocks = []
    for ab in ablations if ablations is not None else ABLATIONS.values():
        names = [(r, board_upstream(r, b["upstream"])) for r in ab.recipes]
        names = [(r, u) for r, u in names if u is not None]
        if len(names) < 2 or names[0][0] != ab.recipes[0]:  # nothing to compare with the reference
            continue
        present = b[b["upstream"].isin([u for _, u in names])]
        tasks = [t for t in ab.tasks if t in set(present["task"])]
        head = ["variant (recipe)", "upstream"]
        info = {}
        for t in tasks:
            g = present[present["task"] == t]
            pm, hib = g["primary_metric"].iloc[0], bool(g["higher_is_better"].iloc[0])
            info[t] = (pm, hib, {r["upstream"]: r for r in g.to_dict("records")})
            head.append(f"{t} {pm}{_arrow(pm, hib)}")
        head.append("probe train s (sum of task means)")
        rows = []
        ref_name = names[0][1]
        for recipe, up in names:
            cells = [recipe + (" (reference)" if up == ref_name else ""), up]
            cost = 0.0
            for t in tasks:
                pm, hib, by_up = info[t]
                r = by_up.get(up)
                if r is None:
                    cells.append("-")
                    continue
                ref = by_up.get(ref_name)
                mark = _verdict(ref, r, pm, hib) if ref is not None else ""
                cells.append(f"{fmt_ci(r.get(f'test.{pm}.mean'), r.get(f'test.{pm}.ci'))} ({r['n_seeds']}){mark}")
                cost += float(r.get("train_s") or 0.0)
            cells.append(fmt(cost) if cost else "-")
            rows.append(cells)
        blocks.append("\n".join([f"#### {ab.title}", "", f"{ab.question} Recipes trained at equal updates; each "
                                 f"cell: test mean ± 95% CI (probe seeds); ▲ / ▼ better / worse than the "
                                 f"reference beyond both intervals, ≈ within them. `harness ablate {ab.name}`.",
                                 "", md_table(head, rows)]))
    return blocks
