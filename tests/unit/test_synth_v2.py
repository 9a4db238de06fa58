"""synth v2: held-out speakers disjoint from every size's training speakers, test pools of at
least 20 speakers, and per-recording conditions that do what they say (pure plan + numpy; no
audio is rendered here)."""

import json

import numpy as np
import pytest

from harness.data import noise
from harness.data import synth_conditions as cond
from harness.data.synth import is_complete
from harness.data.synth_plan import make_plan
from harness.data.synth_spec import GENERATOR_VERSION, SIZES, make_speakers, split_speakers, variant_pools

SR = 16000


@pytest.mark.parametrize("seed", [0, 7])
def test_heldout_speakers_are_never_training_speakers_of_any_size(seed):
    train, held = set(), set()
    train_v, held_v = variant_pools(seed)
    assert not set(train_v) & set(held_v)
    for size in SIZES:
        for s in make_speakers(SIZES[size], seed):
            (train if s.role == "train" else held).add(s.id)
            assert s.variant in (train_v if s.role == "train" else held_v)
    assert train and held and not train & held
    # every size takes a prefix of the same streams: small's speakers are medium's first ones
    small = [s.id for s in make_speakers(SIZES["small"], seed) if s.role == "heldout"]
    medium = [s.id for s in make_speakers(SIZES["medium"], seed) if s.role == "heldout"]
    assert medium[:len(small)] == small


def test_v1_leak_is_gone_small_test_speakers_are_not_in_medium_pretraining():
    small = make_plan("small", 0)
    heldout = {s.id for s in small.speakers if s.role == "heldout"}
    medium_train = {s.id for s in make_speakers(SIZES["medium"], 0) if s.role == "train"}
    assert not heldout & medium_train


def test_small_test_pools_have_at_least_20_speakers():
    plan = make_plan("small", 0)
    test_pool = split_speakers(plan.speakers, "test")
    assert len(test_pool) >= 20
    asv_test = {it.speaker for it in plan.items if it.subset == "asv" and it.split == "test"}
    mix_test = {s for it in plan.items if it.subset == "mix" and it.split == "test"
                for s in it.custom["source_speakers"]}
    conv_test = {s for it in plan.items if it.subset == "conv" and it.split == "test"
                 for s in it.custom["speakers"]}
    assert len(asv_test) >= 20 and len(mix_test) >= 20 and len(conv_test) >= 20


def test_every_recording_of_a_speaker_gets_its_own_voice_and_conditions():
    plan = make_plan("tiny", 0)
    spk = {s.id: s for s in plan.speakers}
    speech = [it for it in plan.items if it.kind == "speech"]
    by = {}
    for it in speech:
        by.setdefault(it.speaker, []).append(it)
        base = spk[it.speaker]
        assert abs(it.pitch - base.pitch) <= cond.PITCH_JITTER
        assert abs(it.level_db - base.level_db) <= cond.LEVEL_JITTER_DB
        assert "tilt_db_oct" in it.render["cond"]
    for items in by.values():
        if len(items) >= 5:
            assert len({(i.pitch, i.rate, i.level_db) for i in items}) > 1
            assert len({json.dumps(i.render["cond"], sort_keys=True) for i in items}) == len(items)
    shares = {k: np.mean([k in it.render["cond"] for it in speech]) for k in ("room", "noise")}
    assert 0.25 < shares["room"] < 0.75 and 0.2 < shares["noise"] < 0.6
    # a mixture's sources never get a room or noise: the mixture stays their exact sum
    for it in (i for i in plan.items if i.kind == "mix"):
        assert all("room" not in c and "noise" not in c for c in it.render["conds"])
    assert make_plan("tiny", 0).digest() == plan.digest()


def _band_power(x, lo, hi):
    f = np.fft.rfftfreq(len(x), 1 / SR)
    p = np.abs(np.fft.rfft(x)) ** 2
    return p[(f >= lo) & (f < hi)].mean()


def test_channel_tilt_and_band_limits():
    x = noise.coloured_noise(SR * 4, "white", np.random.default_rng(0)).astype(np.float64)
    y = cond.apply(x, {"tilt_db_oct": 3.0}, SR)
    # +3 dB per octave: 2-4 kHz is about 6 dB above 500-1000 Hz relative to the input
    gain = 10 * np.log10(_band_power(y, 2800, 2900) / _band_power(y, 700, 725))
    assert gain == pytest.approx(6.0, abs=1.0)
    y = cond.apply(x, {"tilt_db_oct": 0.0, "lowpass_hz": 3400.0, "highpass_hz": 200.0}, SR)
    passband = _band_power(y, 800, 2500)
    assert _band_power(y, 4500, 8000) < passband * 1e-5  # -50 dB and more above the edge
    assert _band_power(y, 20, 150) < passband * 1e-4  # -40 dB (the measurement leaks too)
    assert _band_power(y, 800, 2500) == pytest.approx(_band_power(x, 800, 2500), rel=0.1)


def test_room_impulse_has_its_drr_and_decay():
    room = {"rt60_s": 0.4, "drr_db": 6.0, "seed": 3}
    h = cond.room_impulse(room, SR)
    assert h[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(6.0, abs=1e-6)
    tail = h[int(0.0025 * SR):]
    early = np.sum(tail[:int(0.05 * SR)] ** 2) / int(0.05 * SR)
    late = np.sum(tail[int(0.2 * SR):int(0.25 * SR)] ** 2) / int(0.05 * SR)
    # 60 dB per RT60: about 27 dB between the first 50 ms and 200-250 ms at RT60 0.4 s
    assert 10 * np.log10(early / late) == pytest.approx(60 * 0.2 / 0.4, abs=4.0)


def test_noise_is_added_at_its_snr_and_the_length_is_kept():
    x = np.sin(2 * np.pi * 440 * np.arange(SR) / SR) * 0.3
    y = cond.apply(x, {"tilt_db_oct": 0.0, "noise": {"colour": "pink", "snr_db": 10.0, "seed": 1}}, SR)
    assert len(y) == len(x)
    snr = 10 * np.log10(np.sum(x ** 2) / np.sum((y - x) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)


def test_a_v1_corpus_is_never_taken_for_v2(tmp_path):
    (tmp_path / "corpus.json").write_text(json.dumps(
        {"name": "synth", "size": "tiny", "seed": 0, "generator": "synth-2"}))
    assert GENERATOR_VERSION == "synth-v2"
    assert not is_complete(tmp_path, "tiny", 0)
