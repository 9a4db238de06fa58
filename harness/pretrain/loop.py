"""The pre-training loop: model, optimiser, steps, held-out accuracy, and its SPEC.json entry point.

It knows a model family (upstreams/base.py: the encoder, its frame stride and receptive field)
and an objective (harness/pretrain/objectives: label streams, model with heads and loss, batch
transform, per-update hook), never a particular method. Its data come from batches.py (one
global batch per step, identical on every rank), its files (checkpoint, log, done marker) from
checkpoint.py, its processes and devices from distributed.py.

Loss. The objective's summed loss (masked cross-entropy + feature penalty term for HuBERT),
divided by the GLOBAL number of masked frames with a label (all-reduced before the forward
pass; of masked frames for an objective without labels, e.g. data2vec); under DDP the loss is
multiplied by the world size since DDP averages gradients. Adam(0.9, 0.98, eps 1e-6) with
decoupled weight decay (AdamW) on the parameters that require a gradient, linear warm-up then
linear decay to 0, grad-norm clipping; a step whose grad norm is not finite is skipped
(counted). After every update the objective's `after_step` runs (data2vec's EMA teacher
update). bf16 autocast on GPUs that support it, fp32 on the CPU, or the faster of the two
measured on the machine (harness.pretrain.precision).

Resume: re-running restores model, optimiser, scheduler, step, log window and the RNG states of
every rank from the checkpoint and gives the same weights as an uninterrupted run (CPU, same seed).

Distributed: DDP uses find_unused_parameters when LayerDrop is on or the objective may leave
parameters unused (MS-HuBERT's dropped label sets). The model gets the step index, so that an
objective drawing per step (which label sets to drop) draws the same on every rank and in a
resumed run.

Entry point for tests and tools: `python -m harness.pretrain.loop SPEC.json` (see `main`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from harness.audio import load_audio
from harness.errors import HarnessError
from harness.pretrain.batches import SAMPLE_RATE, Item, StepBatches, derive_seed
from harness.pretrain.checkpoint import (CHECKPOINT, DONE, LOG, load_checkpoint, rng_state, save_checkpoint,
                                         set_rng_state, truncate_log)
from harness.pretrain.distributed import Dist, all_reduce_sum, barrier, gather_objects, init_distributed, resolve_device
from harness.pretrain.labels import LabelStore, fit_to_audio
from harness.pretrain.model import compute_mask
from harness.pretrain.precision import resolve_precision
from harness.pretrain.objectives.base import LabelStream, Objective
from harness.pretrain.recipe import TrainConfig
from harness.progress import progress_bar
from harness.results import atomic_write_json
from upstreams.base import get_family


# ----------------------------------------------------------------------------- optimiser


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig):
    """AdamW (decoupled weight decay on every parameter, as fairseq's Adam) + linear warm-up /
    linear decay to 0 (fairseq polynomial_decay, power 1). The fused kernel: on the CPU the default
    per-parameter loop took 3.9 ms per update for hubert_tiny's 83 tensors and 12.5 ms for
    hubert_small's 106, the fused one 1.3 and 5.1 ms (same update, one pass over each tensor)."""
    # parameters that do not train (data2vec's EMA teacher) stay out: weight decay would move them
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, betas=tuple(cfg.betas),
                            eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True)
    warm = int(cfg.warmup_frac * cfg.steps)
    total = cfg.steps

    def factor(step: int) -> float:  # `step` = updates done so far
        if warm > 0 and step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ----------------------------------------------------------------------------- held-out accuracy


@torch.no_grad()
def evaluate_masked(model: torch.nn.Module, items: Sequence[Item], labels: Dict[str, LabelStore], cfg: TrainConfig,
                    device: str, d: Dist = Dist()) -> Dict[str, float]:
    """Masked / unmasked accuracy (first label stream) and masked CE (all streams) on held-out
    utterances: each whole, clean utterance, masked as in training with a generator seeded by
    (seed, utterance index); sharded by rank."""
    was = model.training
    model.eval()
    acc = torch.zeros(5, dtype=torch.float64)  # ce, n_m, c_m, n_u, c_u
    for i in range(d.rank, len(items), d.world):
        it = items[i]
        wav = load_audio(it.path, offset=it.offset, duration=it.num_samples / SAMPLE_RATE)
        labs = {k: torch.from_numpy(fit_to_audio(it.id, st.get(it.id), wav.numel(), model.config))[None].to(device)
                for k, st in labels.items()}
        T = next(iter(labs.values())).shape[1]
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, 104729, i))
        mask = compute_mask(1, T, cfg.mask_prob, cfg.mask_length, cfg.min_masks, generator=g)
        out = model(wav[None].to(device), labs, mask.to(device))
        acc += torch.tensor([float(out["ce"]), float(out["n_masked"]), float(out["correct_masked"]),
                             float(out["n_unmasked"]), float(out["correct_unmasked"])], dtype=torch.float64)
    acc = all_reduce_sum(acc.to(device), d).cpu() if d.world > 1 else acc
    model.train(was)
    ce, nm, cm, nu, cu = acc.tolist()
    return {"masked_acc": cm / max(nm, 1), "unmasked_acc": cu / max(nu, 1), "masked_ce": ce / max(nm, 1),
            "masked_frames": int(nm), "utterances": len(items)}


# ----------------------------------------------------------------------------- the loop


def train(cfg: TrainConfig, family: str, model_cfg: Any, objective: Objective, streams: Sequence[LabelStream],
          items: Sequence[Item], labels_dirs: Dict[str, Path], out_dir: Path, dev_items: Sequence[Item] = (),
          dev_labels_dirs: Optional[Dict[str, Path]] = None, init_state: Optional[Dict[str, Tensor]] = None,
          noise_files: Sequence[str] = (), log: Callable[[str], None] = print, desc: str = "pretrain",
          export_every: int = 0, export: Optional[Callable[[int, float, torch.nn.Module], None]] = None) -> dict:
    """Train (or resume, or return the summary of a finished run in `out_dir`).

    Args:
        cfg: training config; family / model_cfg: the network (upstreams/<family>.py).
        objective: heads, loss and batch transform; streams: its label streams.
        items / labels_dirs: training utterances and stream name -> label folder.
        dev_items / dev_labels_dirs: held-out utterances for masked accuracy.
        init_state: model state to start from instead of a fresh init; every encoder weight must be
            in it, heads missing from it keep their fresh init (a stage that continues the
            previous one, or a warm start); ignored when resuming from this stage's own checkpoint.
        noise_files: noise clips for objectives that mix in noise.
        export_every / export: every `export_every` updates before the last (0 = never), rank 0
            calls export(step, train_seconds, encoder) with the live encoder, before that step's
            checkpoint (a resumed run redoes every export after its checkpoint, so none is lost);
            it must draw no random number. Its time is not counted in train_seconds.

    Returns the summary: steps, seconds, audio_seconds, train masked/unmasked accuracy over the
    last log window, held-out (dev) accuracy, nan_steps (loss only for an objective without
    labels: `streams` empty, no held-out evaluation)."""
    out_dir = Path(out_dir)
    if (out_dir / DONE).is_file():
        return json.loads((out_dir / DONE).read_text())
    d = init_distributed(cfg.device)
    device = resolve_device(cfg.device)
    if device == "cuda":
        device = f"cuda:{d.local_rank}"
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if d.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
    barrier(d)

    # model, optimiser, schedule: identical on every rank (same seed; DDP also broadcasts rank 0's)
    labelled = bool(streams)  # False: an objective without labels (loss and counts only)
    num_classes = streams[0].k if labelled else None
    torch.manual_seed(cfg.seed)
    model = objective.build_model(get_family(family).encoder_cls(model_cfg), streams, cfg)
    if init_state is not None:
        res = model.load_state_dict(init_state, strict=False)
        if res.unexpected_keys or any(key.startswith("encoder.") for key in res.missing_keys):
            raise HarnessError(f"{out_dir}: the initial state does not fit the model: missing "
                               f"{res.missing_keys[:5]}, unexpected {res.unexpected_keys[:5]}")
    model = model.to(device)
    dtype, precision = resolve_precision(cfg.precision, device, model.encoder, min(cfg.batch_samples, cfg.max_sample_size),
                                         out_dir, d.is_main, lambda rec: gather_objects(rec, d)[0], log)
    opt, sched = build_optimizer(model, cfg)
    start, history, nan_steps, elapsed, audio_total = 0, [], 0, 0.0, 0.0
    window0 = torch.zeros(7, dtype=torch.float64)  # loss, ce, n_m, c_m, n_u, c_u (sums), steps
    ck = load_checkpoint(out_dir / CHECKPOINT)
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start, history, nan_steps = ck["step"], ck["history"], ck["nan_steps"]
        elapsed, audio_total = ck["elapsed_s"], ck["audio_s"]
        window0 = ck["log_window"]
        states = ck["rng"]
        if len(states) == d.world:
            set_rng_state(states[d.rank])
        else:
            torch.manual_seed(derive_seed(cfg.seed, start, d.rank))
        if d.is_main:
            log(f"{desc}: resuming at step {start} / {cfg.steps} (epoch {ck['epoch']}, batch {ck['batch_index']})")
            truncate_log(out_dir / LOG, start)
    else:
        torch.manual_seed(derive_seed(cfg.seed, 0, d.rank))  # dropout / LayerDrop stream of this rank
    ddp = model
    if d.world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.local_rank] if device.startswith("cuda") else None,
            find_unused_parameters=model_cfg.layerdrop > 0 or objective.skips_parameters)

    data = StepBatches(items, labels_dirs, cfg, model_cfg, objective, noise_files, d.rank, d.world)
    loader = torch.utils.data.DataLoader(
        data, sampler=range(start, cfg.steps), batch_size=None, num_workers=cfg.num_workers,
        generator=torch.Generator(), persistent_workers=False, pin_memory=device.startswith("cuda"),
        prefetch_factor=2 if cfg.num_workers else None)
    model.train()
    window = window0.clone()  # sums since the last log line (restored on resume: identical logs)
    t_last = time.perf_counter()
    with progress_bar(desc, cfg.steps, "steps", status=True) as bar:
        bar.advance(start)
        for batch in loader:
            step = int(batch["step"])
            t0 = time.perf_counter()
            wavs, mask = (batch[k].to(device, non_blocking=True) for k in ("wavs", "mask"))
            labels = {k: v.to(device, non_blocking=True) for k, v in batch["labels"].items()}
            n_local = (((labels[streams[0].name] >= 0) & mask) if labelled else mask).sum().to(torch.float64)
            n_global = float(all_reduce_sum(n_local.clone(), d))
            if n_global == 0:
                raise HarnessError(f"step {step}: no masked frame{' with a label' if labelled else ''} in the global batch")
            stats = torch.zeros(6, dtype=torch.float64, device=device)
            for a in range(cfg.grad_accum):
                ctx = ddp.no_sync() if (d.world > 1 and a < cfg.grad_accum - 1) else _null()
                with ctx, torch.autocast(device_type=device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                    out = ddp(wavs[a], {k: v[a] for k, v in labels.items()}, mask[a], step=step)
                    loss = out["loss"] * (d.world / n_global)
                loss.backward()
                stats += torch.stack([out["loss"].detach().double(), out["ce"].double(), out["n_masked"].double(),
                                      out["correct_masked"].double(), out["n_unmasked"].double(),
                                      out["correct_unmasked"].double()])
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            if torch.isfinite(gnorm):
                opt.step()
            else:
                nan_steps += 1
            opt.zero_grad(set_to_none=True)
            sched.step()
            objective.after_step(model, step + 1, cfg.steps)
            stats = all_reduce_sum(stats, d).cpu()
            dt = time.perf_counter() - t0
            audio = float(batch["global_items"]) * float(batch["crop"]) / SAMPLE_RATE
            elapsed += time.perf_counter() - t_last
            t_last = time.perf_counter()
            audio_total += audio
            window += torch.cat([stats, torch.ones(1, dtype=torch.float64)])
            loss_s, acc_m = float(stats[0] / max(stats[2], 1)), float(stats[3] / max(stats[2], 1))
            shown = f"loss {loss_s:.3f}  acc_m {acc_m:.3f}" if labelled else f"loss {loss_s:.3f}"
            bar.advance(1, status=f"{shown}  {audio / max(dt, 1e-9):.0f} s/s")
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                w = window
                nm = max(float(w[2]), 1.0)
                rec = {"step": done, "loss": float(w[0]) / nm, "masked_ce": float(w[1]) / nm,
                       "masked_acc": float(w[3]) / nm, "unmasked_acc": float(w[5]) / max(float(w[4]), 1.0),
                       "lr": sched.get_last_lr()[0],
                       "grad_norm": float(gnorm), "audio_s_per_s": audio_total / max(elapsed, 1e-9),
                       "elapsed_s": elapsed, "epoch": int(batch["epoch"])}
                if not labelled:  # no classes: accuracies and cross-entropy mean nothing
                    rec = {k: v for k, v in rec.items() if k not in ("masked_ce", "masked_acc", "unmasked_acc")}
                history.append(rec)
                window.zero_()
                if d.is_main:
                    with open(out_dir / LOG, "a") as f:
                        f.write(json.dumps(rec) + "\n")
                    eta = elapsed / max(done - start, 1) * (cfg.steps - done) if done > start else 0.0
                    acc = (f" (ce {rec['masked_ce']:.3f})  masked acc {rec['masked_acc']:.3f}  "
                           f"unmasked acc {rec['unmasked_acc']:.3f}" if labelled else "")
                    log(f"{desc} step {done}/{cfg.steps}  loss {rec['loss']:.3f}{acc}  lr {rec['lr']:.2e}  "
                        f"{rec['audio_s_per_s']:.0f} s audio/s  ETA {eta:.0f} s")
            if export is not None and export_every and done % export_every == 0 and done < cfg.steps:
                if d.is_main:
                    export(done, elapsed, model.encoder)
                t_last = time.perf_counter()  # the export's time is not training time
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                rng = gather_objects(rng_state(), d)
                if d.is_main:
                    save_checkpoint(out_dir / CHECKPOINT, {
                        "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "step": done, "epoch": int(batch["epoch"]),
                        "batch_index": int(batch["batch_index"]), "rng": rng, "history": history,
                        "nan_steps": nan_steps, "elapsed_s": elapsed, "audio_s": audio_total,
                        "log_window": window.clone(),
                        "family": family, "objective": objective.name,
                        "streams": [asdict(st) for st in streams], "num_classes": num_classes,
                        "model_config": model_cfg.to_dict(), "train_config": asdict(cfg)})
                barrier(d)

    summary = {"steps": cfg.steps, "train_seconds": elapsed, "audio_seconds": audio_total,
               "audio_s_per_s": audio_total / max(elapsed, 1e-9), "nan_steps": nan_steps,
               "world_size": d.world, "device": device, **precision}
    if history and labelled:
        summary.update(train_masked_acc=history[-1]["masked_acc"], train_unmasked_acc=history[-1]["unmasked_acc"],
                       train_loss=history[-1]["loss"], train_masked_ce=history[-1]["masked_ce"])
    elif history:
        summary.update(train_loss=history[-1]["loss"])
    if dev_items and dev_labels_dirs and labelled:
        t0 = time.perf_counter()
        dev = evaluate_masked(model, dev_items, {k: LabelStore(v) for k, v in dev_labels_dirs.items()}, cfg, device, d)
        summary.update({f"dev_{k}": v for k, v in dev.items()}, dev_eval_seconds=time.perf_counter() - t0)
        if d.is_main:
            log(f"{desc}: held-out masked acc {dev['masked_acc']:.3f} (unmasked {dev['unmasked_acc']:.3f}) "
                f"on {dev['utterances']} utterances; chance 1/K = {1 / num_classes:.3f}")
    if labelled:
        summary["chance_acc"] = 1.0 / num_classes
    if d.is_main:
        atomic_write_json(out_dir / DONE, summary)
    barrier(d)
    return summary


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


# ----------------------------------------------------------------------------- entry point


def main(argv: Optional[List[str]] = None) -> int:
    """python -m harness.pretrain.loop SPEC.json: run `train` from a JSON spec with keys
    train (TrainConfig keys), family (default "hubert"), model (that family's config dict),
    objective ({name, ...options}, default masked_prediction), num_classes, items ([{id, path,
    offset, num_samples}]), labels_dir, out_dir, optional dev_items, dev_labels_dir, noise_files,
    threads (num_classes and labels_dir only for an objective with labels). A labels folder
    holds the labels of the objective's one stream, or one sub-folder per stream (named as the
    stream) when it has several. Works under torchrun (one process per rank)."""
    import sys

    from harness.config import merge

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.pretrain.loop SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    from harness.pretrain.objectives import get_objective

    cfg = merge(TrainConfig(), spec["train"], where="train.")
    family = spec.get("family", "hubert")
    model_cfg = get_family(family).config_cls.from_dict(spec["model"])
    obj_spec = dict(spec.get("objective") or {})
    objective = get_objective(obj_spec.pop("name", "masked_prediction")).from_dict(obj_spec)
    streams = objective.label_streams(int(spec.get("num_classes", 0)))
    items = [Item(**it) for it in spec["items"]]
    dev = [Item(**it) for it in spec.get("dev_items", [])]

    def dirs(root: str) -> Dict[str, Path]:
        return {streams[0].name: Path(root)} if len(streams) == 1 else {s.name: Path(root) / s.name for s in streams}

    dev_dirs = dirs(spec["dev_labels_dir"]) if spec.get("dev_labels_dir") and streams else None
    train(cfg, family, model_cfg, objective, streams, items, dirs(spec["labels_dir"]) if streams else {},
          Path(spec["out_dir"]), dev, dev_dirs, noise_files=spec.get("noise_files", ()))
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
