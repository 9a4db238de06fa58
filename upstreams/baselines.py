"""Baseline upstreams: filter banks and MFCCs (one "layer" each, 10 ms frames).

They are the zero point of every leaderboard (the SUPERB score's FBANK row), so they follow
s3prl's baselines exactly (upstream/baseline/fbank.yaml and mfcc.yaml): Kaldi features on float
waveforms (25 ms windows, 10 ms shift, snip edges), deltas and delta-deltas (window 5), then
per-utterance mean and variance normalisation (CMVN, `use_cmvn: True` in both files).

CMVN makes every feature's time average zero, so a Linear -> mean-pool head (KS, SID) sees a
constant: that is why SUPERB's FBANK row sits at chance on those tasks, and a board that uses
`fbank` as its zero point inherits it. CMVN also brings every dimension to unit scale; without it
the MFCCs (std 20-30 per cepstrum after Kaldi's liftering) overwhelm a linear CTC head, which
stayed on the blank plateau (PR, quick profile, synth small: PER 91.98 without CMVN). The
un-normalised filter banks remain available as `fbank_no_cmvn` (s3prl's name), an informative
but non-standard zero point.
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
    CMVN (SUPERB's FBANK row)."""
    return KaldiFeatureUpstream("fbank", "fbank", 80)


@register_upstream("fbank_no_cmvn")
def fbank_no_cmvn() -> Upstream:
    """s3prl's `fbank_no_cmvn`: as `fbank` without CMVN (not SUPERB's zero point)."""
    return KaldiFeatureUpstream("fbank_no_cmvn", "fbank", 80, cmvn=False)


@register_upstream("mfcc")
def mfcc() -> Upstream:
    """s3prl's `mfcc`: 13 MFCCs + deltas + delta-deltas (39-d, 10 ms), Kaldi defaults, per-utterance CMVN."""
    return KaldiFeatureUpstream("mfcc", "mfcc", 13)
