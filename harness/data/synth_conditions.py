"""Per-recording conditions of synth v2: what varies between two recordings of one person.

A v1 synth speaker was one espeak variant x pitch x range x rate, rendered identically in every
utterance, so the long-term average spectrum alone identified it. In v2 every recording draws
its own conditions around its speaker's values (docs/synth.md):

- voice: espeak pitch and pitch range jittered by up to +-PITCH_JITTER / +-RANGE_JITTER units,
  the rate scaled by RATE_JITTER;
- level: the speaker's level +- LEVEL_JITTER_DB;
- channel: a spectral tilt in dB per octave around 1 kHz, and on a share of recordings a band
  limit (telephone-like low-pass, and/or a high-pass);
- room: on a share of recordings a synthetic impulse response (direct path plus an exponentially
  decaying noise tail with a drawn RT60 and direct-to-reverberant ratio);
- noise: on a share of recordings additive white / pink / brown noise at a drawn SNR.

`draw` runs in the plan (pure, from the item's own generator); `apply` runs in the renderer
(numpy only, deterministic). A speaker stays one voice: the jitter is small against the spread
between speakers, and the channel, room and noise are drawn per recording, never per speaker.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from harness.data import noise

PITCH_JITTER = 6  # espeak pitch units (0..100); speakers' base pitches are 25..75 in steps of 5
RANGE_JITTER = 10  # espeak pitch-range units
RATE_JITTER = (0.92, 1.08)  # factor on the speaker's words per minute
LEVEL_JITTER_DB = 4.0
TILT_DB_PER_OCTAVE = (-3.0, 3.0)
LOWPASS = (0.3, (3400.0, 7000.0))  # (share of recordings, cutoff range in Hz)
HIGHPASS = (0.3, (80.0, 300.0))
REVERB = (0.5, (0.15, 0.6), (0.0, 12.0))  # (share, RT60 s, direct-to-reverberant ratio dB)
NOISE = (0.4, (5.0, 25.0))  # (share, SNR dB)
NOISE_COLOURS = ("white", "pink", "brown")


def _u(rng: np.random.Generator, lo: float, hi: float, nd: int = 3) -> float:
    return round(float(rng.uniform(lo, hi)), nd)


def draw(rng: np.random.Generator, reverb: bool = True, add_noise: bool = True) -> Dict:
    """One recording's channel, room and noise (a JSON-able dict for `apply`).

    Args:
        rng: the item's own generator (the plan's, so the draw depends on the seed alone).
        reverb: whether the recording may get a room (False for separation sources: a source
            is its own target, and reverberant targets would change what SS measures).
        add_noise: whether it may get additive noise (False where the file must stay a sum of
            other files, as a mixture).
    """
    cond: Dict = {"tilt_db_oct": _u(rng, *TILT_DB_PER_OCTAVE, nd=2)}
    lp, hp, rv, nz = rng.uniform(size=4)  # always four draws: the stream never depends on flags
    lp_hz, hp_hz = _u(rng, *LOWPASS[1], nd=0), _u(rng, *HIGHPASS[1], nd=0)
    rt60, drr = _u(rng, *REVERB[1]), _u(rng, *REVERB[2], nd=2)
    snr, colour = _u(rng, *NOISE[1], nd=2), NOISE_COLOURS[int(rng.integers(0, 3))]
    rir_seed, noise_seed = int(rng.integers(0, 2**31 - 1)), int(rng.integers(0, 2**31 - 1))
    if lp < LOWPASS[0]:
        cond["lowpass_hz"] = lp_hz
    if hp < HIGHPASS[0]:
        cond["highpass_hz"] = hp_hz
    if reverb and rv < REVERB[0]:
        cond["room"] = {"rt60_s": rt60, "drr_db": drr, "seed": rir_seed}
    if add_noise and nz < NOISE[0]:
        cond["noise"] = {"colour": colour, "snr_db": snr, "seed": noise_seed}
    return cond


def jitter_voice(rng: np.random.Generator, pitch: int, range_: int, rate: int,
                 level_db: float) -> Dict:
    """The espeak voice parameters of one recording around its speaker's own values."""
    return {
        "pitch": int(np.clip(pitch + int(rng.integers(-PITCH_JITTER, PITCH_JITTER + 1)), 0, 100)),
        "range": int(np.clip(range_ + int(rng.integers(-RANGE_JITTER, RANGE_JITTER + 1)), 0, 100)),
        "rate": int(np.clip(round(rate * float(rng.uniform(*RATE_JITTER))), 80, 450)),
        "level_db": round(level_db + float(rng.uniform(-LEVEL_JITTER_DB, LEVEL_JITTER_DB)), 2),
    }


def channel_gain(n_fft: int, sample_rate: int, cond: Dict) -> np.ndarray:
    """The channel's magnitude response on the rfft bins of an `n_fft`-point transform:
    tilt (dB/octave around 1 kHz, flat below 100 Hz) times raised-cosine band edges (a 15 %
    transition band, -60 dB beyond it)."""
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    octaves = np.log2(np.maximum(f, 100.0) / 1000.0)
    g = 10.0 ** (cond.get("tilt_db_oct", 0.0) * octaves / 20.0)
    floor = 10.0 ** (-60 / 20)

    def edge(x):  # 0 -> 1 raised cosine over x in [0, 1]
        return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))

    if "lowpass_hz" in cond:
        fc = float(cond["lowpass_hz"])
        g *= floor + (1 - floor) * (1 - edge((f - fc) / (0.15 * fc)))
    if "highpass_hz" in cond:
        fc = float(cond["highpass_hz"])
        g *= floor + (1 - floor) * edge((f - 0.85 * fc) / (0.15 * fc))
    return g


def room_impulse(room: Dict, sample_rate: int) -> np.ndarray:
    """A synthetic impulse response: a unit direct path, then from 2.5 ms Gaussian noise decaying
    by 60 dB over RT60, scaled so that direct / tail energy is `drr_db`. Length min(RT60, 0.8 s)."""
    rng = np.random.default_rng(int(room["seed"]))
    rt60 = float(room["rt60_s"])
    n = int(min(rt60, 0.8) * sample_rate)
    h = np.zeros(max(n, 64))
    start = int(0.0025 * sample_rate)
    t = np.arange(len(h) - start) / sample_rate
    tail = rng.standard_normal(len(t)) * np.exp(-6.9078 * t / rt60)  # ln(1000): -60 dB at RT60
    tail *= np.sqrt(10.0 ** (-float(room["drr_db"]) / 10.0) / np.sum(tail ** 2))
    h[start:] = tail
    h[0] = 1.0
    return h


def apply(y: np.ndarray, cond: Optional[Dict], sample_rate: int) -> np.ndarray:
    """A clean recording `y` (float, any level) through its room, channel and noise; same length.
    The caller sets the level afterwards (levels are per recording, drawn by `jitter_voice`)."""
    if not cond:
        return np.asarray(y, dtype=np.float64)
    x = np.asarray(y, dtype=np.float64)
    n = len(x)
    h = room_impulse(cond["room"], sample_rate) if "room" in cond else np.ones(1)
    n_fft = 1 << int(np.ceil(np.log2(max(n + len(h) - 1, 2))))
    spec = np.fft.rfft(x, n_fft) * np.fft.rfft(h, n_fft) * channel_gain(n_fft, sample_rate, cond)
    out = np.fft.irfft(spec, n_fft)[:n]
    if "noise" in cond:
        nz = cond["noise"]
        bg = noise.coloured_noise(n, nz["colour"], np.random.default_rng(int(nz["seed"])))
        out = noise.mix_at_snr(out, bg, float(nz["snr_db"])).astype(np.float64)
    return out
