"""WavLM utterance mixing: the "denoising" batch transform of WavLM pre-training (docs/pretrain.md section 2).

Applied per batch after cropping, so every item has T samples. Each item is mixed with
probability `mix_prob`; the added segment is a noise clip (probability `noise_prob`, SNR drawn
from `snr_db`) or a segment of another item of the same batch (energy ratio drawn from
`ratio_db`). Its length L is uniform over the integers [1, floor(max_fraction * T)], placed at a
uniform offset of the primary and taken from a uniform offset of the source. The added segment is
scaled by sqrt(P_primary / (P_source * 10^(r / 10))), P being float64 mean squares. Which samples
the powers are taken over is the option `energy`:
- "region" (default): the primary's mixed region and the added segment itself, so the realised
  ratio inside the overlap is exactly r. This is the WavLM paper's Algorithm 1 (Chen et al.,
  arXiv 2110.13900, Section IV-B, lines 12-18: the mix length l is drawn from {1, ..., L/2}, the
  two energies are summed over u_pri[s_pri : s_pri + l] and u_sec[s_sec : s_sec + l]).
- "whole": the WHOLE primary crop (T samples) and the WHOLE source (the other item's T samples,
  or the whole noise clip), as the authors' released mixing code does (microsoft/UniSpeech,
  commit b799398, src/fairseq/data/audio/utterance_mixing_dataset.py, `mixing_collated_audios`):
  the power ratio of primary to added source, both taken whole, is exactly r.
Labels are untouched: this only sees waveforms.

Choices where the facts leave room (documented here, tested in tests/unit/test_mixing.py):
- The secondary utterance always comes from the input (un-mixed) batch, never from an item
  mixed earlier in the same call, and is never the primary itself.
- A batch of one item can only take noise; with no noise bank it is left as is (no event).
- A noise clip shorter than L is tiled circularly: sample k of the segment is
  clip[(source_start + k) % N], source_start uniform in [0, N). Longer clips are sliced.
- A crop too short for one sample (floor(max_fraction * T) = 0), or a silent primary or source
  (power 0, SNR undefined), adds nothing: the event is still recorded, with scale 0, so event
  counts reflect the mixing draws.
- Every draw comes from the `generator` argument, in a fixed order per item (mix?, noise?,
  source, L, offsets, r); mix_prob = 0 returns an exact copy.

References checked (read only, nothing copied): the authors' code above, NVIDIA NeMo's
`WavLMAugmentation` (nemo/collections/asr/modules/ssl_modules/augmentation.py) and a fairseq
copy in JunyiPeng00/Interspeech23_SelfPretraining. All draw L, offsets and r as above and take
whole-signal powers (the paper's Algorithm 1 takes region energies: the default here). The
authors' code and the paper's Algorithm 1 (P(u_sec = x) = 1/B over the batch) may also pick the
primary itself and mixes in place (a
later item may take an already mixed one) and shortens L to a short noise clip; we exclude the
primary and read the clean batch (as NeMo does), and tile short noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch

from harness.audio import load_audio
from harness.errors import ConfigError, HarnessError

NOISE_SUFFIXES = (".wav", ".flac")
ENERGY_MODES = ("region", "whole")


@dataclass(frozen=True)
class MixConfig:
    """Utterance-mixing settings (WavLM Base: noise_prob 0; Base+ / Large: 0.1)."""

    mix_prob: float = 0.2
    noise_prob: float = 0.0
    snr_db: Tuple[float, float] = (-5.0, 20.0)  # noise: SNR range, dB
    ratio_db: Tuple[float, float] = (-5.0, 5.0)  # utterance: primary-to-secondary energy ratio, dB
    max_fraction: float = 0.5  # L uniform in [1, max_fraction * T] samples
    energy: str = "region"  # powers over the mixed region (paper) or "whole" signals (authors' code)

    def __post_init__(self):
        for name in ("mix_prob", "noise_prob"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ConfigError(f"MixConfig.{name} must be a probability in [0, 1], got {v!r}")
        for name in ("snr_db", "ratio_db"):
            v = getattr(self, name)
            ok = isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
            if not (ok and math.isfinite(v[0]) and math.isfinite(v[1]) and v[0] <= v[1]):
                raise ConfigError(f"MixConfig.{name} must be a finite (low, high) pair with low <= high, got {v!r}")
        v = self.max_fraction
        if not (isinstance(v, (int, float)) and 0.0 < v <= 1.0):
            raise ConfigError(f"MixConfig.max_fraction must be in (0, 1], got {v!r}")
        if self.energy not in ENERGY_MODES:
            raise ConfigError(f"MixConfig.energy must be one of {', '.join(ENERGY_MODES)}, got {self.energy!r}")


@dataclass
class MixEvent:
    """One mixed item: what was added where (offsets and lengths in samples)."""

    index: int  # primary item
    kind: str  # "noise" | "utterance"
    source: int  # batch index of the secondary utterance, or noise clip index
    start: int  # offset in the primary
    length: int
    source_start: int  # offset in the source (for a tiled noise clip: in [0, clip length))
    target_db: float  # drawn SNR (noise) or energy ratio (utterance), dB
    scale: float  # factor applied to the source segment (0: nothing added)


class NoiseBank:
    """Noise clips as 1-D float32 tensors at 16 kHz."""

    def __init__(self, clips: Sequence[torch.Tensor], names: Sequence[str] = ()):
        """Args: clips: non-empty 1-D waveforms (S_k,), 16 kHz; names: one per clip (default clip{k})."""
        if len(clips) == 0:
            raise HarnessError("empty noise bank: give at least one noise clip")
        if names and len(names) != len(clips):
            raise HarnessError(f"noise bank: {len(names)} names for {len(clips)} clips")
        self.names = list(names) or [f"clip{k}" for k in range(len(clips))]
        self.clips = []
        for name, c in zip(self.names, clips):
            c = torch.as_tensor(c).detach().to("cpu", torch.float32)
            if c.dim() != 1 or c.numel() == 0:
                raise HarnessError(f"noise clip {name} must be a non-empty 1-D waveform, got shape {tuple(c.shape)}")
            self.clips.append(c.contiguous())

    @classmethod
    def from_folder(cls, folder) -> "NoiseBank":
        """Every *.wav / *.flac under `folder` (recursive, sorted by path), decoded at 16 kHz."""
        folder = Path(folder)
        if not folder.is_dir():
            raise HarnessError(f"noise folder {folder} does not exist or is not a folder")
        paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in NOISE_SUFFIXES)
        if not paths:
            raise HarnessError(f"no noise clip (*.wav, *.flac) in noise folder {folder}")
        return cls([load_audio(p) for p in paths], [p.relative_to(folder).as_posix() for p in paths])

    @classmethod
    def from_files(cls, paths) -> "NoiseBank":
        """The given audio files, in order, decoded at 16 kHz."""
        paths = [Path(p) for p in paths]
        return cls([load_audio(p) for p in paths], [str(p) for p in paths])

    def __len__(self) -> int:
        return len(self.clips)


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=g, dtype=torch.float64).item()


def _randint(g: torch.Generator, high: int) -> int:
    """Uniform integer in [0, high); high >= 1."""
    return int(torch.randint(high, (), generator=g).item())


def mix_batch(wavs: torch.Tensor, generator: torch.Generator, cfg: MixConfig,
              noise: Optional[NoiseBank] = None) -> Tuple[torch.Tensor, List[MixEvent]]:
    """Mix each item of a cropped batch with another item or a noise clip (WavLM utterance mixing).

    Args:
        wavs: (B, T) float waveforms, all cropped to T samples; not modified.
        generator: the source of every random draw (CPU torch.Generator).
        cfg: mixing settings.
        noise: noise clips; required when cfg.noise_prob > 0 and cfg.mix_prob > 0.

    Returns:
        (B, T) mixed copy with wavs' dtype and device (bit-identical outside mixed regions), and one
        MixEvent per mixed item in index order.

    Raises:
        HarnessError: noise_prob > 0 with no noise bank.
        ValueError: wavs is not a 2-D floating tensor.
    """
    if wavs.dim() != 2 or not wavs.is_floating_point():
        raise ValueError(f"mix_batch expects a (B, T) float tensor, got {tuple(wavs.shape)} {wavs.dtype}")
    if cfg.mix_prob > 0 and cfg.noise_prob > 0 and noise is None:
        raise HarnessError(f"utterance mixing with noise_prob={cfg.noise_prob} needs a noise bank (none was given)")
    out = wavs.clone()
    events: List[MixEvent] = []
    B, T = wavs.shape
    max_len = int(math.floor(cfg.max_fraction * T))
    for i in range(B):
        if not _uniform(generator, 0.0, 1.0) < cfg.mix_prob:
            continue
        if B == 1:  # no other item to take: noise or nothing
            if noise is None:
                continue
            use_noise = True
        else:
            use_noise = _uniform(generator, 0.0, 1.0) < cfg.noise_prob
        if use_noise:
            src = _randint(generator, len(noise))
            clip = noise.clips[src]
        else:
            src = _randint(generator, B - 1)
            src += src >= i  # uniform over the other items
            clip = wavs[src]  # the input batch, never an item already mixed in `out`
        L = 1 + _randint(generator, max_len) if max_len >= 1 else 0  # paper: l in {1, ..., L/2}
        start = _randint(generator, T - L + 1)
        N = clip.numel()
        src_start = _randint(generator, N - L + 1) if N >= L else _randint(generator, N)
        target = _uniform(generator, *(cfg.snr_db if use_noise else cfg.ratio_db))
        if N >= L:
            seg = clip[src_start:src_start + L]
        else:
            seg = clip[(src_start + torch.arange(L)) % N]
        seg = seg.to(wavs.device, torch.float64)
        region = wavs[i, start:start + L].to(torch.float64)
        if not L:
            p_pri = p_src = 0.0
        elif cfg.energy == "region":  # the overlap itself (paper, Algorithm 1)
            p_pri, p_src = float(region.pow(2).mean()), float(seg.pow(2).mean())
        else:  # whole primary crop and whole source (authors' code)
            p_pri = float(wavs[i].to(torch.float64).pow(2).mean())
            p_src = float(clip.to(torch.float64).pow(2).mean())
        # a silent side makes the SNR undefined: add nothing rather than blow up or divide by 0
        scale = math.sqrt(p_pri / (p_src * 10.0 ** (target / 10.0))) if p_pri > 0 and p_src > 0 else 0.0
        if scale > 0:
            out[i, start:start + L] = (region + scale * seg).to(wavs.dtype)
        events.append(MixEvent(i, "noise" if use_noise else "utterance", int(src), start, L,
                               src_start, target, scale))
    return out, events
