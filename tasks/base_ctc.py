"""CTCTask: the base class of the sequence transcription tasks (PR, ASR; ML-SUPERB's through
tasks/base_mlsuperb.py), a helper of tasks/base.py (not a task)."""

from __future__ import annotations

import abc
import math
from typing import Any, Dict, List, Sequence

import torch
from torch import nn

from harness.config import ProbeConfig
from harness.data.corpus import Utterance
from harness.errors import HarnessError
from tasks.base import Task


class CTCTask(Task):
    """Sequence transcription with CTC and greedy decoding (PR, ASR).

    Subclasses implement `tokens(utt) -> list[str]` and `make_head(dim, info, cfg)`, set
    `char_level`, and put `vocab` (index 0 = blank) into info in `prepare`.

    Frame rate: the head sees at least MIN_FRAME_RATE_HZ (50 Hz, the 20 ms frames the SUPERB
    heads were designed for): a coarser upstream's frames are repeated (40 ms: twice, 80 ms:
    four times; tasks.heads.RepeatFrames), as s3prl's multires_hubert expert brings its coarse
    layers to 20 ms. At 12.5 Hz a character transcript (about 15 characters a second) could not
    be aligned at all.

    The floor of a coarse upstream: a per-frame head (`framewise = True`, the PR head) gives the
    same output to each repeat of a frame, so it still emits at most one label per upstream frame
    and needs a blank frame between two equal labels. When a test transcript has more tokens than
    that allows, no head of this kind can reach an error rate of 0; result.json's extra
    `ctc_floor_test` then gives the lowest error rate reachable on the test split (the forced
    deletions over the reference tokens, tasks.metrics.ctc_floor_edits; tasks whose
    metric is that token error rate, `reports_ctc_floor`: PR), how many test
    utterances are capped, and the emitting rate.

    Unalignable targets: a training target that needs more CTC frames (tokens + a blank between
    adjacent repeats) than the head outputs adds zero loss, as in s3prl and ESPnet (CTC
    zero_infinity), but is never silent: each is recorded, and result.json's extra
    `ctc_unalignable_train` maps utterance -> the frames it needs and has. This happens at 20 ms
    too: the ML-SUPERB head halves the frame rate (25 Hz) and fast synth speech in some languages
    has more characters than that (6 of 46 mono_asr_10min train items on synth tiny). A training
    batch in which no item fits is an error naming its first utterance: nothing would be learned.
    """

    level = "sequence"
    higher_is_better = False
    MIN_FRAME_RATE_HZ = 50.0

    @abc.abstractmethod
    def make_head(self, dim: int, info: Dict[str, Any], cfg: ProbeConfig) -> nn.Module:
        """The CTC head on frames at the head rate: forward(x, lengths) -> (log_probs, lengths)."""

    def build_head(self, dim, frame_rate, info, cfg):
        from tasks.heads import RepeatFrames

        self._set_vocab(info)
        self.unalignable: Dict[str, str] = {}
        self._emit_frames: Dict[str, int] = {}
        repeat = max(1, math.ceil(self.MIN_FRAME_RATE_HZ / frame_rate - 1e-9))
        self._head_rate = frame_rate * repeat
        head = self.make_head(dim, info, cfg)
        # a per-frame head sees each repeated frame alike, so it emits one label per upstream frame
        self._emit_factor = repeat if getattr(head, "framewise", False) else 1
        self._emit_rate = self._head_rate / self._emit_factor
        return head if repeat == 1 else RepeatFrames(head, repeat)

    @abc.abstractmethod
    def tokens(self, utt: Utterance) -> List[str]:
        """The reference token sequence of an utterance."""

    def target(self, utt, info):
        return self.join(self.tokens(utt))

    def collate(self, targets):
        return list(targets)

    #: record `ctc_floor_test`: only where the primary metric is the token error rate of what the head
    #: emits (PR); ASR's WER counts words, not the characters CTC emits
    reports_ctc_floor: bool = False
    #: tokens are characters (ASR) rather than space-separated symbols (PR)
    char_level: bool = False
    #: how CTC losses of a batch combine (tasks.heads.ctc_loss): "mean" (s3prl) or "batch" (ESPnet)
    ctc_reduction: str = "mean"

    def join(self, tokens: Sequence[str]) -> str:
        """Tokens back to the scored string."""
        return "".join(tokens) if self.char_level else " ".join(tokens)

    def encode(self, text: str) -> List[int]:
        """Reference string -> vocabulary ids (symbols unseen in training are dropped)."""
        toks = list(text) if self.char_level else text.split()
        return [self._index[t] for t in toks if t in self._index]

    def vocab_from(self, train: List[Utterance]) -> List[str]:
        syms = sorted({t for u in train for t in self.tokens(u)})
        return ["<blank>"] + syms

    def loss(self, out, batch):
        from tasks.heads import ctc_loss
        from tasks.metrics import ctc_frames_needed

        log_probs, lens = out
        targets = [self.encode(t) for t in batch.targets]
        if not torch.is_grad_enabled():  # a dev loss (checkpoint averaging): nothing to record
            return ctc_loss(log_probs, lens, targets, reduction=self.ctc_reduction)
        bad = {}
        for uid, seq, n in zip(batch.ids, targets, lens.tolist()):
            need = ctc_frames_needed(seq)
            if need > n:
                bad[uid] = (f"needs {need} CTC frames ({len(seq)} tokens + repeats), the head outputs {n} "
                            f"(features at {self._head_rate:g} Hz)")
        self.unalignable.update(bad)
        if len(bad) == len(targets):
            uid = next(iter(bad))
            raise HarnessError(f"task {self.name!r}: no target of a training batch fits CTC: utterance {uid} "
                               f"{bad[uid]}; the frames are too coarse for these transcripts")
        # unalignable items add 0 (zero_infinity), recorded above
        return ctc_loss(log_probs, lens, targets, reduction=self.ctc_reduction)

    def extra_results(self, preds, refs, info):
        from tasks.metrics import ctc_floor_edits

        out: Dict[str, Any] = {}
        if self.unalignable:
            out["ctc_unalignable_train"] = dict(sorted(self.unalignable.items()))
        if not self.reports_ctc_floor:
            return out
        ids = [i for i in refs if i in self._emit_frames]
        toks = {i: list(refs[i]) if self.char_level else refs[i].split() for i in ids}
        seqs = {i: self.encode(refs[i]) for i in ids}  # tokens never seen in training cannot be emitted
        unseen = sum(len(toks[i]) - len(seqs[i]) for i in ids)
        capped = {i: ctc_floor_edits(seqs[i], self._emit_frames[i]) for i in ids}
        total = sum(len(t) for t in toks.values())
        if total and any(capped.values()):
            out["ctc_floor_test"] = {
                self.primary_metric: 100.0 * (sum(capped.values()) + unseen) / total,
                "utterances": sum(1 for e in capped.values() if e), "of": len(ids),
                "forced_deletions": sum(capped.values()), "unseen_tokens": unseen, "emit_rate_hz": self._emit_rate}
        return out

    def decode(self, out, batch):
        from tasks.metrics import ctc_greedy

        log_probs, lens = out
        self._emit_frames.update((i, int(n) // self._emit_factor) for i, n in zip(batch.ids, lens.tolist()))
        return [self.join([self._vocab[i] for i in seq]) for seq in ctc_greedy(log_probs, lens)]

    def trivial_preds(self, refs, info):
        return "empty output", {i: "" for i in refs}

    def _set_vocab(self, info):
        self._vocab = list(info["vocab"])
        self._index = {t: i for i, t in enumerate(self._vocab)}
