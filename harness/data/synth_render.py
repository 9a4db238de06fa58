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
from harness.data import synth_conditions as conditions
from harness.data.corpus import overlap_ratio
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
    y = resample(syn.audio.astype(np.float64) / 32768.0, syn.sample_rate)
    y = _level(conditions.apply(y, item["render"].get("cond"), OUT_RATE), item["level_db"])
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
    w = resample(syn.audio[a:b].astype(np.float64) / 32768.0, sr)
    w = _level(conditions.apply(w, item["render"].get("cond"), OUT_RATE), item["level_db"])
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


def _synth16(text: str, f: dict, seed: int, what: str):
    """(16 kHz float64 audio, alignment in seconds) of one sentence with speaker fields `f`."""
    syn = get_engine().synthesize(text, voice=f["voice"], rate=f["rate"], pitch=f["pitch"],
                                  range_=f["range"], seed=seed)
    if syn.audio.size == 0:
        raise HarnessError(f"espeak produced no audio for {what} ({text[:40]!r})")
    y = resample(syn.audio.astype(np.float64) / 32768.0, syn.sample_rate)
    return y, _scale_alignment(syn.alignment, len(y) / OUT_RATE)


def render_mix(item: dict) -> Tuple[np.ndarray, dict]:
    """A Libri2Mix-style `min` mixture. Both sentences are truncated to the shorter; source 1
    gets its speaker's level, source 2 the planned level relative to source 1; both are scaled
    together when the mixture would pass PEAK_LIMIT, then quantised to int16 *before* summing,
    so the mixture file is exactly s1 + s2 sample by sample."""
    r = item["render"]
    conds = r.get("conds") or [None] * len(r["texts"])
    ys = [conditions.apply(_synth16(t, f, sd, item["id"])[0], c, OUT_RATE)
          for t, f, sd, c in zip(r["texts"], r["voices"], r["seeds"], conds)]
    n = min(len(y) for y in ys)
    s1 = noise.scale_to_db(ys[0][:n], r["voices"][0]["level_db"]).astype(np.float64)
    s2 = noise.scale_to_db(ys[1][:n], r["voices"][0]["level_db"] + r["rel_level_db"]
                           ).astype(np.float64)
    peak = float(np.max(np.abs(s1) + np.abs(s2))) if n else 0.0
    if peak > PEAK_LIMIT:  # the bound on |s1| + |s2| keeps s1, s2 and their sum unclipped
        s1, s2 = s1 * (PEAK_LIMIT / peak), s2 * (PEAK_LIMIT / peak)
    p1, p2 = noise.to_int16(s1), noise.to_int16(s2)
    mix = p1.astype(np.int32) + p2.astype(np.int32)
    if np.abs(mix).max(initial=0) > 32767:  # cannot happen after the guard; never write a clip
        raise HarnessError(f"{item['id']}: mixture overflows int16")
    src = item["custom"]["sources"]
    return mix.astype(np.int16), {"_files": {src[0]: p1, src[1]: p2}}


def speech_extent(alignment, what: str = "") -> Tuple[float, float]:
    """(start, end) in seconds of the first and last non-"sil" phone of an alignment."""
    speech = [(s, e) for p, s, e in alignment if p != "sil"]
    if not speech:
        raise HarnessError(f"espeak gave no phones for {what or 'a turn'}")
    return speech[0][0], speech[-1][1]


def render_conv(item: dict) -> Tuple[np.ndarray, dict]:
    """A two-speaker conversation. Each turn is cut at its speech extent (+-30 ms, as keyword
    clips) and leveled to its speaker; turns are then placed one after the other: after a
    planned pause, or overlapping the previous turn. The overlap time to place is
    r * T / (1 + r) (r: planned ratio, T: the turns' total speech time), shared over the
    overlapping gaps by their weights, each capped so that no turn starts before its own
    speaker's previous turn ends and no overlap exceeds 80 % of either turn; a capped gap passes
    its remainder on to the later ones. Labels are the placed speech extents (exact sample
    offsets), never planned durations; the measured ratio is returned with them."""
    r = item["render"]
    margin = 0.03
    turns = []
    for t, f, sd in zip(r["texts"], r["voices"], r["seeds"]):
        y, align = _synth16(t, f, sd, item["id"])
        a, b = speech_extent(align, f"{item['id']} ({t[:40]!r})")
        lo = max(0, int((a - margin) * OUT_RATE))
        hi = min(len(y), int(np.ceil((b + margin) * OUT_RATE)))
        w = _level(y[lo:hi], f["level_db"])
        turns.append((w, a - lo / OUT_RATE, b - lo / OUT_RATE, f["speaker"]))
    dur = [e - s for _, s, e, _ in turns]
    total = sum(dur)
    want = r["overlap_ratio"] * total / (1.0 + r["overlap_ratio"])
    weights = [g[1] if g[0] == "overlap" else 0.0 for g in r["gaps"]]
    offsets, spans = [], []  # sample offset of each turn's audio; its speech span in seconds
    for i, (w, s, e, _) in enumerate(turns):
        if i == 0:
            start = r["lead"]
        else:
            kind, val = r["gaps"][i - 1]
            prev_end = spans[-1][1]
            if kind == "pause":
                start = prev_end + val
            else:
                left = sum(weights[i - 1:])
                o = want * val / left if left > 0 else 0.0
                cap = 0.8 * min(dur[i - 1], dur[i])
                if i >= 2:  # the same speaker's previous turn must be over
                    cap = min(cap, prev_end - spans[-2][1] - 0.02)
                o = float(np.clip(o, 0.0, max(cap, 0.0)))
                want -= o
                start = prev_end - o
        off = max(0, int(round((start - s) * OUT_RATE)))
        offsets.append(off)
        spans.append((off / OUT_RATE + s, off / OUT_RATE + e))
    n = max(off + len(w) for off, (w, _, _, _) in zip(offsets, turns))
    n += int(round(r["tail"] * OUT_RATE))
    y = np.zeros(n, dtype=np.float64)
    for off, (w, _, _, _) in zip(offsets, turns):
        y[off:off + len(w)] += w
    y = conditions.apply(y, r.get("cond"), OUT_RATE)  # one room, channel and noise for the call
    peak = float(np.abs(y).max())
    if peak > PEAK_LIMIT:
        y *= PEAK_LIMIT / peak
    segments = sorted(([spk, round(a, 4), round(b, 4)] for (a, b), (_, _, _, spk)
                       in zip(spans, turns)), key=lambda x: (x[1], x[2]))
    return y, {"segments": segments, "overlap_ratio": round(overlap_ratio(segments), 4)}


def render_noise_clip(item: dict) -> Tuple[np.ndarray, dict]:
    """A noise-set clip: coloured noise or hum from its NoiseSpec, or babble of the planned
    utterances (other languages) looped, offset at random and summed by noise.babble."""
    r = item["render"]
    n = int(round(r["seconds"] * OUT_RATE))
    if r["kind"] != "babble":
        return noise.render(noise.NoiseSpec(**r["noise"]), n, OUT_RATE).astype(np.float64), {}
    srcs = [_synth16(t, f, sd, item["id"])[0] for t, f, sd in zip(r["texts"], r["voices"],
                                                                 r["seeds"])]
    b = noise.babble(srcs, n, np.random.default_rng(r["mix_seed"]))
    return _level(b, r["level_db"]), {}


RENDERERS = {"speech": render_speech, "word": render_word, "noise": render_noise,
             "mix": render_mix, "conv": render_conv, "noise_clip": render_noise_clip}


def render_shard(job: Dict) -> Dict:
    """Render job["items"] (dicts of synth_spec.Item) in order into job["root"]; write the
    shard's results to job["result"] (JSON, atomically) and return them."""
    import soundfile as sf

    root = Path(job["root"])
    results = []
    for item in job["items"]:
        y, extra = RENDERERS[item["kind"]](item)
        # a renderer returns float audio, or int16 when it quantised itself (mixtures), and
        # may add files of its own (a mixture's sources) under "_files"
        files = {item["path"]: y if y.dtype == np.int16 else noise.to_int16(y)}
        files.update(extra.pop("_files", {}))
        for rel, pcm in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), pcm, OUT_RATE, format="FLAC", subtype="PCM_16")
        pcm = files[item["path"]]
        results.append({"id": item["id"], "num_samples": int(len(pcm)), **extra})
    out = {"shard": job["shard"], "digest": job["digest"], "espeak_ng": get_engine().version(),
           "items": results}
    res = Path(job["result"])
    tmp = res.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, ensure_ascii=False))
    os.replace(tmp, res)
    return out
