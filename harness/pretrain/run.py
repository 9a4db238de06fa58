"""`pretrain(recipe, corpus, out)`: chain a recipe's iterations; every stage idempotent and resumable.

Run folder:
    out/recipe.json                     resolved recipe, its hash + corpus (a re-run must match it)
    out/iter{k}/features/{train,dev}    feature shards (dump.py)
    out/iter{k}/clusters/{stream}       centroids.npy (k-means) or index.faiss (cluster.method ivf)
                                        + done.json (k, inertia, points, seconds)
    out/iter{k}/labels/{stream}/{split} label shards at the model's frame rate (labels.py) +
                                        done.json (PNMI, purity)
    out/iter{k}/train                   checkpoint.pt, log.jsonl, done.json (loop.py, checkpoint.py)
    out/iter{k}/exports/step{NNNNNN}    with export_every N: the weights after every N updates before
                                        the last, exported like `upstream` (named "<recipe>-it<k>-
                                        step<NNNNNN>"; its upstream.json's pretraining record holds
                                        step and train_seconds): the points of a learning curve
    out/iter{k}/upstream                upstream.safetensors + upstream.json (upstreams/base.py,
                                        keyed by family), named "<recipe>-it<k>"; `harness eval
                                        --upstream` loads it
    out/iter{k}/curves.png              accuracy and loss against the step (training log, held-out)
    out/iter{k}/summary.json            stage times, masked accuracies, label quality and codebook
                                        usage per split, the machine (harness.environment) of the
                                        process that finished it
The stages talk to a model family (upstreams/base.py) and an objective (objectives/), so a new
method is a family and/or objective file plus a recipe. An iteration with `continue` (a second
stage, WavLabLM) has no features, clusters or labels of its own: it trains from the previous
iteration's model on the previous iteration's labels; nor has an iteration whose objective
needs no labels (data2vec: its targets come from an EMA teacher). A stage whose done marker
exists is skipped; a killed stage restarts (training from its last checkpoint, dumping and labelling shard
by shard). Under torchrun every rank calls `pretrain`: dumping and labelling are sharded by
rank, clustering runs on rank 0, training uses DDP.

This module chains the stages; the utterances come from utterances.py, recipe.json's check and the
reuse of another folder's iterations from run_folder.py, stages 1-3 from label_stages.py, training
from loop.py, the exports and their provenance from export.py.
"""


from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from harness.config import check_count
from harness.data.corpora import load_corpus
from harness.data.corpus import Utterance
from harness.environment import environment
from harness.errors import HarnessError
from harness.pretrain import checkpoint, dump, loop
from harness.pretrain.batches import Item
from harness.pretrain.distributed import Dist, barrier, init_distributed
from harness.pretrain.export import export_iteration, export_step, provenance, step_export_folder
from harness.pretrain.label_stages import features_clusters_labels, label_iteration_root
from harness.pretrain.quality import codebook_usage
from harness.pretrain.recipe import IterationConfig, Recipe
from harness.pretrain.recipe_load import load_recipe
from harness.pretrain.run_folder import check_run_folder, run_identity
from harness.pretrain.utterances import SPLITS, noise_clips, select_utterances
from harness.results import atomic_write_json, now_iso


def pretrain(recipe: Union[str, Path], corpus: str, out: Path, log: Callable[[str], None] = print,
             iterations: Optional[int] = None, noise: Optional[str] = None, overrides: Sequence[str] = (),
             export_every: int = 0, pretrain_seed: int = 0) -> Path:
    """Run (or resume) every iteration of `recipe` on `corpus` in folder `out`; returns the last
    iteration's exported upstream folder. `iterations` stops after that many iterations; `noise`
    is a folder of noise clips for objectives that mix in noise (default: the corpus's noise
    subset); `export_every` N > 0 also exports the weights every N updates of each iteration's
    training to out/iter{k}/exports/step{NNNNNN} (not part of the recipe: the weights do not
    change); `pretrain_seed` s > 0 runs the recipe from other seeds, named "<recipe>-s<s>"
    (harness.pretrain.seeds; out is the caller's, e.g. seeds.pretrain_folder)."""
    if iterations is not None:
        check_count("iterations", iterations)
    if export_every < 0:
        raise HarnessError(f"export_every {export_every}: must be >= 0 (0 = no step exports)")
    rec = load_recipe(recipe, overrides, pretrain_seed)
    out = Path(out)
    d = init_distributed(rec.iterations[0].train.device)
    c = load_corpus(corpus)
    utts = {s: select_utterances(c, rec.data, getattr(rec.data, f"{s}_split")) for s in SPLITS}
    if not utts["train"]:
        raise HarnessError(f"corpus {corpus}: no utterances in split {rec.data.train_split!r}"
                           f" (subset {rec.data.subset!r})")
    noise_files = noise_clips(c, noise, rec.data.train_split)
    for k, it in enumerate(rec.iterations, 1):
        obj = it.make_objective()
        if obj.needs_noise and not noise_files:
            raise HarnessError(f"iteration {k} ({obj.name}) mixes in noise, but corpus {corpus} has no noise "
                               "subset: pass --noise DIR (a folder of wav/flac noise clips)")
    ident = run_identity(rec, corpus, utts)
    if d.is_main:
        check_run_folder(out, ident, rec)
    barrier(d)
    n_iter = len(rec.iterations) if iterations is None else max(1, min(iterations, len(rec.iterations)))
    upstream = None
    for k in range(1, n_iter + 1):
        it_utts = {**utts, "train": select_utterances(c, rec.iterations[k - 1].data, rec.data.train_split)}
        upstream = run_iteration(rec, k, it_utts, out, d, log, noise_files, export_every)
    return upstream


def run_iteration(rec: Recipe, k: int, utts: Dict[str, List[Utterance]], out: Path, d: Dist,
                  log: Callable[[str], None] = print, noise_files: List[str] = (), export_every: int = 0) -> Path:
    """All stages of iteration k (1-based); returns its upstream folder. `export_every`: see
    `pretrain`."""
    it: IterationConfig = rec.iterations[k - 1]
    root = out / f"iter{k}"
    name = rec.iteration_name(k)
    objective = it.make_objective()
    streams = objective.label_streams(it.cluster.k)
    times: Dict[str, float] = {}
    say = log if d.is_main else (lambda *_: None)
    source = "mfcc" if it.features.source == "mfcc" else f"layer {it.features.layer} of iteration {k - 1}"
    what = (f"continues iteration {k - 1} on its labels" if it.continue_previous else
            "no labels" if not objective.needs_labels else
            f"features {source}"
            f", {'faiss IVF' if it.cluster.method == 'ivf' else 'k-means'} K = {it.cluster.k}"
            f"{', encoder warm-started from iteration %d' % (k - 1) if it.warm_start else ''}")
    say(f"== {name}: {it.family} {it.model.encoder_layers} x {it.model.encoder_dim}, objective {it.objective}, "
        f"{what}, {it.train.steps} steps on {len(utts['train'])} utterances")

    if it.continue_previous:
        label_root = label_iteration_root(rec, k, out)
    else:
        label_root = root
        if streams:
            features_clusters_labels(rec, it, k, utts, out, root, streams, d, say, times)

    # 4. training (from scratch, or from the previous iteration's model)
    min_samples = int(rec.data.min_seconds * dump.SAMPLE_RATE)
    items = [Item.from_utterance(u) for u in utts["train"]]
    kept = [x for x in items if x.num_samples >= min_samples]
    if len(kept) < len(items):
        say(f"training on {len(kept)} of {len(items)} utterances (dropped {len(items) - len(kept)} "
            f"shorter than {rec.data.min_seconds} s)")
    dev_items = [Item.from_utterance(u) for u in utts["dev"]]
    if it.train.dev_max_utterances:
        dev_items = dev_items[: it.train.dev_max_utterances]
    init = checkpoint.final_model_state(out / f"iter{k - 1}" / "train") if it.continue_previous or it.warm_start else None
    if it.warm_start:  # the encoder only: the heads belong to the previous labels
        init = {key: v for key, v in init.items() if key.startswith("encoder.")}

    def export_at(step: int, seconds: float, encoder: torch.nn.Module) -> None:
        export_step(encoder, rec, k, kept, out, step, seconds)

    tr = loop.train(it.train, it.family, it.model, objective, streams, kept,
                    {s.name: label_root / "labels" / s.name / "train" for s in streams}, root / "train",
                    dev_items, {s.name: label_root / "labels" / s.name / "dev" for s in streams} if dev_items and streams else None,
                    init_state=init, noise_files=noise_files if objective.needs_noise else (), log=log, desc=name,
                    export_every=export_every, export=export_at)
    wanted = range(export_every, it.train.steps, export_every) if export_every else ()
    missing = [s for s in wanted if not (step_export_folder(root, s) / "upstream.json").is_file()]
    if missing:  # trained before --export-every was given: those weights are gone
        say(f"{name}: no step export of step(s) {', '.join(map(str, missing))} (trained before export_every "
            f"{export_every} was asked for; delete {root / 'train'} to retrain with them)")
    times["train"] = tr["train_seconds"] + tr.get("dev_eval_seconds", 0.0)

    # 5. export
    up = root / "upstream"
    if d.is_main and not (up / "upstream.json").is_file():
        t0 = time.perf_counter()
        pre = provenance(rec, k, kept, out, train_seconds=tr["train_seconds"])
        export_iteration(root / "train", it, up, name, pretraining=pre)
        times["export"] = time.perf_counter() - t0
    barrier(d)
    if d.is_main:
        summary = _summary(rec, k, root, label_root, streams[0].name if streams else None, times, tr, up, name)
        atomic_write_json(root / "summary.json", summary)
        _curves(root, tr, summary)
        maj = summary["masked_acc"]["majority_label"]
        if not streams:
            say(f"== {name}: done in {summary['total_seconds']:.0f} s; train loss {tr.get('train_loss', float('nan')):.4f}; "
                f"upstream {up}")
        else:
            say(f"== {name}: done in {summary['total_seconds']:.0f} s; masked acc train {tr.get('train_masked_acc', float('nan')):.3f}, "
                f"held-out {tr.get('dev_masked_acc', float('nan')):.3f} (chance 1/K {1 / streams[0].k:.3f}"
                f"{'' if maj is None else f', majority label {maj:.3f}'}); upstream {up}")
    barrier(d)
    return up


def _curves(root: Path, tr: dict, summary: dict) -> None:
    """iter{k}/curves.png: the training log's accuracy and loss against the step, with the
    held-out evaluation at the last step."""
    from harness import plots

    log_path = root / "train" / checkpoint.LOG
    if not log_path.is_file():
        return
    history = [json.loads(ln) for ln in log_path.read_text().splitlines() if ln.strip()]
    held = {k: tr[f"dev_{k}"] for k in ("masked_acc", "unmasked_acc", "masked_ce") if f"dev_{k}" in tr}
    plots.training_curves(history, {**held, "step": tr["steps"]} if held else {}, root / "curves.png",
                          title=summary["name"], chance=summary["masked_acc"]["chance"])


def _summary(rec: Recipe, k: int, root: Path, label_root: Path, stream: Optional[str], times: Dict[str, float],
             tr: dict, up: Path, name: str) -> dict:
    """summary.json of iteration k; `stream`: the first label stream (None for an objective
    without labels: no features, clustering, label quality or accuracies)."""
    it = rec.iterations[k - 1]
    labels = label_root / "labels" / (stream or "")
    quality = {}
    for split in SPLITS if stream else ():
        p = labels / split / "done.json"
        if p.is_file():
            dd = json.loads(p.read_text())
            quality[split] = {**dd["quality"], **codebook_usage(dd["counts"])}
    cl = json.loads((label_root / "clusters" / stream / "done.json").read_text()) if stream else None
    # accuracy of always answering the most frequent train label: what "learned only the prior" scores
    majority = None
    ctr, cdev = labels / "train" / "done.json", labels / "dev" / "done.json"
    if stream and ctr.is_file() and cdev.is_file():
        top = int(np.argmax(json.loads(ctr.read_text())["counts"]))
        dev_counts = json.loads(cdev.read_text())["counts"]
        majority = dev_counts[top] / max(1, sum(dev_counts))
    return {
        "name": name, "iteration": k, "recipe": rec.name, "upstream": str(up), "family": it.family,
        "objective": it.objective, "continues": k - 1 if it.continue_previous else None,
        "labels": str(labels) if stream else None,
        "features": {"source": it.features.source, "layer": it.features.layer if it.features.source == "layer" else None}
        if stream else None,
        "k": cl["k"] if cl else None, "clustering": cl,
        "times_s": times, "total_seconds": float(sum(times.values())),
        "train": tr,
        "masked_acc": {"train": tr.get("train_masked_acc"), "dev": tr.get("dev_masked_acc"), "chance": 1 / cl["k"] if cl else None,
                       "majority_label": majority},
        "unmasked_acc": {"train": tr.get("train_unmasked_acc"), "dev": tr.get("dev_unmasked_acc")},
        "label_quality": quality,
        "environment": environment(),  # which CPU / threads / kernels made these weights
        "finished_at": now_iso(),
    }
