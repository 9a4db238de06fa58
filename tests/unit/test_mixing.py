"""WavLM utterance mixing (harness/pretrain/mixing.py): realised SNR / energy ratio, region bounds,
identity at p = 0, determinism, mixing rates, clean secondary source, noise bank, config checks."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.errors import ConfigError, HarnessError
from harness.pretrain.mixing import MixConfig, MixEvent, NoiseBank, mix_batch

SR = 16000


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _batch(B=6, T=8000, seed=0):
    """Gaussian waveforms with a different level per item, so a wrong power term shows up in dB."""
    g = torch.Generator().manual_seed(10_000 + seed)
    gains = torch.logspace(-2, 0, B).unsqueeze(1)
    return (torch.randn(B, T, generator=g) * gains).float()


def _bank(lengths=(1500, 6000, 20000), seed=1):
    g = torch.Generator().manual_seed(seed)
    return NoiseBank([torch.randn(n, generator=g) * 0.05 * (k + 1) for k, n in enumerate(lengths)])


def _source_segment(ev: MixEvent, wavs, bank):
    """The unscaled samples the event says were added."""
    if ev.kind == "utterance":
        return wavs[ev.source, ev.source_start:ev.source_start + ev.length].double()
    clip = bank.clips[ev.source]
    idx = (ev.source_start + torch.arange(ev.length)) % clip.numel()
    return clip[idx].double()


def _added(ev, wavs, out):
    """What the mix added to the primary's region (mixed - original), float64."""
    s, e = ev.start, ev.start + ev.length
    return out[ev.index, s:e].double() - wavs[ev.index, s:e].double()


def _measured_db(ev, wavs, out, bank, energy):
    """Primary-to-source power ratio at the applied scale, measured independently of mix_batch:
    "region" (the WavLM paper's Algorithm 1): the primary's mixed region against what was added
    there (out - wavs, i.e. scale x segment); "whole" (the authors' code): the whole primary crop
    against the whole source (other item or noise clip)."""
    if energy == "region":
        s, e = ev.start, ev.start + ev.length
        p_pri = wavs[ev.index, s:e].double().pow(2).mean().item()
        return 10 * math.log10(p_pri / _added(ev, wavs, out).pow(2).mean().item())
    whole_src = wavs[ev.source] if ev.kind == "utterance" else bank.clips[ev.source]
    p_pri = wavs[ev.index].double().pow(2).mean().item()
    return 10 * math.log10(p_pri / (ev.scale ** 2 * whole_src.double().pow(2).mean().item()))


@pytest.mark.parametrize("energy", ["region", "whole"])
def test_realised_snr_and_energy_ratio_match_the_draw(energy):
    wavs, bank = _batch(), _bank()
    cfg = MixConfig(mix_prob=1.0, noise_prob=0.5, energy=energy)
    seen = {"noise": 0, "utterance": 0, "tiled": 0}
    for seed in range(20):
        out, events = mix_batch(wavs, _gen(seed), cfg, bank)
        for ev in events:
            if ev.length < 50:  # too short to measure meaningfully; bounds are checked elsewhere
                continue
            lo, hi = cfg.snr_db if ev.kind == "noise" else cfg.ratio_db
            assert lo <= ev.target_db <= hi
            assert abs(_measured_db(ev, wavs, out, bank, energy) - ev.target_db) < 0.1, ev
            # the event's source / offsets describe exactly what was added
            expected = ev.scale * _source_segment(ev, wavs, bank)
            torch.testing.assert_close(_added(ev, wavs, out), expected, atol=2e-6, rtol=1e-4)
            seen[ev.kind] += 1
            seen["tiled"] += ev.kind == "noise" and bank.clips[ev.source].numel() < ev.length
    assert seen["noise"] > 10 and seen["utterance"] > 10 and seen["tiled"] > 0, seen


@pytest.mark.parametrize("max_fraction", [0.5, 0.3])
def test_region_bounds_and_untouched_outside(max_fraction):
    wavs, bank = _batch(B=8, T=4000), _bank(lengths=(700, 3000))
    T = wavs.shape[1]
    cap = math.floor(max_fraction * T)
    cfg = MixConfig(mix_prob=1.0, noise_prob=0.3, max_fraction=max_fraction)
    lengths = []
    for seed in range(60):
        out, events = mix_batch(wavs, _gen(seed), cfg, bank)
        touched = torch.zeros_like(wavs, dtype=torch.bool)
        for ev in events:
            assert 1 <= ev.length <= cap and 0 <= ev.start and ev.start + ev.length <= T
            n = T if ev.kind == "utterance" else bank.clips[ev.source].numel()
            if n >= ev.length:
                assert 0 <= ev.source_start and ev.source_start + ev.length <= n
            else:  # a tiled noise clip starts inside the clip
                assert 0 <= ev.source_start < n
            touched[ev.index, ev.start:ev.start + ev.length] = True
            lengths.append(ev.length)
        assert torch.equal(out[~touched], wavs[~touched])
    # L spans the whole range [1, cap] (the paper's {1, ..., L/2}), not a narrower one
    assert max(lengths) > 0.9 * cap and min(lengths) < 0.1 * cap


def test_zero_probability_is_the_exact_identity():
    wavs = _batch(B=64, T=1000)
    for cfg, bank in [(MixConfig(mix_prob=0.0), None), (MixConfig(mix_prob=0.0, noise_prob=0.5), _bank())]:
        for seed in range(20):
            out, events = mix_batch(wavs, _gen(seed), cfg, bank)
            assert events == [] and torch.equal(out, wavs) and out.dtype == wavs.dtype
            assert out.data_ptr() != wavs.data_ptr()  # a copy, not the input


def test_input_is_not_modified():
    wavs = _batch()
    before = wavs.clone()
    out, events = mix_batch(wavs, _gen(0), MixConfig(mix_prob=1.0), None)
    assert events and not torch.equal(out, wavs) and torch.equal(wavs, before)


def test_probability_one_mixes_every_item_with_another():
    wavs = _batch(B=5)
    sources = set()
    for seed in range(30):
        _, events = mix_batch(wavs, _gen(seed), MixConfig(mix_prob=1.0, noise_prob=0.0), None)
        assert [ev.index for ev in events] == list(range(5))
        for ev in events:
            assert ev.kind == "utterance" and ev.source != ev.index and 0 <= ev.source < 5
            sources.add((ev.index, ev.source))
    assert len(sources) == 5 * 4  # every other item gets picked


def test_same_seed_same_result_other_seed_differs():
    wavs, bank, cfg = _batch(), _bank(), MixConfig(mix_prob=0.7, noise_prob=0.4)
    a, ea = mix_batch(wavs, _gen(42), cfg, bank)
    b, eb = mix_batch(wavs, _gen(42), cfg, bank)
    c, ec = mix_batch(wavs, _gen(43), cfg, bank)
    assert torch.equal(a, b) and ea == eb
    assert not torch.equal(a, c) and ea != ec


def test_global_rng_is_not_used():
    wavs, cfg = _batch(), MixConfig(mix_prob=0.7)
    torch.manual_seed(0)
    a, ea = mix_batch(wavs, _gen(5), cfg)
    torch.manual_seed(1)
    b, eb = mix_batch(wavs, _gen(5), cfg)
    assert torch.equal(a, b) and ea == eb


def test_mixing_and_noise_rates():
    wavs = _batch(B=20, T=400)
    bank = _bank(lengths=(300, 500))
    mixed = noisy = 0
    for seed in range(100):  # 2000 items
        _, events = mix_batch(wavs, _gen(seed), MixConfig(mix_prob=0.2, noise_prob=0.0), None)
        mixed += len(events)
        _, events = mix_batch(wavs, _gen(seed), MixConfig(mix_prob=1.0, noise_prob=0.3), bank)
        noisy += sum(ev.kind == "noise" for ev in events)
    assert abs(mixed / 2000 - 0.2) < 0.03
    assert abs(noisy / 2000 - 0.3) < 0.04


def test_secondary_comes_from_the_unmixed_batch():
    # find an item whose source was mixed earlier in the same call, in the very samples it takes
    B, T = 3, 2000
    wavs = _batch(B=B, T=T)
    cfg = MixConfig(mix_prob=1.0)
    for seed in range(500):
        out, events = mix_batch(wavs, _gen(seed), cfg)
        by_index = {ev.index: ev for ev in events}
        for ev in events:
            src = by_index.get(ev.source)
            if src is None or src.index > ev.index or src.scale == 0 or ev.scale == 0:
                continue
            lo = max(ev.source_start, src.start)
            hi = min(ev.source_start + ev.length, src.start + src.length)
            if hi - lo < 100:
                continue
            clean = ev.scale * wavs[ev.source, ev.source_start:ev.source_start + ev.length].double()
            dirty = ev.scale * out[ev.source, ev.source_start:ev.source_start + ev.length].double()
            assert (clean - dirty).abs().max() > 1e-3  # the case tells the two apart
            torch.testing.assert_close(_added(ev, wavs, out), clean, atol=2e-6, rtol=1e-4)
            return
    pytest.fail("no seed produced a secondary taken from an already-mixed item")


def test_single_item_batch_uses_noise_or_nothing():
    wavs = _batch(B=1)
    out, events = mix_batch(wavs, _gen(0), MixConfig(mix_prob=1.0), None)
    assert events == [] and torch.equal(out, wavs)
    bank = _bank()
    out, events = mix_batch(wavs, _gen(0), MixConfig(mix_prob=1.0), bank)
    assert len(events) == 1 and events[0].kind == "noise" and -5.0 <= events[0].target_db <= 20.0


def test_silent_segment_adds_nothing():
    wavs = _batch(B=4)
    wavs[0] = 0.0  # silent primary: SNR undefined
    silent_bank = NoiseBank([torch.zeros(5000)])
    out, events = mix_batch(wavs, _gen(0), MixConfig(mix_prob=1.0, noise_prob=1.0), silent_bank)
    assert len(events) == 4 and all(ev.scale == 0.0 for ev in events)
    assert torch.equal(out, wavs) and torch.isfinite(out).all()
    out, events = mix_batch(wavs, _gen(0), MixConfig(mix_prob=1.0), None)
    assert [ev.scale for ev in events if ev.index == 0] == [0.0] and torch.equal(out[0], wavs[0])


def test_noise_prob_without_a_bank_is_an_error():
    with pytest.raises(HarnessError, match="noise bank"):
        mix_batch(_batch(), _gen(0), MixConfig(noise_prob=0.1), None)


def test_noise_bank_from_folder(tmp_path):
    g = np.random.default_rng(0)
    a = (g.standard_normal(SR // 2) * 0.1).astype(np.float32)
    b = (g.standard_normal(SR // 4) * 0.1).astype(np.float32)
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "a.wav", a, SR, subtype="FLOAT")
    sf.write(tmp_path / "sub" / "b.flac", b, SR)  # PCM_16
    (tmp_path / "notes.txt").write_text("not audio")
    bank = NoiseBank.from_folder(tmp_path)
    assert len(bank) == 2 and bank.names == ["a.wav", "sub/b.flac"]
    assert all(c.dtype == torch.float32 and c.dim() == 1 for c in bank.clips)
    np.testing.assert_array_equal(bank.clips[0].numpy(), a)
    np.testing.assert_allclose(bank.clips[1].numpy(), b, atol=1.5 / 32768)
    assert len(NoiseBank.from_files([tmp_path / "sub" / "b.flac"])) == 1


def test_noise_bank_empty_folder_is_an_error(tmp_path):
    empty = tmp_path / "no_noise_here"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    with pytest.raises(HarnessError, match="no_noise_here"):
        NoiseBank.from_folder(empty)
    with pytest.raises(HarnessError, match="missing_dir"):
        NoiseBank.from_folder(tmp_path / "missing_dir")
    with pytest.raises(HarnessError):
        NoiseBank([])


@pytest.mark.parametrize("field, value", [
    ("mix_prob", -0.1), ("mix_prob", 1.5), ("noise_prob", 2.0), ("noise_prob", float("nan")),
    ("snr_db", (20.0, -5.0)), ("ratio_db", (5.0, -5.0)), ("ratio_db", (1.0,)),
    ("max_fraction", 0.0), ("max_fraction", 1.5), ("energy", "segment"),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        MixConfig(**{field: value})


def test_config_defaults_are_wavlm_base():
    cfg = MixConfig()
    got = (cfg.mix_prob, cfg.noise_prob, cfg.snr_db, cfg.ratio_db, cfg.max_fraction, cfg.energy)
    assert got == (0.2, 0.0, (-5.0, 20.0), (-5.0, 5.0), 0.5, "region")


def test_region_and_whole_energy_differ_on_a_quiet_region():
    """The paper's region energies scale to the overlap: a segment mixed into a quiet stretch of a
    loud utterance is added much more softly than with whole-signal powers (authors' code)."""
    T = 8000
    loud = torch.ones(T, dtype=torch.float64)
    loud[: T // 2] = 0.01  # first half 40 dB below the second
    wavs = torch.stack([loud, torch.full((T,), 0.5, dtype=torch.float64)]).float()
    ratios = {}
    for energy in ("region", "whole"):
        out, events = mix_batch(wavs, _gen(3), MixConfig(mix_prob=1.0, energy=energy, ratio_db=(0.0, 0.0)))
        ev = next(e for e in events if e.index == 0)
        ratios[energy] = ev.scale
        s, e = ev.start, ev.start + ev.length
        region_pow = wavs[0, s:e].double().pow(2).mean().item()
        seg_pow = wavs[1, ev.source_start:ev.source_start + ev.length].double().pow(2).mean().item()
        whole_pow = wavs[0].double().pow(2).mean().item()
        want = math.sqrt(region_pow / seg_pow) if energy == "region" else math.sqrt(whole_pow / 0.25)
        assert ev.scale == pytest.approx(want, rel=1e-6)
    # the same draws (same seed), so only the energy convention differs
    assert ratios["region"] != pytest.approx(ratios["whole"], rel=0.05)
