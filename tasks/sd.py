"""SD: two-speaker diarization as per-frame speaker activity (SUPERB's Libri2Mix recipe).

Data: the corpus' `conv` subset, one utterance per two-speaker conversation, with
`custom["speakers"]` and `custom["segments"] = [[speaker, start_s, end_s], ...]` (overlap allowed).

Targets: frame t of the upstream's frame rate (covering [t, t + 1) / frame_rate s) is active for a
speaker when its centre (t + 0.5) / frame_rate lies in one of that speaker's segments; columns
follow the sorted speaker names. Frame labels are built at the upstream's frame rate, which the
task learns in `build_head`. Training crops (`crop_seconds`, or `crop_frames` as s3prl's 2000-frame
chunks in the paper profile) slice the labels with
`Batch.crops`.

Head and loss: 1-layer LSTM -> Linear(hidden, 2) (sigmoid), permutation-invariant BCE.

Scoring (docs/protocol.md section 2): per-frame probabilities are thresholded, median-filtered and turned
into segments; DER (pyannote.metrics, collar 0, overlap scored) is summed over the split's
conversations for median filter {1, 11} x threshold {0.3 .. 0.7}.
  der              the lowest DER over that grid (the protocol's number; an oracle choice of the
                   decoding setting on the scored split, as in SUPERB)
  der_dev_setting  the DER at the setting that was best on dev. `score` remembers the dev-best
                   setting each time it scores "dev"; train_probe's last dev evaluation (with the
                   dev-best weights) runs right before test on the same task object, so test uses
                   the setting chosen for the weights it scores. On dev the two numbers are equal.
extra_results holds the test grid, its best setting, the dev setting and the DER of the trivial
all-silence output (100: everything missed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np
import torch

from harness.errors import HarnessError
from harness.registry import register_task
from tasks.base import FEATURE_CACHE_CROPS, error_rate_metric, pools_by_subset_split, require, Splits, Task
from tasks.heads_pit import DiarizationHead, pit_bce_loss
from tasks.base_lr import superb_lr_grid
from tasks.metrics import SD_MEDIANS, SD_THRESHOLDS, best_setting, der_grid, segments_to_annotation

NUM_SPEAKERS = 2
#: used for `der_dev_setting` if test is scored before any dev evaluation (s3prl's defaults)
FALLBACK_SETTING = (1, 0.5)


@dataclass(frozen=True)
class Conversation:
    """The reference of one conversation.

    Attributes:
        uri: the utterance id.
        speakers: speaker names in label-column order (sorted).
        segments: ((speaker, start_s, end_s), ...).
        duration: seconds.
    """

    uri: str
    speakers: Tuple[str, ...]
    segments: Tuple[Tuple[str, float, float], ...]
    duration: float

    def frame_labels(self, frame_rate: float) -> torch.Tensor:
        """(T, speakers) float 0/1 labels on the host (a per-conversation table; batches copy
        their frames to the device), T = ceil(duration * frame_rate) + 1 (callers trim)."""
        T = int(math.ceil(self.duration * frame_rate)) + 1
        centres = (torch.arange(T, dtype=torch.float64, device="cpu") + 0.5) / frame_rate
        y = torch.zeros(T, len(self.speakers), device="cpu")
        col = {s: i for i, s in enumerate(self.speakers)}
        for spk, s, e in self.segments:
            y[(centres >= s) & (centres < e), col[spk]] = 1.0
        return y

    def annotation(self):
        return segments_to_annotation([(s, a, min(b, self.duration)) for s, a, b in self.segments], uri=self.uri)

    def uem(self):
        """The scored extent: the whole recording."""
        from pyannote.core import Segment

        return Segment(0.0, self.duration)


@register_task("sd")
class SpeakerDiarization(Task):
    name = "sd"
    departures = (
        FEATURE_CACHE_CROPS,
    )
    primary_metric = "der"
    higher_is_better = False
    metrics = (error_rate_metric("der"), error_rate_metric("der_dev_setting"))
    versions = {1: "unversioned runs", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    level = "frame"
    reference_lr = 1e-4
    profiles = {
        # quick: one lr to fit the demo's 20 minutes (3e-3 beat 1e-3 on dev on tiny and small)
        "quick": dict(steps=250, lrs=(3e-3,), batch_seconds=24.0, max_batch_items=8, eval_every=50,
                      head_dim=128, crop_seconds=3.0, optimizer="adam"),
        # s3prl diarization/config.yaml: chunk_size 2000 frames with frame_shift null, i.e. the
        # upstream's own frame shift (expert.py: 40 s at 20 ms, 20 s at 10 ms), batch 8 x
        # accumulation 4, Adam 1e-4, clip 1, 30k updates, dev every 500; 1-layer LSTM 512.
        # batch_seconds leaves room for 8 chunks down to 80 ms frames (max_batch_items binds).
        # lrs: the maintainers' diarization/sd.sh grid widened to five decades
        "paper": dict(steps=30_000, lrs=superb_lr_grid(reference_lr, runfile=(1e-2, 1e-3, 1e-4, 1e-5)),
                      batch_seconds=8 * 160.0, max_batch_items=8, grad_accum=4,
                      eval_every=500, head_dim=512, crop_frames=2000, optimizer="adam", grad_clip=1.0),
    }

    def __init__(self):
        self._frame_rate: float = 0.0
        self._labels: Dict[str, torch.Tensor] = {}
        self._dev_setting: Tuple[int, float] | None = None

    def prepare(self, corpus):
        out = {}
        for split in ("train", "dev", "test"):
            utts = require(corpus.select(split=split, subset="conv"), self.name, corpus,
                           f"{split} conversations (subset 'conv')")
            for u in utts:
                self._check(u, corpus)
            out[split] = utts
        return Splits(**out, info={"num_speakers": NUM_SPEAKERS}, pools=pools_by_subset_split(corpus, out))

    @staticmethod
    def _check(u, corpus):
        c = u.custom
        where = f"corpus {corpus.root}: conversation {u.id}"
        spk = c.get("speakers")
        if not isinstance(spk, (list, tuple)) or len(set(spk)) != NUM_SPEAKERS:
            raise HarnessError(f"{where}: custom['speakers'] must name {NUM_SPEAKERS} speakers, got {spk!r}")
        segs = c.get("segments")
        if not isinstance(segs, (list, tuple)) or not segs:
            raise HarnessError(f"{where}: custom['segments'] must be a non-empty list, got {segs!r}")
        for seg in segs:
            if len(seg) != 3 or seg[0] not in spk or not float(seg[2]) > float(seg[1]) >= 0:
                raise HarnessError(f"{where}: bad segment {seg!r} (want [speaker in {spk}, start_s, end_s > start_s])")

    def target(self, utt, info):
        c = utt.custom
        return Conversation(utt.id, tuple(sorted(c["speakers"])),
                            tuple((str(s), float(a), float(b)) for s, a, b in c["segments"]), float(utt.duration))

    def collate(self, targets):
        return list(targets)

    def build_head(self, dim, frame_rate, info, cfg):
        self._frame_rate = float(frame_rate)
        self._labels = {}
        self._dev_setting = None
        return DiarizationHead(dim, hidden=cfg.head_dim, speakers=NUM_SPEAKERS)

    def batch_labels(self, batch, T: int, device="cpu") -> torch.Tensor:
        """(B, T, speakers) labels of the frames the features cover (crops at training), on `device`."""
        if not self._frame_rate:
            raise HarnessError("task 'sd': build_head must run before the loss (it sets the frame rate)")
        y = torch.zeros(len(batch.ids), T, NUM_SPEAKERS, device=device)
        for k, (uid, ref) in enumerate(zip(batch.ids, batch.targets)):
            if uid not in self._labels:
                self._labels[uid] = ref.frame_labels(self._frame_rate)
            lab = self._labels[uid]
            start, n = batch.crops[k] if batch.crops else (0, int(batch.lengths[k]))
            part = lab[start : start + min(n, T)]
            y[k, : part.shape[0]] = part.to(device, non_blocking=True)
        return y

    def loss(self, out, batch):
        logits, lengths = out
        return pit_bce_loss(logits, self.batch_labels(batch, logits.shape[1], logits.device), lengths)

    def decode(self, out, batch):
        logits, lengths = out
        probs = torch.sigmoid(logits).cpu()
        return [{"probs": probs[k, :n].numpy(), "frame_rate": self._frame_rate}
                for k, n in enumerate(lengths.tolist())]

    def trivial_preds(self, refs, info):
        rate = self._frame_rate or 100.0  # any rate: all-silence output scores DER 100 at every one
        return "all silence", {i: {"probs": np.zeros((max(1, int(r.duration * rate)), NUM_SPEAKERS), np.float32),
                                   "frame_rate": rate} for i, r in refs.items()}

    @staticmethod
    def grid(preds, refs) -> Dict[Tuple[int, float], float]:
        """DER (percent) per (median filter, threshold) over the conversations in `refs`."""
        ids = list(refs)
        return der_grid([preds[i]["probs"] for i in ids], [preds[i]["frame_rate"] for i in ids],
                        [refs[i].annotation() for i in ids], SD_MEDIANS, SD_THRESHOLDS,
                        uems=[refs[i].uem() for i in ids])

    def score(self, preds, refs, info, split):
        grid = self.grid(preds, refs)
        best = best_setting(grid)
        if split == "dev":
            self._dev_setting = best
        chosen = self._dev_setting or FALLBACK_SETTING
        return {"der": grid[best], "der_dev_setting": grid[chosen]}

    def extra_results(self, preds, refs, info):
        grid = self.grid(preds, refs)
        best = best_setting(grid)
        dev = self._dev_setting or FALLBACK_SETTING
        return {
            "best_median": best[0], "best_threshold": best[1],
            "dev_best_median": dev[0], "dev_best_threshold": dev[1],
            "der_grid": {f"median={m},threshold={t:g}": v for (m, t), v in grid.items()},
            "note": "der = lowest DER over median x threshold on the scored split (docs/protocol.md section 2); "
                    "der_dev_setting = DER at the dev-best setting",
        }
