"""Seeded noise for the `synth` corpus: coloured noise, mains hum, babble, mixing at an SNR.

Every generator takes an explicit `np.random.Generator` (or a seed through `NoiseSpec`) and
returns float32 audio in [-1, 1] full scale; nothing here reads global random state, so a plan
of `NoiseSpec`s made from the corpus seed renders to the same samples in any process.

Used for the "_silence_" keyword-spotting clips, the low background under keyword clips and
the 4-second clips of the "noise" subset (coloured noise, hum, and `babble` of other-language
speech); `mix_at_snr` and `mix_sources` are there for the next items of the plan (noisy speech,
denoising pairs): they work on arrays the renderer already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from harness.errors import HarnessError

COLOURS = ("white", "pink", "brown")
KINDS = COLOURS + ("hum", "near_silence")


def db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def rms(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x * x))) if x.size else 0.0


def scale_to_db(x: np.ndarray, level_db: float) -> np.ndarray:
    """Scale `x` so its RMS is `level_db` dB relative to full scale (1.0)."""
    r = rms(x)
    if r == 0.0:
        return np.zeros_like(x, dtype=np.float32)
    return (np.asarray(x, dtype=np.float64) * (db_to_amp(level_db) / r)).astype(np.float32)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise of `n` samples with a 1/f^a power spectrum: white a=0, pink a=1,
    brown a=2 (shaped in the frequency domain, DC removed)."""
    if colour not in COLOURS:
        raise HarnessError(f"unknown noise colour {colour!r}; choose one of {', '.join(COLOURS)}")
    if n <= 0:
        return np.zeros(0, dtype=np.float32)
    white = rng.standard_normal(n)
    if colour == "white":
        x = white
    else:
        spec = np.fft.rfft(white)
        f = np.arange(spec.size, dtype=np.float64)
        f[0] = 1.0
        spec = spec / (f ** (0.5 if colour == "pink" else 1.0))
        spec[0] = 0.0
        x = np.fft.irfft(spec, n)
    x = x - x.mean()
    r = rms(x)
    return (x / r if r > 0 else x).astype(np.float32)


def hum(n: int, sample_rate: int, rng: np.random.Generator, freq: float = 50.0,
        harmonics: int = 4) -> np.ndarray:
    """Unit-RMS mains hum: `freq` (50 or 60 Hz) and its first harmonics with 1/k amplitudes,
    random phases and a slight random detuning (+-0.3 %)."""
    if harmonics < 1:
        raise HarnessError(f"hum needs at least one harmonic, got {harmonics}")
    t = np.arange(n, dtype=np.float64) / sample_rate
    f0 = freq * (1.0 + rng.uniform(-0.003, 0.003))
    x = np.zeros(n, dtype=np.float64)
    for k in range(1, harmonics + 1):
        if k * f0 >= sample_rate / 2:
            break
        x += np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) / k
    r = rms(x)
    return (x / r if r > 0 else x).astype(np.float32)


def babble(sources: Sequence[np.ndarray], n: int, rng: np.random.Generator,
           talkers: Optional[int] = None) -> np.ndarray:
    """Unit-RMS babble of `n` samples: `talkers` (default all) of the given speech arrays, each
    normalised, looped to length, started at a random offset, and summed."""
    srcs = [np.asarray(s, dtype=np.float64) for s in sources if len(s) > 0]
    if not srcs:
        raise HarnessError("babble needs at least one non-empty speech array")
    k = len(srcs) if talkers is None else int(talkers)
    if not 1 <= k <= len(srcs):
        raise HarnessError(f"babble: talkers must be in [1, {len(srcs)}], got {talkers}")
    chosen = rng.choice(len(srcs), size=k, replace=False)
    out = np.zeros(n, dtype=np.float64)
    for i in chosen:
        s = srcs[int(i)]
        r = rms(s)
        if r == 0:
            continue
        start = int(rng.integers(0, len(s)))
        reps = int(np.ceil((n + start) / len(s)))
        out += np.tile(s / r, reps)[start:start + n]
    r = rms(out)
    return (out / r if r > 0 else out).astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise scaled so that 10 log10(P_signal / P_noise) = snr_db. The noise is
    looped or cut to the signal's length."""
    signal = np.asarray(signal, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.size == 0:
        raise HarnessError("mix_at_snr: empty noise")
    if noise.size < signal.size:
        noise = np.tile(noise, int(np.ceil(signal.size / noise.size)))
    noise = noise[: signal.size]
    ps, pn = rms(signal), rms(noise)
    if pn == 0 or ps == 0:
        return signal.astype(np.float32)
    return (signal + noise * (ps / pn) / db_to_amp(snr_db)).astype(np.float32)


def mix_sources(sources: Sequence[np.ndarray], offsets: Sequence[int],
                gains_db: Sequence[float]) -> List[np.ndarray]:
    """Place sources at sample offsets with gains into a common length; returns the scaled,
    padded sources (their sum is the mixture). The building block for two-speaker items."""
    if not (len(sources) == len(offsets) == len(gains_db)):
        raise HarnessError("mix_sources: sources, offsets and gains must have the same length")
    n = max(int(o) + len(s) for s, o in zip(sources, offsets))
    out = []
    for s, o, g in zip(sources, offsets, gains_db):
        x = np.zeros(n, dtype=np.float32)
        x[int(o):int(o) + len(s)] = np.asarray(s, dtype=np.float32) * db_to_amp(g)
        out.append(x)
    return out


@dataclass(frozen=True)
class NoiseSpec:
    """A planned noise signal: render(spec, n, sr) always gives the same samples.

    kind: white | pink | brown | hum | near_silence; level_db: RMS in dBFS;
    freq / harmonics: for hum; seed: the item's own seed."""

    kind: str
    level_db: float
    seed: int
    freq: float = 50.0
    harmonics: int = 4

    def to_dict(self) -> dict:
        return {"kind": self.kind, "level_db": self.level_db, "seed": self.seed,
                "freq": self.freq, "harmonics": self.harmonics}


def render(spec: NoiseSpec, n: int, sample_rate: int) -> np.ndarray:
    """The float32 samples of a NoiseSpec (length n)."""
    rng = np.random.default_rng(int(spec.seed))
    if spec.kind in COLOURS:
        x = coloured_noise(n, spec.kind, rng)
    elif spec.kind == "hum":
        # hum with a faint white floor, as a real recording has
        x = hum(n, sample_rate, rng, spec.freq, spec.harmonics) \
            + 0.05 * coloured_noise(n, "white", rng)
    elif spec.kind == "near_silence":
        x = coloured_noise(n, "pink", rng)
    else:
        raise HarnessError(f"unknown noise kind {spec.kind!r}; choose one of {', '.join(KINDS)}")
    return scale_to_db(x, spec.level_db)


def random_silence_spec(rng: np.random.Generator) -> NoiseSpec:
    """A seeded choice of background for a "_silence_" clip: coloured noise (-55..-25 dBFS),
    50/60 Hz hum (-50..-25 dBFS) or near-silence (-80..-60 dBFS)."""
    kind = KINDS[int(rng.integers(0, len(KINDS)))]
    seed = int(rng.integers(0, 2**31 - 1))
    if kind == "hum":
        return NoiseSpec("hum", round(float(rng.uniform(-50, -25)), 2), seed,
                         freq=float(rng.choice([50.0, 60.0])), harmonics=int(rng.integers(2, 7)))
    if kind == "near_silence":
        return NoiseSpec(kind, round(float(rng.uniform(-80, -60)), 2), seed)
    return NoiseSpec(kind, round(float(rng.uniform(-55, -25)), 2), seed)


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16 (rounded, clipped)."""
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767.0), -32768, 32767).astype(
        np.int16)
