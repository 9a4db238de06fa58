"""The probe loop: a frozen upstream's cached layers -> WeightedSum -> task head.

Read top to bottom: `train_probe` trains one (lr, seed) probe, evaluates on dev every
`eval_every` updates, keeps the dev-best weights (ties: the task's secondary metric, then the later
step) and scores them on test (docs/protocol.md section 2). A probe whose dev metric never beats the task's
trivial answer (an empty transcript, the majority class, all silence, the mixture) is marked
`learned_nothing`. A transcription probe also saves the length of each test output against its
reference (`extra["test_output_tokens"]`): a probe that beat the empty answer on dev may still
emit next to nothing on test (the CTC blank plateau), and the board flags that from these counts.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from harness.batches import Prefetcher, eval_batches, to_probe
from harness.config import ProbeConfig
from harness.featurizer import WeightedSum, corrected_contributions
from harness.features import FeatureSource
from harness.progress import progress_bar
from tasks.base import Batch, Splits, Task
from tasks.heads import init_seed
from upstreams.base import UpstreamSpec

EVAL_BATCH_SECONDS = 120.0


@dataclass
class ProbeOutcome:
    """What one probe run produced (all plain values, ready for result.json)."""

    dev: Dict[str, float]
    test: Dict[str, float]
    best_step: int
    layer_weights: Dict[str, List[float]]
    extra: Dict[str, Any]
    train_s: float
    nan_steps: int
    history: List[Dict[str, float]] = field(default_factory=list)
    #: the trivial answer's dev primary metric (Task.trivial_preds scored on dev; None: the task has none)
    trivial_dev: Optional[float] = None
    #: no dev evaluation beat trivial_dev (None when there is no trivial answer)
    learned_nothing: Optional[bool] = None


class TrainSampler:
    """Endless training batches of about `batch_seconds` of audio (uniform shuffling, or
    weighted sampling with replacement when the task asks for it), with random frame crops."""

    def __init__(self, source: FeatureSource, frame_rate: float, cfg: ProbeConfig,
                 weights: Optional[List[float]], seed: int):
        self.source, self.cfg, self.weights = source, cfg, weights
        self.rng = random.Random(seed)
        self.frames = {i: source.frames(i) for i in source.ids}
        self.crop = cfg.crop_frames or (int(round(cfg.crop_seconds * frame_rate)) if cfg.crop_seconds > 0 else 0)
        self.frame_rate = frame_rate
        self._order: List[str] = []

    def _next_id(self) -> str:
        if self.weights is not None:
            return self.rng.choices(self.source.ids, weights=self.weights, k=1)[0]
        if not self._order:
            self._order = list(self.source.ids)
            self.rng.shuffle(self._order)
        return self._order.pop()

    def next(self):
        ids, crops, longest = [], [], 0
        while len(ids) < self.cfg.max_batch_items:
            uid = self._next_id()
            n = self.frames[uid]
            if self.crop and n > self.crop:
                start, n = self.rng.randrange(0, self.frames[uid] - self.crop + 1), self.crop
            else:
                start = 0
            if ids and max(longest, n) * (len(ids) + 1) / self.frame_rate > self.cfg.batch_seconds:
                if self.weights is None:
                    self._order.append(uid)  # keep it for the next batch
                break
            ids.append(uid)
            crops.append((start, n))
            longest = max(longest, n)
        return ids, crops


def _batches_for_eval(source: FeatureSource, frame_rate: float):
    order = sorted(source.ids, key=lambda i: (source.frames(i), i))
    cur, longest = [], 0
    for uid in order:
        n = source.frames(uid)
        if cur and max(longest, n) * (len(cur) + 1) / frame_rate > EVAL_BATCH_SECONDS:
            yield cur
            cur, longest = [], 0
        cur.append(uid)
        longest = max(longest, n)
    if cur:
        yield cur


@torch.no_grad()
def evaluate_split(task: Task, featurizer: WeightedSum, head: torch.nn.Module, source: FeatureSource,
                   refs: Dict[str, Any], info: Dict[str, Any], split: str, frame_rate: float,
                   layer_norms: Optional[List[float]] = None):
    """Decode every item of a split and score it. If `layer_norms` is a list, fill it with each
    layer's mean frame L2 norm over the split (docs/protocol.md section 5)."""
    featurizer.eval()
    head.eval()
    preds: Dict[str, Any] = {}
    norm_sum, norm_cnt = None, 0
    for ids, layers, lengths in eval_batches(source, list(_batches_for_eval(source, frame_rate))):
        if layer_norms is not None:
            mask = torch.arange(layers.shape[2], device=layers.device)[None, :] < lengths[:, None]  # (B, T)
            norms = layers.norm(dim=-1)  # (L+1, B, T)
            s = (norms * mask).sum(dim=(1, 2))
            norm_sum = s if norm_sum is None else norm_sum + s
            norm_cnt += int(mask.sum())
        out = head(featurizer(layers), lengths)
        batch = Batch(ids, lengths, task.collate([refs[i] for i in ids]))
        preds.update(zip(ids, task.decode(out, batch)))
    if layer_norms is not None and norm_sum is not None:
        layer_norms[:] = (norm_sum / max(norm_cnt, 1)).tolist()
    kept = {i: refs[i] for i in source.ids}
    return task.score(preds, kept, info, split), preds


@torch.no_grad()
def dev_loss(task: Task, featurizer: WeightedSum, head: torch.nn.Module, source: FeatureSource,
             refs: Dict[str, Any], info: Dict[str, Any], frame_rate: float) -> float:
    """The task's training loss on whole dev utterances in eval mode, averaged over batches
    weighted by their items (the validation loss that picks checkpoints to average)."""
    featurizer.eval()
    head.eval()
    total, n = 0.0, 0
    for ids, layers, lengths in eval_batches(source, list(_batches_for_eval(source, frame_rate))):
        out = head(featurizer(layers), lengths)
        total += float(task.loss(out, Batch(ids, lengths, task.collate([refs[i] for i in ids])))) * len(ids)
        n += len(ids)
    return total / max(n, 1)


def average_states(states: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """The element-wise mean of state dicts (integer buffers: the first one's)."""
    return {k: torch.stack([s[k] for s in states]).mean(0) if states[0][k].is_floating_point() else states[0][k]
            for k in states[0]}


def build_probe(task: Task, spec: UpstreamSpec, cfg: ProbeConfig, info: Dict[str, Any], device):
    """The WeightedSum and the task's head, initialised on the CPU (the same values on every
    device for one seed) and then moved to `device`."""
    featurizer = WeightedSum(spec.num_layers, layer_norm=cfg.layer_norm)
    head = task.build_head(spec.hidden_size, spec.frame_rate_hz, info, cfg)
    return featurizer.to(device), head.to(device)


def train_probe(task: Task, splits: Splits, sources: Dict[str, FeatureSource], spec: UpstreamSpec,
                cfg: ProbeConfig, lr: float, log: Callable[[str], None] = print,
                desc: str = "probe") -> ProbeOutcome:
    """Train WeightedSum + head with one learning rate; score dev-best on test.

    Everything runs on the train source's device (`--device`): the modules, the batches (sent
    from a prefetching host thread, padded and cast there), the losses and the dev and test
    evaluations; only decoded outputs come back to the host."""
    if cfg.average_best < 1:
        from harness.errors import ConfigError

        raise ConfigError(f"config key 'average_best' must be at least 1, got {cfg.average_best}")
    init_seed(cfg.seed)
    info = splits.info
    device = torch.device(sources["train"].device)
    featurizer, head = build_probe(task, spec, cfg, info, device)
    params = list(featurizer.parameters()) + list(head.parameters())
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)

    refs = {u.id: task.target(u, info) for part in splits.as_dict().values() for u in part}
    train_src = sources["train"]
    weights = None
    w_all = task.sample_weights(splits.train, info)
    if w_all is not None:
        by_id = dict(zip((u.id for u in splits.train), w_all))
        weights = [by_id[i] for i in train_src.ids]
    sampler = TrainSampler(train_src, spec.frame_rate_hz, cfg, weights, seed=cfg.seed)

    dev_refs = {i: refs[i] for i in sources["dev"].ids}
    trivial_dev = trivial_score(task, dev_refs, info, "dev")
    best_key, best_state, best_step, best_dev = None, None, 0, {}
    nbest: List[tuple] = []  # (dev loss, step, state) of the lowest dev losses (cfg.average_best)
    history, nan_steps, t0 = [], 0, time.time()
    running = None
    with progress_bar(desc, total=cfg.steps, unit="steps", status=True) as bar, \
            Prefetcher(train_src, sampler.next) as batches:
        for step in range(1, cfg.steps + 1):
            featurizer.train()
            head.train()
            for _ in range(cfg.grad_accum):
                ids, crops, hb = batches.next()
                layers, lengths = to_probe(train_src, ids, crops, hb)
                out = head(featurizer(layers), lengths)
                batch = Batch(ids, lengths, task.collate([refs[i] for i in ids]), crops=crops)
                loss = task.loss(out, batch) / cfg.grad_accum
                loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if not math.isfinite(float(gnorm)):
                nan_steps += 1  # docs/protocol.md section 2: skip the update, count it
                opt.zero_grad(set_to_none=True)
                continue
            opt.step()
            opt.zero_grad(set_to_none=True)
            lv = float(loss.detach()) * cfg.grad_accum
            running = lv if running is None else 0.95 * running + 0.05 * lv
            bar.advance(1, status=f"loss {running:.3f}")
            if step % cfg.eval_every == 0 or step == cfg.steps:
                dev, _ = evaluate_split(task, featurizer, head, sources["dev"], refs, info, "dev", spec.frame_rate_hz)
                val = dev[task.primary_metric]
                history.append({"step": step, "train_loss": running, **{f"dev_{k}": v for k, v in dev.items()}})
                key = dev_rank(task, dev, step)
                if best_key is None or key > best_key:
                    best_key, best_step, best_dev = key, step, dev
                    best_state = copy.deepcopy((featurizer.state_dict(), head.state_dict()))
                if cfg.average_best > 1:
                    if task.dev_loss_defined:
                        loss = dev_loss(task, featurizer, head, sources["dev"], refs, info, spec.frame_rate_hz)
                        history[-1]["dev_loss"] = loss
                    else:  # the dev primary metric, oriented so that lower is better
                        loss = -val if task.higher_is_better else val
                    nbest = sorted(nbest + [(loss, step, copy.deepcopy((featurizer.state_dict(), head.state_dict())))],
                                   key=lambda e: (e[0], e[1]))[: cfg.average_best]
                bar.update(status=f"loss {running:.3f} dev {task.primary_metric} {val:.2f}")
    train_s = time.time() - t0
    if best_state is None:
        raise RuntimeError(f"probe never produced a finite update ({nan_steps} NaN steps at lr {lr:g})")
    if nbest:  # ESPnet's valid.loss.ave: the average of the n-best weights replaces the dev-best
        best_state = tuple(average_states([e[2][k] for e in nbest]) for k in (0, 1))
    featurizer.load_state_dict(best_state[0])
    head.load_state_dict(best_state[1])
    norms: List[float] = []
    dev, _ = evaluate_split(task, featurizer, head, sources["dev"], refs, info, "dev", spec.frame_rate_hz,
                            layer_norms=norms)
    if nbest:  # the averaged weights' own dev scores
        best_dev = dev
    test, test_preds = evaluate_split(task, featurizer, head, sources["test"], refs, info, "test", spec.frame_rate_hz)
    w = featurizer.softmax_weights()
    test_refs = {i: refs[i] for i in sources["test"].ids}
    extra = task.extra_results(test_preds, test_refs, info)
    if nbest:
        extra["averaged_checkpoints"] = {"steps": sorted(e[1] for e in nbest), "by": "lowest dev loss"
                                         if task.dev_loss_defined else f"best dev {task.primary_metric}"}
    lengths = output_tokens(task, test_preds, test_refs)
    if lengths is not None:
        extra["test_output_tokens"] = lengths
    oracle = task.oracle_preds(test_refs, info)
    if oracle is not None:  # the data-dependent perfect value of the absolute score (Metric.perfect None)
        extra["oracle"] = {"what": oracle[0], "test": task.score(oracle[1], test_refs, info, "test")}
    trivial = task.trivial_preds(test_refs, info)
    if trivial is not None:  # the floor this probe has to beat, scored the same way
        extra["trivial_baseline"] = {"what": trivial[0], "test": task.score(trivial[1], test_refs, info, "test"),
                                     "dev": {task.primary_metric: trivial_dev}}
    learned_nothing = None
    if trivial_dev is not None:
        best = best_dev.get(task.primary_metric, math.nan)
        beat = best > trivial_dev if task.higher_is_better else best < trivial_dev  # False for NaN
        learned_nothing = not beat
    return ProbeOutcome(
        dev=best_dev, test=test, best_step=best_step,
        layer_weights={"softmax": w, "layer_norm": norms, "corrected": corrected_contributions(w, norms)},
        extra=extra, train_s=train_s, nan_steps=nan_steps, history=history, trivial_dev=trivial_dev,
        learned_nothing=learned_nothing,
    )


def output_tokens(task: Task, preds: Dict[str, Any], refs: Dict[str, Any]) -> Optional[Dict[str, List[int]]]:
    """{utterance: [hypothesis tokens, reference tokens]} of a transcription task's output (None for
    other tasks). Tokens are non-space characters for character-level tasks, space-separated
    symbols otherwise. Keyed by utterance so that the per-language probes of one run (mono_asr)
    merge into one table."""
    if task.level != "sequence" or not all(isinstance(p, str) for p in preds.values()):
        return None

    def count(text: str) -> int:
        return len(text.replace(" ", "")) if getattr(task, "char_level", False) else len(text.split())

    return {i: [count(preds[i]), count(str(refs[i]))] for i in sorted(preds)}


def trivial_score(task: Task, refs: Dict[str, Any], info: Dict[str, Any], split: str) -> Optional[float]:
    """The primary metric of the task's trivial answer (Task.trivial_preds) on `refs`; None
    when the task has none."""
    trivial = task.trivial_preds(refs, info)
    return None if trivial is None else float(task.score(trivial[1], refs, info, split)[task.primary_metric])


def dev_rank(task: Task, dev: Dict[str, float], step: int) -> Tuple[float, float, int]:
    """Sort key of a dev evaluation, larger = better: the primary metric, then (ties) the task's
    secondary metric, then the later step (a probe stuck at one value keeps its last weights,
    not its first). NaN ranks below every number."""

    def signed(metric: str, higher_is_better: bool) -> float:
        v = dev.get(metric, math.nan)
        return (v if higher_is_better else -v) if math.isfinite(v) else -math.inf

    sec = task.secondary_metric
    # the secondary metric's direction as the task declares it: the probe reads nothing of the board's scores
    sec_key = signed(sec, task.metric(sec).higher_is_better) if sec else 0.0
    return signed(task.primary_metric, task.higher_is_better), sec_key, step
