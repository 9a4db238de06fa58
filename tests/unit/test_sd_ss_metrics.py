"""SD and SS pieces: DER (pyannote.metrics) over frame decisions and its decoding grid, PIT BCE
(against s3prl), uPIT MSE, SI-SDR(i) (known answers and speechbrain), the SS STFT path."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from tasks.metrics import (best_setting, binary_median_filter, der_grid, diarization_error_rate,
                           frames_to_annotation, pit_si_sdr, segments_to_annotation, si_sdr, si_sdr_improvement)


def ann(segs, uri="c"):
    return segments_to_annotation(segs, uri=uri)


# --- DER ------------------------------------------------------------------------------------------

def test_der_known_answers_with_overlap():
    # reference: A 0-4 s, B 3-6 s (1 s overlap): 7 s of speaker time
    ref = ann([("A", 0, 4), ("B", 3, 6)])
    uem = [Segment(0, 6)]
    # B's last second missed
    assert diarization_error_rate([ref], [ann([("x", 0, 4), ("y", 3, 5)])], uem)["der"] == pytest.approx(100 / 7)
    # one speaker all along: the overlap second is missed, B's 4-6 s is confusion (x maps to A)
    r = diarization_error_rate([ref], [ann([("x", 0, 6)])], uem)
    assert r["der"] == pytest.approx(300 / 7)
    assert r["missed"] == pytest.approx(100 / 7) and r["confusion"] == pytest.approx(200 / 7)
    # labels are free: a perfect output under other names scores 0; silence scores 100
    assert diarization_error_rate([ref], [ann([("q", 0, 4), ("p", 3, 6)])], uem)["der"] == pytest.approx(0)
    assert diarization_error_rate([ref], [Annotation(uri="c")], uem)["der"] == pytest.approx(100)
    # a false alarm outside the reference speech
    r = diarization_error_rate([ref], [ann([("q", 0, 4), ("p", 3, 6), ("q", 6.5, 7.5)])], [Segment(0, 8)])
    assert r["der"] == pytest.approx(100 / 7) and r["false_alarm"] == pytest.approx(100 / 7)


def test_der_sums_errors_over_conversations_like_pyannote():
    refs = [ann([("A", 0, 4), ("B", 3, 6)], "c1"), ann([("C", 0, 1), ("D", 1, 2)], "c2")]
    hyps = [ann([("x", 0, 4), ("y", 3, 5)], "c1"), ann([("z", 0, 2)], "c2")]
    uems = [Segment(0, 6), Segment(0, 2)]
    got = diarization_error_rate(refs, hyps, uems)["der"]
    # total error (1 s + 1 s confusion) over total reference (7 s + 2 s), not a mean of ratios
    assert got == pytest.approx(100 * 2 / 9)
    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    for r, h, u in zip(refs, hyps, uems):
        metric(r, h, uem=Timeline([u]))
    assert got == pytest.approx(100 * abs(metric))
    per = [DiarizationErrorRate(collar=0.0, skip_overlap=False)(r, h, uem=Timeline([u]))
           for r, h, u in zip(refs, hyps, uems)]
    assert got != pytest.approx(100 * np.mean(per))


def test_frames_to_annotation_matches_pyannote_on_segments():
    fr = 100.0
    active = np.zeros((600, 2), dtype=bool)
    active[0:400, 0] = True
    active[300:500, 1] = True
    active[550:560, 1] = True
    hyp = frames_to_annotation(active, fr, uri="c")
    assert sorted((round(s.start, 6), round(s.end, 6), l) for s, _, l in hyp.itertracks(yield_label=True)) == [
        (0.0, 4.0, "0"), (3.0, 5.0, "1"), (5.5, 5.6, "1")]
    ref = ann([("A", 0, 4), ("B", 3, 6)])
    want = DiarizationErrorRate(collar=0.0, skip_overlap=False)(
        ref, ann([("0", 0, 4), ("1", 3, 5), ("1", 5.5, 5.6)]), uem=Timeline([Segment(0, 6)]))
    assert diarization_error_rate([ref], [hyp], [Segment(0, 6)])["der"] == pytest.approx(100 * want)
    assert want == pytest.approx((1 - 0.1) / 7)


def test_binary_median_filter_is_scipy_medfilt():
    from scipy.signal import medfilt

    rng = np.random.default_rng(0)
    x = rng.random((200, 2)) > 0.6
    for k in (1, 3, 11):
        want = medfilt(x.astype(float), (k, 1)) > 0.5
        assert np.array_equal(binary_median_filter(x, k), want), k


def _probs_with_glitches(fr=100.0):
    """A conversation and speaker probabilities that are right except for short glitches."""
    ref = ann([("A", 0, 3), ("B", 2.5, 6)])
    p = np.full((600, 2), 0.1)
    p[0:300, 0] = 0.9
    p[250:600, 1] = 0.9
    p[100:104, 0] = 0.1  # a 40 ms dropout of A
    p[420:425, 0] = 0.8  # a 50 ms false burst of A
    return ref, p


def test_median_filter_removes_glitches_and_the_grid_finds_it():
    ref, p = _probs_with_glitches()
    grid = der_grid([p], [100.0], [ref], uems=[Segment(0, 6)])
    assert set(grid) == {(m, t) for m in (1, 11) for t in (0.3, 0.4, 0.5, 0.6, 0.7)}
    # unfiltered: 0.04 s missed + 0.05 s false alarm (below 0.8) over 6.5 s of speaker time
    assert grid[(1, 0.5)] == pytest.approx(100 * 0.09 / 6.5)
    assert grid[(11, 0.5)] == pytest.approx(0.0, abs=1e-9)
    assert best_setting(grid) == (11, 0.3)  # ties: first in grid order
    # a threshold above the burst needs no filter for it, but still keeps the dropout
    assert grid[(1, 0.7)] == pytest.approx(grid[(1, 0.5)])  # burst at 0.8 passes 0.7 too


def test_grid_picks_the_threshold_that_separates_the_classes():
    ref = ann([("A", 0, 2), ("B", 3, 5)])
    p = np.full((500, 2), 0.55)  # silence at 0.55: false alarms for thresholds <= 0.5
    p[0:200, 0] = 0.65
    p[300:500, 1] = 0.65  # speech at 0.65: missed at 0.7
    grid = der_grid([p], [100.0], [ref], uems=[Segment(0, 5)])
    assert best_setting(grid) == (1, 0.6)
    assert grid[(1, 0.6)] == pytest.approx(0.0, abs=1e-9)
    assert grid[(1, 0.7)] == pytest.approx(100.0)


def test_sd_task_scores_grid_minimum_and_dev_setting():
    from tasks.sd import Conversation, SpeakerDiarization

    task = SpeakerDiarization()
    ref_dev, p_dev = _probs_with_glitches()
    conv = Conversation("c", ("A", "B"), (("A", 0.0, 3.0), ("B", 2.5, 6.0)), 6.0)
    assert diarization_error_rate([ref_dev], [conv.annotation()], [conv.uem()])["der"] == pytest.approx(0, abs=1e-9)
    dev = task.score({"c": {"probs": p_dev, "frame_rate": 100.0}}, {"c": conv}, {}, "dev")
    assert dev["der"] == pytest.approx(0, abs=1e-9) and dev["der_dev_setting"] == dev["der"]
    # test: the classes separate only at 0.6, where the dev choice (11, 0.3) does poorly
    conv2 = Conversation("d", ("A", "B"), (("A", 0.0, 2.0), ("B", 3.0, 5.0)), 5.0)
    p = np.full((500, 2), 0.55)
    p[0:200, 0] = 0.65
    p[300:500, 1] = 0.65
    test = task.score({"d": {"probs": p, "frame_rate": 100.0}}, {"d": conv2}, {}, "test")
    grid = der_grid([p], [100.0], [conv2.annotation()], uems=[Segment(0, 5)])
    assert test["der"] == pytest.approx(0, abs=1e-9)
    assert test["der_dev_setting"] == pytest.approx(grid[(11, 0.3)]) and test["der_dev_setting"] > 50
    extra = task.extra_results({"d": {"probs": p, "frame_rate": 100.0}}, {"d": conv2}, {})
    assert (extra["best_median"], extra["best_threshold"]) == (1, 0.6)
    assert (extra["dev_best_median"], extra["dev_best_threshold"]) == (11, 0.3)
    what, silent = task.trivial_preds({"d": conv2}, {})
    assert what == "all silence" and task.score(silent, {"d": conv2}, {}, "test")["der"] == pytest.approx(100.0)


def test_sd_frame_labels_follow_sorted_speakers_and_crops():
    from tasks.base import Batch
    from tasks.sd import Conversation, SpeakerDiarization

    conv = Conversation("c", ("A", "B"), (("B", 0.0, 1.0), ("A", 0.5, 2.0)), 2.0)
    y = conv.frame_labels(10.0)  # frames centred at 0.05, 0.15, ...
    assert y.shape == (21, 2)
    assert y[:, 1].tolist()[:12] == [1.0] * 10 + [0.0] * 2
    assert y[:, 0].tolist()[:21] == [0.0] * 5 + [1.0] * 15 + [0.0]
    task = SpeakerDiarization()
    task._frame_rate = 10.0
    b = Batch(["c"], torch.tensor([4]), [conv], crops=[(3, 4)])
    assert task.batch_labels(b, 4)[0].tolist() == y[3:7].tolist()


# --- PIT BCE --------------------------------------------------------------------------------------

def test_pit_bce_is_the_better_permutation_and_matches_s3prl():
    from harness.s3prl_compat import diarization_pit_loss
    from tasks.heads_pit import pit_bce_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, 2, generator=g)
    labels = (torch.rand(3, 50, 2, generator=g) > 0.5).float()
    lengths = torch.tensor([50, 31, 7])
    got = pit_bce_loss(logits, labels, lengths)
    total = 0.0
    for b in range(3):
        n = int(lengths[b])
        per = [F.binary_cross_entropy_with_logits(logits[b, :n], labels[b, :n][:, list(p)], reduction="none")
               .mean(-1).sum() for p in itertools.permutations(range(2))]
        total += min(per)
    assert float(got) == pytest.approx(float(total / lengths.sum()), rel=1e-6)
    ref, _, _ = diarization_pit_loss()(logits, labels, lengths)
    assert float(got) == pytest.approx(float(ref), rel=1e-6)
    # swapping an item's speakers changes nothing; padding frames do not count
    swapped = labels.clone()
    swapped[1] = labels[1][:, [1, 0]]
    swapped[2, 7:] = 1 - swapped[2, 7:]
    assert float(pit_bce_loss(logits, swapped, lengths)) == pytest.approx(float(got), rel=1e-6)


def test_upit_mse_is_the_better_permutation():
    from tasks.heads_pit import upit_mse_loss

    g = torch.Generator().manual_seed(1)
    masks = torch.rand(2, 2, 20, 9, generator=g)
    mix = torch.rand(2, 20, 9, generator=g)
    tgt = torch.rand(2, 2, 20, 9, generator=g)
    lengths = torch.tensor([20, 12])
    got = upit_mse_loss(masks, mix, tgt, lengths)
    want = 0.0
    for b in range(2):
        n = int(lengths[b])
        per = [sum(((masks[b, i, :n] * mix[b, :n] - tgt[b, p[i], :n]) ** 2).sum() for i in range(2)) / n
               for p in itertools.permutations(range(2))]
        want += min(per)
    assert float(got) == pytest.approx(float(want) / 4, rel=1e-6)
    # perfect masks give zero loss whichever order the targets come in
    perfect = tgt.flip(1) / mix[:, None]
    assert float(upit_mse_loss(perfect, mix, tgt, lengths)) == pytest.approx(0.0, abs=1e-6)


# --- SI-SDR ---------------------------------------------------------------------------------------

def _sources(seed=0, n=8000):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(2, n, generator=g, dtype=torch.float64)
    s[1] *= 0.5
    return s


def test_si_sdr_known_answers():
    s = _sources()
    mix = s.sum(0)
    # scale invariance and an exact value: est = s + e with e orthogonal to s
    e = torch.randn(8000, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    e = e - e.mean()
    s0 = s[0] - s[0].mean()
    e = e - (e @ s0) / (s0 @ s0) * s0
    e = e * (s0.norm() / e.norm()) / 10  # 20 dB below
    assert float(si_sdr(3 * (s0 + e), s0)) == pytest.approx(20.0, abs=1e-6)
    perfect = si_sdr_improvement(s, s, mix)
    want = float(si_sdr(s, s).mean() - si_sdr(mix[None].expand_as(s), s).mean())
    assert perfect["si_sdri"] == pytest.approx(want) and perfect["si_sdri"] > 60
    swapped = si_sdr_improvement(s.flip(0), s, mix)
    assert swapped["si_sdri"] == pytest.approx(perfect["si_sdri"])
    same = si_sdr_improvement(torch.stack([mix, mix]), s, mix)
    assert same["si_sdri"] == pytest.approx(0.0, abs=1e-9)
    # the mixture scaled differently per output is still no improvement (scale invariant)
    assert si_sdr_improvement(torch.stack([0.3 * mix, 2 * mix]), s, mix)["si_sdri"] == pytest.approx(0, abs=1e-9)


def test_pit_si_sdr_matches_speechbrain():
    from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

    g = torch.Generator().manual_seed(5)
    src = torch.randn(4, 2, 4000, generator=g)
    est = src[:, [1, 0]] + 0.7 * torch.randn(4, 2, 4000, generator=g)
    est[2] = torch.randn(2, 4000, generator=g)  # one item of pure noise
    sb = -get_si_snr_with_pitwrapper(src.transpose(1, 2).clone(), est.transpose(1, 2).clone())  # (B,)
    for b in range(4):
        got, perm = pit_si_sdr(est[b].double(), src[b].double())
        assert got == pytest.approx(float(sb[b]), abs=1e-3)
        if b != 2:
            assert perm == (1, 0)


# --- SS task: STFT, masks, iSTFT ------------------------------------------------------------------

@pytest.fixture()
def one_mixture(tmp_path):
    import soundfile as sf

    from tasks.ss import Mixture

    t = np.arange(16000) / 16000
    s1 = (0.2 * np.sin(2 * np.pi * 220 * t)).astype("float32")
    s2 = (0.1 * np.sin(2 * np.pi * 1250 * t)).astype("float32")
    paths = []
    for k, (name, x) in enumerate((("mix", s1 + s2), ("s1", s1), ("s2", s2))):
        p = tmp_path / f"{name}.wav"
        sf.write(p, x, 16000, subtype="FLOAT")
        paths.append(str(p))
    return Mixture("m", paths[0], 0.0, 1.0, (paths[1], paths[2]))


@pytest.mark.parametrize("frame_rate", [100.0, 50.0, 25.0, 12.5])  # 10, 20, 40, 80 ms
def test_ss_decode_known_masks(one_mixture, frame_rate):
    from harness.config import ProbeConfig
    from tasks.base import Batch
    from tasks.ss import SourceSeparation

    task = SourceSeparation()
    task.build_head(8, frame_rate, {}, ProbeConfig(head_dim=8))
    mix, srcs = task.audio(one_mixture)
    Y = task.stft(torch.cat([mix[None], srcs]))  # (3, T, F)
    T = Y.shape[1]
    n = T - 2  # features end before the STFT does: the decoder pads the masks
    ref = {"m": one_mixture}
    b = Batch(["m"], torch.tensor([n]), [one_mixture])
    half = torch.full((1, 2, n, 257), 0.5)
    est = task.decode((half, torch.tensor([n])), b)
    assert est[0].shape == (2, mix.shape[0])
    assert task.score({"m": est[0]}, ref, {}, "test")["si_sdri"] == pytest.approx(0.0, abs=1e-4)
    # ideal ratio masks, sources in the swapped order: a large improvement
    irm = (Y[1:].abs() / (Y[1:].abs().sum(0, keepdim=True) + 1e-8))[[1, 0], :n][None]
    good = task.score({"m": task.decode((irm, torch.tensor([n])), b)[0]}, ref, {}, "test")
    assert good["si_sdri"] > 15


# --- data checks ----------------------------------------------------------------------------------

def _corpus(utts, root="/corpus"):
    from pathlib import Path

    from harness.data.corpus import Corpus

    return Corpus("x", "synth", Path(root), utts)


def _conv(uid, split, **custom):
    from harness.data.corpus import Utterance

    c = {"split": split, "subset": "conv", "speakers": ["b", "a"], "segments": [["a", 0.0, 1.0], ["b", 0.5, 2.0]]}
    c.update(custom)
    return Utterance(uid, f"/audio/{uid}.wav", 2.0, custom=c)


def test_sd_prepare_checks_conversations():
    from harness.errors import HarnessError
    from tasks.sd import SpeakerDiarization

    good = [_conv(f"c{s}", s) for s in ("train", "dev", "test")]
    sp = SpeakerDiarization().prepare(_corpus(good))
    assert [u.id for u in sp.dev] == ["cdev"]
    assert SpeakerDiarization().target(sp.train[0], sp.info).speakers == ("a", "b")
    with pytest.raises(HarnessError, match="c9.*bad segment"):
        SpeakerDiarization().prepare(_corpus(good + [_conv("c9", "dev", segments=[["z", 0.0, 1.0]])]))
    with pytest.raises(HarnessError, match="c8.*speakers"):
        SpeakerDiarization().prepare(_corpus(good + [_conv("c8", "dev", speakers=["a"])]))
    with pytest.raises(HarnessError, match="no test conversations"):
        SpeakerDiarization().prepare(_corpus(good[:2]))


def test_ss_prepare_checks_sources_and_resolves_relative_paths():
    from harness.data.corpus import Utterance
    from harness.errors import HarnessError
    from tasks.ss import SourceSeparation

    def mix(uid, split, sources):
        return Utterance(uid, f"/corpus/{uid}.wav", 2.0, custom={"split": split, "subset": "mix", "sources": sources})

    utts = [mix(f"m{s}", s, ["audio/s1.flac", "/abs/s2.flac"]) for s in ("train", "dev", "test")]
    sp = SourceSeparation().prepare(_corpus(utts))
    assert SourceSeparation().target(sp.test[0], sp.info).sources == ("/corpus/audio/s1.flac", "/abs/s2.flac")
    with pytest.raises(HarnessError, match="m9.*sources"):
        SourceSeparation().prepare(_corpus(utts + [mix("m9", "dev", ["only_one.flac"])]))
