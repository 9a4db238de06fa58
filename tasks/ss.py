"""SS: two-speaker separation by STFT masking from the weighted features (SUPERB's
separation_stft recipe on Libri2Mix min, mix_clean).

Data: the corpus' `mix` subset, one utterance per mixture, with `custom["sources"]` = two
absolute paths of the source waveforms (same length as the mixture, mixture = s1 + s2).

Signal path: the mixture STFT Y (n_fft 512, Hann window 512, centred frames; hop = the upstream's
stride in samples when it is at most MAX_HOP = 320: 160 for fbank/mfcc, 320 for 20 ms HuBERT) is
computed here from the audio. A coarser upstream (40 / 80 ms: strides 640 / 1280) would leave
gaps between 512-sample windows (no inverse STFT), so its stride is split into `subframes` =
ceil(stride / 320) STFT hops (2 or 4, hop 320) and the head predicts that many mask frames per
feature frame (MaskSeparationHead `subframes`): mask resolution stays 20 ms. The upstream
itself only runs once per split, through the feature cache. Waveforms are loaded once per
utterance and kept in memory (float32) by the task, up to AUDIO_CACHE_BYTES (2 GiB: all of synth,
not all of Libri2Mix train, whose remaining items are read from disk per batch); STFTs are
recomputed per batch (cheap: only a crop's samples are transformed).

Frame alignment: STFT frame t is paired with feature frame t // subframes (as s3prl's
match_length does, for subframes 1).
The feature count is slightly below the STFT count (fbank: 1 + (n - 400) // 160 vs
1 + ceil(n / 160)), so at decoding the masks are padded at the end by repeating the last feature
frame's mask (and trimmed if longer); at training the crop's frames [start, start + n) of the STFT
are used.

Head and loss: BLSTM stack -> two ReLU mask heads. Loss (s3prl's cfg.yaml: MSE, mask type NPSM):
uPIT MSE between mask_s * |Y| and the non-negative phase-sensitive target
|X_s| max(0, cos(angle Y - angle X_s)), summed over frequency and valid frames, divided by the
frames, minimum over the two pairings, averaged over utterances and sources.

Decoding: the two masks times the complex mixture STFT (mixture phase), inverse STFT to the
mixture's length. Scoring: per utterance SI-SDR with the better pairing (PIT) and its
improvement over the mixture as estimate; averages over utterances, in dB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from harness.audio import load_audio
from harness.errors import HarnessError
from harness.registry import register_task
from tasks.base import Metric, pools_by_subset_split, require, Splits, Task
from tasks.heads_pit import MaskSeparationHead, upit_mse_loss
from tasks.base_lr import superb_lr_grid
from tasks.metrics import si_sdr_improvement
from upstreams.base import SAMPLE_RATE

N_FFT = 512
#: the largest STFT hop (samples): coarser upstream strides are split into several hops
MAX_HOP = 320
NUM_SOURCES = 2
#: sources may differ from the mixture by up to this many samples (resampling rounding)
LENGTH_TOLERANCE = 16
#: waveforms kept in memory at most (mixture + sources, float32)
AUDIO_CACHE_BYTES = 2 * 2**30


@dataclass(frozen=True)
class Mixture:
    """Where one mixture and its sources live (the audio is loaded by the task, once)."""

    uri: str
    path: str
    offset: float
    duration: float
    sources: Tuple[str, ...]


@register_task("ss")
class SourceSeparation(Task):
    name = "ss"
    primary_metric = "si_sdri"
    secondary_metric = "si_sdr"
    higher_is_better = True
    level = "mixture"
    # perfect SI-SDRi depends on the mixtures: the ideal ratio mask's, from `oracle_preds`
    metrics = (Metric("si_sdri", True, "dB"), Metric("si_sdr", True, "dB"))
    versions = {1: "unversioned runs", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    reference_lr = 1e-4
    profiles = {
        # quick: one BLSTM layer and 2 s crops keep a probe near half a minute on synth small
        # quick: one lr to fit the demo's 20 minutes (3e-3 beat 1e-3 on dev on tiny and small)
        "quick": dict(steps=250, lrs=(3e-3,), batch_seconds=12.0, max_batch_items=6, eval_every=50,
                      head_dim=128, head_layers=1, dropout=0.0, crop_seconds=2.0, optimizer="adam"),
        # s3prl separation_stft/configs/cfg.yaml: 3-layer BLSTM 896, dropout 0.5, batch 8 whole
        # utterances, AdamW 1e-4, clip 1, 150k updates, dev every 2000. lrs: five decades around
        # 1e-4 (the maintainers' search script has no SS grid)
        "paper": dict(steps=150_000, lrs=superb_lr_grid(reference_lr),
                      batch_seconds=8 * 20.0, max_batch_items=8, eval_every=2000,
                      head_dim=896, head_layers=3, dropout=0.5, optimizer="adamw", grad_clip=1.0),
    }

    def __init__(self):
        self._hop = 0
        self._subframes = 1
        self._audio: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
        self._audio_bytes = 0

    def prepare(self, corpus):
        out = {}
        for split in ("train", "dev", "test"):
            utts = require(corpus.select(split=split, subset="mix"), self.name, corpus,
                           f"{split} mixtures (subset 'mix')")
            for u in utts:
                src = u.custom.get("sources")
                if not isinstance(src, (list, tuple)) or len(src) != NUM_SOURCES:
                    raise HarnessError(f"corpus {corpus.root}: mixture {u.id}: custom['sources'] must list "
                                       f"{NUM_SOURCES} source files, got {src!r}")
            out[split] = utts
        return Splits(**out, info={"num_sources": NUM_SOURCES, "n_fft": N_FFT, "root": str(corpus.root)},
                      pools=pools_by_subset_split(corpus, out))

    def target(self, utt, info):
        # source paths may be relative to the corpus folder, like lhotse's recording sources
        root = Path(info.get("root", "."))
        return Mixture(utt.id, utt.path, float(utt.offset), float(utt.duration),
                       tuple(str(p if Path(p).is_absolute() else root / p) for p in utt.custom["sources"]))

    def collate(self, targets):
        return list(targets)

    def audio(self, ref: Mixture) -> Tuple[torch.Tensor, torch.Tensor]:
        """(mixture (S,), sources (C, S)) float32, loaded on first use and kept (within budget)."""
        if ref.uri in self._audio:
            return self._audio[ref.uri]
        seg = (ref.offset, ref.duration if ref.offset > 0 else None)  # sources are cut like the mixture
        mix = load_audio(ref.path, *seg)
        srcs = []
        for p in ref.sources:
            s = load_audio(p, *seg)
            if abs(s.shape[0] - mix.shape[0]) > LENGTH_TOLERANCE:
                raise HarnessError(f"source {p} of mixture {ref.uri} has {s.shape[0]} samples, "
                                   f"the mixture {ref.path} has {mix.shape[0]}")
            s = s[: mix.shape[0]]
            srcs.append(torch.nn.functional.pad(s, (0, mix.shape[0] - s.shape[0])))
        item = (mix, torch.stack(srcs))
        size = 4 * mix.shape[0] * (1 + len(srcs))
        if self._audio_bytes + size <= AUDIO_CACHE_BYTES:
            self._audio[ref.uri] = item
            self._audio_bytes += size
        return item

    def stft(self, x: torch.Tensor, start: int = 0, frames: Optional[int] = None) -> torch.Tensor:
        """Centred STFT frames [start, start + frames) of (..., S) signals (zero padding at the
        ends): (..., T, F) complex, F = 257; all frames = 1 + ceil(S / hop), one more than
        torch.stft's when hop does not divide S, so that the inverse covers every sample.

        Only the samples under the requested frames are transformed, so a training crop costs
        what its frames cost."""
        if not self._hop:
            raise HarnessError("task 'ss': build_head must run first (it sets the STFT hop)")
        hop, half = self._hop, N_FFT // 2
        total = 1 + -(-x.shape[-1] // hop)
        frames = total - start if frames is None else max(0, min(frames, total - start))
        lo, hi = start * hop - half, (start + frames - 1) * hop + half  # samples under the frames
        seg = x[..., max(lo, 0) : min(hi, x.shape[-1])]
        seg = torch.nn.functional.pad(seg, (max(0, -lo), max(0, hi - x.shape[-1])))
        X = torch.stft(seg, N_FFT, hop_length=hop, win_length=N_FFT, window=torch.hann_window(N_FFT, device=x.device),
                       center=False, return_complex=True)
        return X.transpose(-1, -2)

    def build_head(self, dim, frame_rate, info, cfg):
        stride = int(round(SAMPLE_RATE / frame_rate))
        self._subframes = -(-stride // MAX_HOP)
        if stride % self._subframes:
            raise HarnessError(f"task 'ss': an upstream stride of {stride} samples ({frame_rate:g} Hz) does not split "
                               f"into {self._subframes} equal STFT hops of at most {MAX_HOP} samples")
        self._hop = stride // self._subframes
        return MaskSeparationHead(dim, bins=N_FFT // 2 + 1, hidden=cfg.head_dim, layers=cfg.head_layers,
                                  dropout=cfg.dropout, sources=NUM_SOURCES, subframes=self._subframes)

    def loss(self, out, batch):
        masks, lengths = out
        B, C, T, F = masks.shape
        mix_mag = torch.zeros(B, T, F, device=masks.device)
        target = torch.zeros(B, C, T, F, device=masks.device)
        lens = lengths.tolist()  # one device -> host copy, not one per item
        for k, ref in enumerate(batch.targets):
            mix, srcs = self.audio(ref)
            # crops count feature frames; lengths (from the head) count mask = STFT frames
            start = batch.crops[k][0] * self._subframes if batch.crops else 0
            # the STFT runs on the masks' device (the audio itself is cached on the host)
            wav = torch.cat([mix[None], srcs]).to(masks.device, non_blocking=True)
            Y = self.stft(wav, start, min(lens[k], T))  # (1 + C, <= n, F)
            t = Y.shape[1]
            mix_mag[k, :t] = Y[0].abs()
            # |X| cos(angle Y - angle X) = Re(X conj(Y)) / |Y|; NPSM keeps its positive part
            target[k, :, :t] = ((Y[1:] * Y[0].conj()).real / Y[0].abs().clamp(min=1e-8)).clamp(min=0)
        return upit_mse_loss(masks, mix_mag, target, lengths)

    def decode(self, out, batch):
        masks, lengths = out
        masks = masks.detach().cpu()
        preds = []
        for k, ref in enumerate(batch.targets):
            mix, _ = self.audio(ref)
            Y = self.stft(mix)  # (T_stft, F)
            n = int(lengths[k])
            m = masks[k, :, :n]
            if Y.shape[0] > n:  # features end a frame or two early: repeat the last mask frame
                m = torch.cat([m, m[:, -1:].expand(-1, Y.shape[0] - n, -1)], 1)
            est = (m[:, : Y.shape[0]] * Y[None]).transpose(-1, -2)  # (C, F, T)
            # centred frames, so istft(center=True) drops the n_fft / 2 padding at both ends
            wav = torch.istft(est, N_FFT, hop_length=self._hop, win_length=N_FFT,
                              window=torch.hann_window(N_FFT, device=est.device), center=True, length=mix.shape[0])
            preds.append(wav.float())
        return preds

    def score(self, preds, refs, info, split):
        rows = self.per_utterance(preds, refs)
        if not rows:
            return {"si_sdri": float("nan"), "si_sdr": float("nan")}
        return {"si_sdri": float(np.mean([r["si_sdri"] for r in rows.values()])),
                "si_sdr": float(np.mean([r["si_sdr"] for r in rows.values()]))}

    def trivial_preds(self, refs, info):
        mixtures = {i: self.audio(r)[0] for i, r in refs.items()}
        return "the mixture as every source", {i: m[None].expand(NUM_SOURCES, -1) for i, m in mixtures.items()}

    def oracle_preds(self, refs, info):
        """The ideal ratio mask on this task's own STFT (the hop the probe used): source c's
        estimate is the mixture STFT times |S_c| / sum_j |S_j|, inverted as `decode` inverts a
        probe's masks. Its SI-SDRi is the absolute score's 1000 for SS on these mixtures."""
        window = torch.hann_window(N_FFT, device="cpu")  # scored on the host, like the probe's decoded output
        preds = {}
        for uid, ref in refs.items():
            mix, srcs = self.audio(ref)
            Y = self.stft(torch.cat([mix[None], srcs]))  # (1 + C, T, F)
            mags = Y[1:].abs()
            mask = mags / mags.sum(0, keepdim=True).clamp(min=1e-8)
            est = (mask * Y[0][None]).transpose(-1, -2)  # (C, F, T)
            preds[uid] = torch.istft(est, N_FFT, hop_length=self._hop, win_length=N_FFT, window=window,
                                     center=True, length=mix.shape[0]).float()
        return "ideal ratio mask (|S_c| / sum of |S_j|) on the task's STFT", preds

    def per_utterance(self, preds, refs) -> Dict[str, Dict[str, float]]:
        out = {}
        for uid, ref in refs.items():
            mix, srcs = self.audio(ref)
            out[uid] = si_sdr_improvement(preds[uid], srcs, mix)
        return out

    def extra_results(self, preds, refs, info):
        rows = self.per_utterance(preds, refs)
        return {"si_sdr_mixture": float(np.mean([r["si_sdr_mix"] for r in rows.values()])) if rows else float("nan"),
                "per_utterance_si_sdri": {u: r["si_sdri"] for u, r in rows.items()}}
