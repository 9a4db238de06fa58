"""Baseline upstreams: filter banks and MFCCs (one "layer" each, 10 ms frames).

They are the zero point of every leaderboard (the SUPERB score's FBANK row), so they follow
Kaldi's conventions exactly as s3prl's baselines do: 25 ms windows, 10 ms shift, snip edges.
"""

from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from harness.registry import register_upstream
from upstreams.base import HiddenStates, Upstream, UpstreamSpec

WIN = 400  # 25 ms at 16 kHz
HOP = 160  # 10 ms


class KaldiFeatureUpstream(Upstream):
    """Kaldi-style features + deltas + delta-deltas, computed per item on its valid samples."""

    def __init__(self, name: str, kind: str, base_dim: int):
        super().__init__()
        self.kind = kind
        self.base_dim = base_dim
        self.spec = UpstreamSpec(
            name=name, family=kind, sample_rate=16000, num_layers=1,
            hidden_size=base_dim * 3, frame_rate_hz=100.0, source=f"torchaudio.compliance.kaldi.{kind}",
        )

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        # snip_edges: 1 + (n - 400) // 160; shorter inputs are padded to one window
        return 1 + (num_samples.clamp(min=WIN) - WIN) // HOP

    def _one(self, wav: torch.Tensor) -> torch.Tensor:
        if wav.numel() < WIN:
            wav = torch.nn.functional.pad(wav, (0, WIN - wav.numel()))
        x = wav.unsqueeze(0) * 32768.0  # Kaldi works on int16-scaled samples
        if self.kind == "fbank":
            feats = kaldi.fbank(x, num_mel_bins=self.base_dim, sample_frequency=16000, dither=0.0)
        else:
            feats = kaldi.mfcc(x, num_ceps=self.base_dim, num_mel_bins=23, sample_frequency=16000, dither=0.0)
        d1 = AF.compute_deltas(feats.T.unsqueeze(0)).squeeze(0)
        d2 = AF.compute_deltas(d1.unsqueeze(0)).squeeze(0)
        return torch.cat([feats, d1.T, d2.T], dim=1)

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> HiddenStates:
        feats = [self._one(wavs[i, : int(n)]) for i, n in enumerate(wav_lens)]
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        out = wavs.new_zeros(len(feats), int(lengths.max()), self.spec.hidden_size)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
        return HiddenStates(layers=[out], lengths=lengths)


@register_upstream("fbank")
def fbank() -> Upstream:
    """80 log-mel filter banks + deltas + delta-deltas (240-d, 10 ms), as s3prl's baseline."""
    return KaldiFeatureUpstream("fbank", "fbank", 80)


@register_upstream("mfcc")
def mfcc() -> Upstream:
    """13 MFCCs + deltas + delta-deltas (39-d, 10 ms), Kaldi defaults, no CMVN."""
    return KaldiFeatureUpstream("mfcc", "mfcc", 13)
