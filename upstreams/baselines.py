"""Baseline upstreams: filter banks and MFCCs (one "layer" each, 10 ms frames).

They are the zero point of every leaderboard (the SUPERB score's FBANK row), so they follow
s3prl's baselines (upstream/baseline/fbank.yaml and mfcc.yaml): Kaldi features on float
waveforms (25 ms windows, 10 ms shift, snip edges), deltas and delta-deltas (window 5), then
per-utterance mean and variance normalisation (CMVN, `use_cmvn: True` in both files), computed
over the utterance's own frames before any padding (baseline/extracter.py).

Except on the mean-pool tasks (KS, SID: `Task.baseline_cmvn` False), which get the same features
without CMVN (`for_task`). CMVN zeroes every feature's mean over the utterance, and a Linear ->
mean-pool -> Linear head (s3prl's UtteranceLevel + MeanPooling, our MeanPoolClassifier) sees
nothing but that mean: its output is the same constant for every utterance. s3prl's own path is
constant too (nothing in it is non-linear per frame: the featurizer passes a single layer through
untouched, and the zero frames it pools past an item's end equal the CMVN'd mean), which is why
the SUPERB paper's FBANK row sits at chance on KS and SID (8.63, 8.5e-4). The reference points
of the SUPERB score are the leaderboard's FBANK row instead, re-run on exactly the four mean-pool
tasks (KS 41.38, IC 9.65, SID 20.06, ER 48.24; every other task keeps the paper's value): above
chance, so not CMVN'd, and s3prl's `fbank_no_cmvn`, added while the leaderboard was being built,
is the variant the SUPERB authors name for SID elsewhere. docs/conformance.md gives the files,
lines and commits. mfcc follows the same rule (SUPERB has no MFCC row; one rule for both).

Elsewhere CMVN stays: it also brings every dimension to unit scale; without it the MFCCs (std
20-30 per cepstrum after Kaldi's liftering) overwhelm a linear CTC head, which stayed on the blank
plateau (PR, quick profile, synth small: PER 91.98 without CMVN). The un-normalised filter banks
remain available on every task as `fbank_no_cmvn` (s3prl's name).
"""

from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from harness.registry import register_upstream
from upstreams.base import SAMPLE_RATE, HiddenStates, Upstream, UpstreamSpec

WIN = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms


class KaldiFeatureUpstream(Upstream):
    """Kaldi-style features + deltas + delta-deltas, computed per item on its valid samples."""

    def __init__(self, name: str, kind: str, base_dim: int, cmvn: bool = True):
        super().__init__()
        self.kind = kind
        self.cmvn = cmvn
        self.base_dim = base_dim
        self.spec = UpstreamSpec(
            name=name, family=kind, sample_rate=SAMPLE_RATE, num_layers=1,
            hidden_size=base_dim * 3, frame_rate_hz=SAMPLE_RATE / HOP,
            # the source names the CMVN, so the feature cache (keyed by the spec) tells them apart
            source=f"torchaudio.compliance.kaldi.{kind}" + ("+cmvn" if cmvn else ""),
        )

    def for_task(self, task) -> Upstream:
        """Without CMVN where the task says the baselines go un-normalised (`baseline_cmvn`
        False: the mean-pool tasks, see the module docstring); the name stays, so the board's
        zero point is still `fbank`, and the spec's source (no "+cmvn") keys its own cache."""
        if self.cmvn and not getattr(task, "baseline_cmvn", True):
            return KaldiFeatureUpstream(self.spec.name, self.kind, self.base_dim, cmvn=False)
        return self

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        # snip_edges: 1 + (n - 400) // 160; shorter inputs are padded to one window
        return 1 + (num_samples.clamp(min=WIN) - WIN) // HOP

    def _one(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.numel() < WIN:
            wav = torch.nn.functional.pad(wav, (0, WIN - wav.numel()))
        x = wav.unsqueeze(0)
        if self.kind == "fbank":
            feats = kaldi.fbank(x, num_mel_bins=self.base_dim, sample_frequency=SAMPLE_RATE, dither=0.0)
        else:
            feats = kaldi.mfcc(x, num_ceps=self.base_dim, num_mel_bins=23, sample_frequency=SAMPLE_RATE, dither=0.0)
        d1 = AF.compute_deltas(feats.T.unsqueeze(0), win_length=5).squeeze(0)
        d2 = AF.compute_deltas(d1.unsqueeze(0), win_length=5).squeeze(0)
        x = torch.cat([feats, d1.T, d2.T], dim=1)
        if not self.cmvn:
            return x
        if x.shape[0] < 2:  # one frame has no variance: centre only
            return x - x.mean(0, keepdim=True)
        return (x - x.mean(0, keepdim=True)) / (1e-10 + x.std(0, keepdim=True))

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> HiddenStates:
        feats = [self._one(wavs[i, : int(n)]) for i, n in enumerate(wav_lens)]
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        out = wavs.new_zeros(len(feats), int(lengths.max()), self.spec.hidden_size)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
        return HiddenStates(layers=[out], lengths=lengths)


@register_upstream("fbank")
def fbank() -> Upstream:
    """s3prl's `fbank`: 80 log-mel filter banks + deltas + delta-deltas (240-d, 10 ms), per-utterance
    CMVN except on the mean-pool tasks (SUPERB's FBANK row)."""
    return KaldiFeatureUpstream("fbank", "fbank", 80)


@register_upstream("fbank_no_cmvn")
def fbank_no_cmvn() -> Upstream:
    """s3prl's `fbank_no_cmvn`: as `fbank` without CMVN (not SUPERB's zero point)."""
    return KaldiFeatureUpstream("fbank_no_cmvn", "fbank", 80, cmvn=False)


@register_upstream("mfcc")
def mfcc() -> Upstream:
    """s3prl's `mfcc`: 13 MFCCs + deltas + delta-deltas (39-d, 10 ms), Kaldi defaults, per-utterance CMVN
    except on the mean-pool tasks."""
    return KaldiFeatureUpstream("mfcc", "mfcc", 13)
