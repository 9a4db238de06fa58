"""The plan of a `synth` corpus: sizes, languages, speakers and the list of items to render.

`make_plan(size, seed)` is pure and deterministic: it decides every item (id, text, voice,
speaker parameters, split, noise spec, ...) from the seed alone, before any audio exists. The
renderer (synth_render) turns items into audio shard by shard. New item kinds (noisy speech,
denoising pairs, ...) are added as a plan function plus a renderer.

The pieces: synth_spec (sizes, speakers, the Item and Plan records), synth_plan_speech (speech,
ASV and keyword items), synth_plan_mix (mixtures, conversations, noise clips); here they are put
together in their fixed order and every item gets its recording conditions.

Two-speaker items (subsets "mix" and "conv") and babble draw their speakers by split from
`split_speakers`: train from the "train" speakers, dev / test from the held-out speakers of the
ASV set with that asv_split, so no dev / test speaker of separation or diarization is ever heard
in training. Their texts are short English prefixes of the split's UDHR chunks.
"""

from __future__ import annotations

import numpy as np

from harness.data import synth_conditions as conditions
from harness.data.synth_plan_mix import plan_conv, plan_mix, plan_noise
from harness.data.synth_plan_speech import plan_asv, plan_kws, plan_speech
from harness.data.synth_spec import Item, Plan, make_speakers, size_spec
from harness.data.synth_text import rng_for
from harness.errors import HarnessError


def make_plan(size: str, seed: int) -> Plan:
    spec = size_spec(size)
    if not isinstance(seed, int) or seed < 0:
        raise HarnessError(f"synth seed must be a non-negative integer, got {seed!r}")
    speakers = make_speakers(spec, seed)
    speech, langs = plan_speech(spec, seed, speakers)
    asv, trials = plan_asv(spec, seed, speakers)
    kws = plan_kws(spec, seed, speakers)
    # appended after the older subsets: the shards of those (and so their audio) are unchanged
    mix = plan_mix(spec, seed, speakers)
    conv = plan_conv(spec, seed, speakers)
    noise_clips = plan_noise(spec, seed, speakers, [c for c, _ in spec.languages])
    items = speech + asv + kws + mix + conv + noise_clips
    for it in items:
        it.seed = int(rng_for(seed, "item", it.id).integers(0, 2**31 - 1))
        add_conditions(it, seed)
    return Plan(size, seed, langs, speakers, items, trials)


def _jitter(voice: dict, rng: np.random.Generator) -> dict:
    return {**voice, **conditions.jitter_voice(rng, voice["pitch"], voice["range"], voice["rate"],
                                               voice["level_db"])}


def add_conditions(it: Item, seed: int) -> None:
    """Give one planned recording its own voice jitter, channel, room and noise (synth v2;
    synth_conditions). Speech and keyword clips jitter their voice and get all three; each
    source of a mixture jitters its voice and gets a channel only (the sources are the
    separation targets and the mixture must stay their exact sum); a conversation jitters every
    turn and gets one channel, room and noise for the whole recording. Noise clips are unchanged."""
    rng = rng_for(seed, "conditions", it.id)
    if it.kind in ("speech", "word"):
        v = _jitter({"pitch": it.pitch, "range": it.range, "rate": it.rate, "level_db": it.level_db}, rng)
        it.pitch, it.range, it.rate, it.level_db = v["pitch"], v["range"], v["rate"], v["level_db"]
        it.render["cond"] = conditions.draw(rng)
    elif it.kind == "mix":
        it.render["voices"] = [_jitter(v, rng) for v in it.render["voices"]]
        it.render["conds"] = [conditions.draw(rng, reverb=False, add_noise=False)
                              for _ in it.render["voices"]]
    elif it.kind == "conv":
        it.render["voices"] = [_jitter(v, rng) for v in it.render["voices"]]
        it.render["cond"] = conditions.draw(rng)
