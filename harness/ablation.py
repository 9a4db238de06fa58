"""Ablations: recipes that differ in one choice, trained at equal updates, probed with seeds.

An ablation names its recipes (the first is the method as published, the reference), the tasks
it is read on and the number of probe seeds. `run_ablation` pre-trains every recipe from N
pre-training seeds (harness.pretrain.seeds; finished stages are reused), then probes each run's
last export on the tasks with that many probe seeds; the leaderboard (`ablation_tables`, from the
run folders only) writes one table per ablation: per task, a variant's test metric pooled over its
pre-training runs with a 95 % interval over them (harness.board.pooling; one run: the interval
over its probe seeds), and for every other variant whether it differs from the reference beyond
both intervals. Written whichever way it falls.

    harness ablate mshubert --corpus synth --pretrain-seeds 2
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from harness.board.markdown import arrow, fmt, fmt_ci, md_table
from harness.errors import HarnessError


@dataclass(frozen=True)
class Ablation:
    """One ablation.

    Attributes:
        name: CLI name.
        title: table heading.
        question: what the reader learns, one sentence (printed above the table).
        recipes: pre-training recipes; the first is the reference the others are compared with.
        tasks: probe tasks read (each gives its test primary metric's column).
        seeds: probe seeds per (upstream, task) at the dev-best lr.
        extra: further (task, metric) columns, after the primary ones (a secondary test metric
            the question is about, e.g. few-shot CER).
        language_groups: a task whose per-language test CER gets a second table, averaged over
            the languages of each resource class the corpus gives them (synth: high / low /
            fewshot, which is also how its pre-training split is balanced).
    """

    name: str
    title: str
    question: str
    recipes: Tuple[str, ...]
    tasks: Tuple[str, ...]
    seeds: int = 3
    extra: Tuple[Tuple[str, str], ...] = ()
    language_groups: Optional[str] = None


ABLATIONS: Dict[str, Ablation] = {a.name: a for a in (
    Ablation("mshubert", "MS-HuBERT: swap and multicluster loss",
             "Does the swap help, and do several label sets beat one (equal updates)?",
             ("mshubert_tiny", "mshubert_tiny_noswap", "mshubert_tiny_single"), ("pr", "asr", "lid")),
    Ablation("mhubert147", "mHuBERT-147: two-level language/dataset up-sampling",
             "Does up-sampling help the few-shot and low-resource languages (equal updates)?",
             ("mhubert147_tiny", "mhubert147_tiny_noupsample"), ("ml_asr_10min", "mono_asr_10min"),
             extra=(("ml_asr_10min", "cer_fewshot"),), language_groups="ml_asr_10min"),
    Ablation("cvhubert", "Multi-resolution HuBERT: 20 vs 40 vs 80 ms frames",
             "What does a coarser frame rate cost on each task, and what does it save in probe time?",
             ("cvhubert_tiny_20ms", "cvhubert_tiny_40ms", "cvhubert_tiny_80ms"),
             ("pr", "asr", "ks", "sid", "asv", "lid", "sd", "ss")),
    # wavlm_tiny changes two things against hubert_tiny: the network (gated relative position bias)
    # and the objective (mixing); the no-mixing twin keeps the network and drops the objective
    Ablation("wavlm", "WavLM: denoising objective vs network",
             "Is WavLM's gain on speakers and separation the denoising objective or the network "
             "(the same network without mixing, and HuBERT; equal updates)?",
             ("wavlm_tiny", "wavlm_tiny_nodenoise", "hubert_tiny"), ("sd", "ss", "asv", "pr")),
    # the teacher objective on hubert_tiny's network, data and 1200 updates (hubert_tiny's final
    # iteration trains 1200 updates too, on labels from its first)
    Ablation("data2vec", "data2vec vs HuBERT: regression to an EMA teacher vs masked prediction of clusters",
             "Does data2vec's objective beat HuBERT's on the same network and data (equal updates "
             "per final model)?",
             ("hubert_tiny", "data2vec_tiny"), ("pr", "ks", "sid")),
)}


def get_ablation(name: str) -> Ablation:
    if name not in ABLATIONS:
        raise HarnessError(f"unknown ablation {name!r}; known: {', '.join(sorted(ABLATIONS))}")
    return ABLATIONS[name]


def board_runs(recipe: str, upstreams) -> Dict[int, str]:
    """{pre-training seed: upstream} of `recipe`'s exports among `upstreams` at its latest
    iteration: "<recipe>-it<k>" (seed 0) and "<recipe>-s<s>-it<k>" with the largest k any seed
    reached; seeds that stopped before that iteration are left out (runs of one iteration are
    pooled, never runs of different iterations). {} when none is there."""
    from harness.pretrain.seeds import parse_upstream

    found = [(p, str(u)) for u in set(upstreams) for p in [parse_upstream(recipe, str(u))] if p]
    if not found:
        return {}
    k = max(it for (_, it), _ in found)
    return dict(sorted((seed, u) for (seed, it), u in found if it == k))


def board_upstream(recipe: str, upstreams) -> Optional[str]:
    """The upstream of `upstreams` that is the recipe's latest iteration on the board
    ("<recipe>-it<k>" with the largest k, pre-training seed 0), or None."""
    pat = re.compile(rf"^{re.escape(recipe)}-it(\d+)$")
    found = [(int(m.group(1)), u) for u in set(upstreams) for m in [pat.match(str(u))] if m]
    return max(found)[1] if found else None


def run_ablation(ab: Ablation, corpus: str, runs: Path, cache: Path, workers: int = 2,
                 log: Callable[[str], None] = print, pretrain_seeds: int = 1) -> int:
    """Pre-train every recipe of `ab` from `pretrain_seeds` pre-training seeds (0 .. N-1,
    harness.pretrain.seeds), probe each run's last export on its tasks with its probe seeds.
    Iterations a recipe shares with a finished run under runs/pretrain (e.g. the variants' common
    HuBERT iteration 1 of the same pre-training seed) are reused, not retrained: when a variant
    shares iterations with the reference, the reference trains first, alone. Returns the number
    of failed probes (each one logged, the others kept)."""
    from harness.config import check_count
    from harness.pretrain.recipe_load import load_recipe
    from harness.pretrain.run_folder import reuse_iterations, shared_iterations
    from harness.request import EvalRequest
    from harness.sweep import run_jobs, run_pretrainings

    check_count("pretrain_seeds", pretrain_seeds)
    root = Path(runs) / "pretrain"
    recs = {r: load_recipe(r) for r in ab.recipes}

    seeds = list(range(pretrain_seeds))

    def train(recipes):  # every seed of every recipe, side by side; returns {(recipe, seed): folder}
        from harness.pretrain.seeds import pretrain_folder

        for r in recipes:
            for seed in seeds:
                reuse_iterations(r, corpus, pretrain_folder(runs, r, seed),
                                 sorted(p for p in root.glob("*") if p.is_dir()), log, pretrain_seed=seed)
        outs = run_pretrainings(recipes, corpus, runs, workers=workers, log=log, seeds=seeds)
        return dict(zip([(r, s) for r in recipes for s in seeds], outs))

    ref, others = ab.recipes[0], list(ab.recipes[1:])
    if any(shared_iterations(recs[ref], recs[r]) for r in others):
        outs = {**train([ref]), **train(others)}
    else:
        outs = train(list(ab.recipes))
    jobs = [EvalRequest(str(outs[r, seed] / f"iter{len(recs[r].iterations)}" / "upstream"), task, corpus, runs, cache,
                        ab.seeds) for r in ab.recipes for seed in seeds for task in ab.tasks]
    return run_jobs(jobs, workers, log)


def pooled_cell(rows: Sequence[dict], pm: str):
    """The `harness.board.pooling.Pooled` of one variant on one task from its board rows, one
    row per pre-training run (test.<pm>.mean / .ci over that run's probe seeds, n_seeds)."""
    from harness.board.pooling import pool_runs

    return pool_runs([r.get(f"test.{pm}.mean") for r in rows], [r.get(f"test.{pm}.ci") for r in rows],
                     [int(r["n_seeds"]) for r in rows])


def _verdict(ref, cell, hib: bool) -> str:
    """" ▲" / " ▼": `cell` better / worse than `ref` beyond both intervals; " ≈" within them;
    "" when either has no interval (nothing can be said)."""
    from harness.board.pooling import apart

    far = apart(ref, cell)
    if far is None:
        return ""
    if not far:
        return " ≈"
    return " ▲" if (cell.mean > ref.mean) == hib else " ▼"


def _cell_text(p) -> str:
    """One run: "mean ± probe ci (n)", as boards before pre-training seeds. R runs: "mean ±
    interval over runs (R×n) [probe ± mean probe ci]"."""
    if not p.over_pretraining:
        return f"{fmt_ci(p.mean, p.ci)} ({p.probe_seeds[0]})"
    n = set(p.probe_seeds)
    count = f"{p.runs}×{p.probe_seeds[0]}" if len(n) == 1 else f"{p.runs} runs, {sum(p.probe_seeds)} probes"
    return f"{fmt_ci(p.mean, p.ci)} ({count}) [probe ± {fmt(p.probe_ci)}]"


def ablation_tables(b: pd.DataFrame, ablations: Optional[Sequence[Ablation]] = None) -> List[str]:
    """Markdown blocks, one per ablation with at least two of its recipes on this board (one
    corpus and profile): rows = variants (reference first), columns = tasks (test primary metric)
    and the summed mean probe training time. A variant pre-trained from several seeds pools
    them (harness.board.pooling): mean of the runs' probe-seed means ± 95% t-interval over the
    runs, the probe-seed spread beside it; one run: mean ± 95% CI over its probe seeds. ▲ / ▼:
    better / worse than the reference beyond both intervals; ≈: within them."""
    blocks = []
    for ab in ablations if ablations is not None else ABLATIONS.values():
        names = [(r, board_runs(r, b["upstream"])) for r in ab.recipes]
        names = [(r, ups) for r, ups in names if ups]
        if len(names) < 2 or names[0][0] != ab.recipes[0]:  # nothing to compare with the reference
            continue
        present = b[b["upstream"].isin([u for _, ups in names for u in ups.values()])]
        tasks = [t for t in ab.tasks if t in set(present["task"])]
        head = ["variant (recipe)", "upstream"]
        by_task = {t: {r["upstream"]: r for r in present[present["task"] == t].to_dict("records")} for t in tasks}
        columns = []  # (task, metric, higher is better): the primary metrics, then the extra ones
        for t in tasks:
            first = next(iter(by_task[t].values()))
            columns.append((t, first["primary_metric"], bool(first["higher_is_better"])))
        for t, m in ab.extra:
            listed = next(iter(by_task[t].values())).get("metric_specs") if t in by_task else None
            specs = {s["name"]: s for s in listed} if isinstance(listed, list) else {}
            if m in specs:  # a board made before the task measured it has no such column
                columns.append((t, m, bool(specs[m]["higher_is_better"])))
        head += [f"{t} {m}{arrow(m, hib)}" for t, m, hib in columns]
        head.append("probe train s (sum of task means)")
        cells_by = {}  # (recipe, task, metric) -> (Pooled, rows)
        for recipe, ups in names:
            for t, m, _ in columns:
                rows = [by_task[t][u] for u in ups.values() if u in by_task[t]]
                if rows:
                    cells_by[recipe, t, m] = (pooled_cell(rows, m), rows)
        rows_md = []
        ref_recipe = names[0][0]
        runs_max = max((p.runs for p, _ in cells_by.values()), default=1)
        pooled_any = runs_max >= 2
        for recipe, ups in names:
            cells = [recipe + (" (reference)" if recipe == ref_recipe else ""), _upstream_text(ups)]
            cost = 0.0
            for t, m, hib in columns:
                if (recipe, t, m) not in cells_by:
                    cells.append("-")
                    continue
                p, rows = cells_by[recipe, t, m]
                ref = cells_by.get((ref_recipe, t, m))
                mark = _verdict(ref[0], p, hib) if ref is not None and recipe != ref_recipe else ""
                cells.append(_cell_text(p) + mark)
                if m == rows[0]["primary_metric"]:  # a task's probes are counted once
                    spent = [float(r.get("train_s") or 0.0) for r in rows]
                    cost += sum(spent) / len(spent)
            cells.append(fmt(cost) if cost else "-")
            rows_md.append(cells)
        if pooled_any:
            how = ("each cell: test mean over pre-training runs of each run's probe-seed mean ± 95% t-interval "
                   "over the runs (runs × probe seeds), [the mean probe-seed 95% CI of a run]; a cell of one "
                   "run: mean ± 95% CI over its probe seeds; ▲ / ▼ better / worse than the reference beyond "
                   "both intervals, ≈ within them")
        else:  # the text of every board made before pre-training seeds
            how = ("each cell: test mean ± 95% CI (probe seeds); ▲ / ▼ better / worse than the reference "
                   "beyond both intervals, ≈ within them")
        parts = [f"#### {ab.title}", "", f"{ab.question} Recipes trained at equal updates; {how}. "
                 f"`harness ablate {ab.name}{f' --pretrain-seeds {runs_max}' if pooled_any else ''}`.", "",
                 md_table(head, rows_md)]
        if ab.language_groups in by_task:
            parts += language_group_table(ab.language_groups, names, by_task[ab.language_groups])
        blocks.append("\n".join(parts))
    return blocks


def language_group_table(task: str, names, by_up: Dict[str, dict]) -> List[str]:
    """Lines of the per-language-group table of one ablation: rows = variants, columns = the
    corpus's language classes; a cell pools, over pre-training runs, each run's mean CER over
    the class's languages (per language, the probe-seed mean). Nothing when the results do not
    record the classes (results made before they were recorded)."""
    from harness.board.pooling import pool_runs

    rows_of = {recipe: [by_up[u] for u in ups.values() if u in by_up] for recipe, ups in names}
    classes = next((r.get("language_classes") for rs in rows_of.values() for r in rs
                    if isinstance(r.get("language_classes"), dict)), None)
    if not classes:
        return []
    order = {"high": 0, "normal": 0, "low": 1, "fewshot": 2}
    groups = sorted({c for c in classes.values()}, key=lambda c: (order.get(c, 3), c))
    members = {g: sorted(lang for lang, c in classes.items() if c == g) for g in groups}
    head = ["variant (recipe)"] + [f"{g} ({', '.join(members[g])}) CER ↓" for g in groups]
    ref_recipe, ref_cells, body = names[0][0], {}, []
    for recipe, _ in names:
        cells = [recipe + (" (reference)" if recipe == ref_recipe else "")]
        for g in groups:
            means = []
            for r in rows_of[recipe]:
                per = r.get("per_language_cer") if isinstance(r.get("per_language_cer"), dict) else {}
                vals = [per[lang] for lang in members[g] if lang in per]
                means.append(sum(vals) / len(vals) if len(vals) == len(members[g]) else float("nan"))
            if not means:
                cells.append("-")
                continue
            p = pool_runs(means, [float("nan")] * len(means), [int(r["n_seeds"]) for r in rows_of[recipe]])
            if recipe == ref_recipe:
                ref_cells[g] = p
            mark = _verdict(ref_cells[g], p, False) if recipe != ref_recipe and g in ref_cells else ""
            cells.append((f"{fmt_ci(p.mean, p.ci)} ({p.runs} runs)" if p.over_pretraining else fmt(p.mean)) + mark)
        body.append(cells)
    return ["", f"Per language group ({task} test CER, %): each run's mean over the group's languages (each "
            "language's probe-seed mean), then the mean over pre-training runs ± 95% t-interval over the runs; "
            "groups are the corpus's language classes.", "", md_table(head, body)]


def _upstream_text(ups: Dict[int, str]) -> str:
    """Seed 0's upstream name alone (one run), else the names' pattern and the seeds pooled."""
    if len(ups) == 1:
        return next(iter(ups.values()))
    seeds = sorted(ups)
    return f"{ups[seeds[0]]} (pre-training seeds {', '.join(map(str, seeds))})"
