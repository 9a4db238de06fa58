"""Render one shard of a `synth` plan to 16 kHz FLAC files (runs in a fresh process per shard).

espeak-ng's output depends on what the process synthesised before, so a shard's items are
rendered in plan order by a process that has rendered nothing else: the audio of an item then
depends on the plan only, never on how many workers there are. This module imports no torch,
scipy or lhotse, to keep the start of each shard process short.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from math import gcd
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from harness.data import noise
from harness.data.espeak import get_engine
from harness.errors import HarnessError

OUT_RATE = 16000
KWS_SAMPLES = 16000
PEAK_LIMIT = 0.95


@lru_cache(maxsize=4)
def _filter_bank(up: int, down: int, zero_crossings: int = 16, beta: float = 8.0):
    """Polyphase windowed-sinc (Kaiser) filter bank for resampling by up/down. Output k sits at
    input position k*down/up = n0 + phase/up; its taps weigh input samples n0-W+1 .. n0+W with
    h[phase]. Rows are normalised to unit DC gain."""
    cutoff = 0.5 * min(1.0, up / down) * 0.94  # cycles per input sample, below both Nyquists
    half = int(np.ceil(zero_crossings / (2 * cutoff)))
    j = np.arange(-half + 1, half + 1, dtype=np.float64)
    t = j[None, :] - (np.arange(up, dtype=np.float64) / up)[:, None]
    window = np.i0(beta * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, 1.0))) / np.i0(beta)
    h = 2 * cutoff * np.sinc(2 * cutoff * t) * window
    return h / h.sum(axis=1, keepdims=True), half


def resample(x: np.ndarray, sr_in: int, sr_out: int = OUT_RATE) -> np.ndarray:
    """Band-limited resampling (polyphase windowed sinc) of a 1-D float array. Output length
    ceil(len * sr_out / sr_in). Pure numpy, deterministic."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float64)
    g = gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    h, half = _filter_bank(up, down)
    x = np.asarray(x, dtype=np.float64)
    n_out = -(-len(x) * up // down)
    k = np.arange(n_out, dtype=np.int64)
    pos = k * down  # output k sits at input position pos / up
    n0, phase = pos // up, pos % up
    xp = np.concatenate([np.zeros(half), x, np.zeros(half + 1)])
    idx = n0[:, None] + np.arange(-half + 1, half + 1)[None, :] + half
    return np.einsum("ij,ij->i", xp[idx], h[phase])


def _level(x: np.ndarray, level_db: float) -> np.ndarray:
    y = noise.scale_to_db(x, level_db).astype(np.float64)
    peak = float(np.abs(y).max()) if y.size else 0.0
    return y * (PEAK_LIMIT / peak) if peak > PEAK_LIMIT else y


def _scale_alignment(alignment, duration: float) -> List[list]:
    out = [[p, round(min(s, duration), 4), round(min(e, duration), 4)] for p, s, e in alignment]
    out = [a for a in out if a[2] > a[1]]
    if out:
        out[-1][2] = round(duration, 4)
    return out


def render_speech(item: dict) -> Tuple[np.ndarray, dict]:
    eng = get_engine()
    syn = eng.synthesize(item["text"], voice=item["voice"], rate=item["rate"],
                         pitch=item["pitch"], range_=item["range"], seed=item["seed"])
    if syn.audio.size == 0:
        raise HarnessError(f"espeak produced no audio for {item['id']} ({item['text'][:40]!r})")
    ipa = eng.text_to_phonemes(item["text"], voice=item["lang_voice"])
    y = _level(resample(syn.audio.astype(np.float64) / 32768.0, syn.sample_rate),
               item["level_db"])
    dur = len(y) / OUT_RATE
    align = _scale_alignment(syn.alignment, dur)
    phones = " ".join(p for p, _, _ in align if p != "sil")
    if not phones:
        raise HarnessError(f"espeak gave no phonemes for {item['id']} ({item['text'][:40]!r})")
    return y, {"phones": phones, "alignment": align, "ipa": ipa}


def render_word(item: dict) -> Tuple[np.ndarray, dict]:
    """A keyword clip: the word cut at its first and last phone (+-30 ms), centred (plus the
    planned shift) in one second over a low background noise."""
    syn = get_engine().synthesize(item["text"], voice=item["voice"], rate=item["rate"],
                                  pitch=item["pitch"], range_=item["range"], seed=item["seed"])
    sr = syn.sample_rate
    speech = [(s, e) for p, s, e in syn.alignment if p != "sil"]
    a = max(0, int((speech[0][0] - 0.03) * sr)) if speech else 0
    b = min(len(syn.audio), int((speech[-1][1] + 0.03) * sr)) if speech else len(syn.audio)
    w = _level(resample(syn.audio[a:b].astype(np.float64) / 32768.0, sr), item["level_db"])
    w = w[:KWS_SAMPLES]
    room = KWS_SAMPLES - len(w)
    start = int(np.clip(room // 2 + int(item["render"]["shift"] * OUT_RATE), 0, room))
    spec = noise.NoiseSpec(**item["render"]["noise"])
    y = noise.render(spec, KWS_SAMPLES, OUT_RATE).astype(np.float64)
    y[start:start + len(w)] += w
    return y, {"word_start": round(start / OUT_RATE, 4),
               "word_end": round((start + len(w)) / OUT_RATE, 4)}


def render_noise(item: dict) -> Tuple[np.ndarray, dict]:
    spec = noise.NoiseSpec(**item["render"]["noise"])
    return noise.render(spec, KWS_SAMPLES, OUT_RATE).astype(np.float64), {"noise": spec.kind}


RENDERERS = {"speech": render_speech, "word": render_word, "noise": render_noise}


def render_shard(job: Dict) -> Dict:
    """Render job["items"] (dicts of synth_plan.Item) in order into job["root"]; write the
    shard's results to job["result"] (JSON, atomically) and return them."""
    import soundfile as sf

    root = Path(job["root"])
    results = []
    for item in job["items"]:
        y, extra = RENDERERS[item["kind"]](item)
        pcm = noise.to_int16(y)
        path = root / item["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), pcm, OUT_RATE, format="FLAC", subtype="PCM_16")
        results.append({"id": item["id"], "num_samples": int(len(pcm)), **extra})
    out = {"shard": job["shard"], "digest": job["digest"], "espeak_ng": get_engine().version(),
           "items": results}
    res = Path(job["result"])
    tmp = res.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, ensure_ascii=False))
    os.replace(tmp, res)
    return out
