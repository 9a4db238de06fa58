"""Metrics against their references (issue 12, item 3): EER and minDCF against s3prl's and
Kaldi's definitions written out here independently, with bounded memory on 40,000 trials; the
ML-SUPERB normaliser against ESPnet's process_text on multilingual strings; pooled CER against
jiwer directly; the monolingual average per language, then over languages."""

import tracemalloc

import jiwer
import numpy as np
import pytest

from tasks.metrics import eer_and_mindcf, mlsuperb_normalize


# -- EER / minDCF ----------------------------------------------------------------------------------

def kaldi_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0):
    """Kaldi's sid/compute_min_dcf.py, written out: every trial of the ascending sort is a
    threshold (accept scores above it), the cost is normalised by the cost of the best
    decision without scores, min(C_miss P_target, C_fa (1 - P_target)) (read in kaldi-asr/kaldi
    egs/sre08/v1/sid/compute_min_dcf.py at commit c6be4407b8c97f407126f438f90b4b1edde31eff,
    ComputeMinDcf's c_def)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    lab = [labels[i] for i in order]
    n_tar = sum(lab)
    n_non = len(lab) - n_tar
    misses, false_alarms_rejected = 0, 0
    best = float("inf")
    for y in lab:
        misses += y
        false_alarms_rejected += 1 - y
        fnr, fpr = misses / n_tar, 1 - false_alarms_rejected / n_non
        best = min(best, c_miss * fnr * p_target + c_fa * fpr * (1 - p_target))
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


def s3prl_eer(scores, labels):
    """s3prl downstream/sv_voxceleb1/utils.py EER: sklearn's ROC, interpolated, and the root of
    1 - FPR - TPR (brentq), in percent."""
    from scipy.interpolate import interp1d
    from scipy.optimize import brentq
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    return 100.0 * brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


def brute_force_min_dcf(scores, labels, p_target):
    """NIST's definition over every achievable decision: thresholds at each distinct score and
    above all (tied trials are accepted together)."""
    s, y = np.asarray(scores), np.asarray(labels).astype(bool)
    best = float("inf")
    for t in np.r_[np.unique(s), np.inf]:
        fnr = np.mean(s[y] < t)
        fpr = np.mean(s[~y] >= t)
        best = min(best, p_target * fnr + (1 - p_target) * fpr)
    return best / min(p_target, 1 - p_target)


def _trials(n_tar, n_non, seed, separation=2.0):
    rng = np.random.default_rng(seed)
    scores = np.r_[rng.normal(separation, 1, n_tar), rng.normal(0, 1, n_non)]
    labels = [1] * n_tar + [0] * n_non
    perm = rng.permutation(len(labels))
    return scores[perm].tolist(), [labels[i] for i in perm]


@pytest.mark.parametrize("n_tar, n_non, seed, p_target", [
    (50, 500, 0, 0.01), (300, 300, 1, 0.05), (20, 2000, 2, 0.01), (400, 100, 3, 0.5),
    # above 0.5 the no-score cost is C_fa (1 - P_target): dividing by C_miss P_target (the same
    # below 0.5) would be wrong only here
    (400, 100, 6, 0.7), (100, 300, 7, 0.9)])
def test_min_dcf_equals_kaldi_on_random_trial_lists(n_tar, n_non, seed, p_target):
    scores, labels = _trials(n_tar, n_non, seed)
    got = eer_and_mindcf(scores, labels, p_target=p_target)["mindcf"]
    assert got == pytest.approx(kaldi_min_dcf(scores, labels, p_target), rel=1e-12)
    assert 0 < got <= 1.0  # normalised: 1 = no better than the best decision without scores


def test_min_dcf_on_a_hand_computed_trial_list():
    # descending: 0.9 T, 0.8 N, 0.7 T, 0.6 T, 0.5 N, 0.4 N, 0.3 T, 0.2 N (4 targets, 4 non-targets)
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    labels = [1, 0, 1, 1, 0, 0, 1, 0]
    # P_target 0.5: cost = (FNR + FPR) / 2, normalised by 0.5 -> FNR + FPR; best at threshold 0.6
    # (accept 0.9, 0.8, 0.7, 0.6): FNR 1/4, FPR 1/4 -> 0.5
    assert eer_and_mindcf(scores, labels, p_target=0.5)["mindcf"] == pytest.approx(0.5)
    # P_target 0.01: accepting 0.9 alone: 0.01 * 3/4 / 0.01 = 0.75; rejecting all: 1.0
    assert eer_and_mindcf(scores, labels, p_target=0.01)["mindcf"] == pytest.approx(0.75)
    # the EER: FNR = FPR = 1/4 at threshold 0.6
    assert eer_and_mindcf(scores, labels)["eer"] == pytest.approx(25.0)


def test_min_dcf_at_p_target_0_7_is_normalised_by_the_false_alarm_side():
    """P_target 0.7: the best decision without scores accepts every trial, cost
    C_fa (1 - P_target) = 0.3 (Kaldi's c_def = min(C_miss P_target, C_fa (1 - P_target))).
    The list of the hand-computed case above, cost 0.7 FNR + 0.3 FPR when accepting the top k:
    k = 0: 0.7, 1: 0.525, 2: 0.6, 3: 0.425, 4: 0.25, 5: 0.325, 6: 0.4, 7: 0.225, 8: 0.3.
    The minimum 0.225 (accept all but the lowest, a non-target: FNR 0, FPR 3/4) / 0.3 = 0.75;
    divided by P_target instead it would read 0.321."""
    scores = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    labels = [1, 0, 1, 1, 0, 0, 1, 0]
    assert eer_and_mindcf(scores, labels, p_target=0.7)["mindcf"] == pytest.approx(0.225 / 0.3)
    assert kaldi_min_dcf(scores, labels, 0.7) == pytest.approx(0.225 / 0.3)
    # C_miss 2, C_fa 1 at 0.7: no-score cost min(1.4, 0.3) = 0.3; cost 1.4 FNR + 0.3 FPR is lowest
    # at k = 7 again (0.225) -> 0.75; at k = 4 it is 0.35 + 0.075 = 0.425
    assert eer_and_mindcf(scores, labels, p_target=0.7, c_miss=2.0)["mindcf"] == pytest.approx(0.75)


def test_min_dcf_groups_tied_scores_as_nist_does():
    scores = [1.0, 1.0, 1.0, 0.5, 0.5, 0.0, 0.0, 0.0]
    labels = [1, 0, 1, 1, 0, 0, 0, 1]
    for p in (0.01, 0.1, 0.5, 0.7):
        assert eer_and_mindcf(scores, labels, p_target=p)["mindcf"] == pytest.approx(
            brute_force_min_dcf(scores, labels, p))


@pytest.mark.parametrize("n_tar, n_non, seed", [(50, 500, 0), (300, 300, 1), (1000, 40, 4)])
def test_eer_equals_s3prl_definition(n_tar, n_non, seed):
    scores, labels = _trials(n_tar, n_non, seed, separation=1.5)
    assert eer_and_mindcf(scores, labels)["eer"] == pytest.approx(s3prl_eer(scores, labels), abs=1e-6)


def test_eer_with_ties_equals_s3prl_definition():
    scores = [0.9, 0.5, 0.5, 0.5, 0.5, 0.1, 0.3, 0.3]
    labels = [1, 1, 0, 1, 0, 0, 1, 0]
    assert eer_and_mindcf(scores, labels)["eer"] == pytest.approx(s3prl_eer(scores, labels), abs=1e-6)


def test_40k_trials_in_bounded_memory():
    """VoxCeleb1-O has 37,720 trials; a trials x thresholds matrix would take gigabytes. One sorted
    pass stays in a few MB and well under a second."""
    import time

    scores, labels = _trials(20_000, 20_000, 5, separation=2.0)
    scores, labels = np.asarray(scores), np.asarray(labels)
    tracemalloc.start()
    t0 = time.perf_counter()
    out = eer_and_mindcf(scores, labels)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * 2**20, f"peak {peak / 2**20:.1f} MB"
    assert elapsed < 2.0
    # two unit Gaussians 2 apart: EER = Phi(-1) = 15.87 %
    assert out["eer"] == pytest.approx(15.87, abs=0.6)
    assert out["mindcf"] == pytest.approx(kaldi_min_dcf(scores.tolist(), labels.tolist(), 0.01), rel=1e-12)


def test_min_dcf_rejects_one_sided_lists():
    with pytest.raises(ValueError, match="both target and non-target"):
        eer_and_mindcf([0.1, 0.2], [1, 1])


# -- ML-SUPERB text --------------------------------------------------------------------------------
# Expected outputs derived by reading ESPnet egs2/ml_superb/asr1/local/data_prep.py process_text:
# re.sub(r"\[[^()]*\]", "", text), then delete string.punctuation (ASCII only), then .upper(); the
# monolingual local/single_lang_data_prep.py has the same without the regex.

@pytest.mark.parametrize("raw, expected", [
    # the tag goes; "(laughs)" is no bracket match, only its parentheses go (ASCII punctuation);
    # the removed tag leaves its two neighbouring spaces
    ("Hello, world! [noise] (laughs) don't", "HELLO WORLD  LAUGHS DONT"),
    # greedy: from the first "[" to the last "]" when no parenthesis is between
    ("[noise] hello [laugh] bye", "BYE"),
    ("[laughter(x)] ok", "LAUGHTERX OK"),  # a parenthesis stops the regex; the brackets still go
    ("¿Qué tal? ¡Muy bien!", "¿QUÉ TAL ¡MUY BIEN"),  # ¿ and ¡ are not ASCII punctuation
    ("सभी मनुष्यों को, गौरव।", "सभी मनुष्यों को गौरव।"),  # the danda stays, vowel signs stay
    ("人人生而自由，在尊严和权利上一律平等。", "人人生而自由，在尊严和权利上一律平等。"),  # full-width stays
    ("Straße «Ça va?» — <unk> 2024", "STRASSE «ÇA VA» — UNK 2024"),  # str.upper: ß -> SS
    ("  [only noise]  ", ""),
])
def test_mlsuperb_normalize_follows_espnet_process_text(raw, expected):
    assert mlsuperb_normalize(raw) == expected


def test_monolingual_prep_removes_no_brackets_and_no_unicode_normalisation():
    assert mlsuperb_normalize("Hello [noise] world.", brackets=False) == "HELLO NOISE WORLD"
    assert mlsuperb_normalize("e\u0301t\u00e9") == "E\u0301T\u00c9"  # decomposed stays decomposed


# -- ML-SUPERB CER ---------------------------------------------------------------------------------

def test_grouped_cer_is_pooled_over_each_group_as_jiwer_computes_it():
    from harness.evaluate import build_task

    ml = build_task("ml_asr_10min")
    info = {"language_of": {"a": "eng", "b": "eng", "c": "fra", "d": "dan", "e": "dan"},
            "fewshot_languages": ["dan"]}
    refs = {"a": "HELLO THERE", "b": "AB", "c": "BONJOUR", "d": "HEJ MED DIG", "e": "TAK"}
    preds = {"a": "HELO THERE", "b": "XY", "c": "BONJUR", "d": "HEJ", "e": "TAK"}
    s = ml.score(preds, refs, info, "test")
    normal, few = ["a", "b", "c"], ["d", "e"]
    assert s["cer_normal"] == pytest.approx(100 * jiwer.cer([refs[i] for i in normal], [preds[i] for i in normal]))
    assert s["cer_fewshot"] == pytest.approx(100 * jiwer.cer([refs[i] for i in few], [preds[i] for i in few]))
    assert s["cer"] == pytest.approx(100 * jiwer.cer(list(refs.values()), [preds[i] for i in refs]))
    # pooled, not a mean over languages: eng alone is 3/13 = 23.1 %, fra 1/7 = 14.3 %
    assert s["cer_normal"] == pytest.approx(100 * 4 / 20)


def test_mono_asr_averages_per_language_first_and_uses_wer_for_cmn_and_jpn():
    from harness.evaluate import build_task
    from tasks.base import Splits

    mono = build_task("mono_asr_10min")
    sub = {name: Splits([], [], [], info={"languages": [lang]})
           for name, lang in (("eng1", "eng"), ("eng2", "eng"), ("eng3", "eng"), ("fra1", "fra"), ("cmn", "cmn"))}
    values = {"eng1": 10.0, "eng2": 20.0, "eng3": 60.0, "fra1": 40.0, "cmn": 70.0}
    # eng = 30, fra = 40, cmn = 70 -> 46.67 (the plain mean over the five pairs would be 40)
    assert mono.combine_subsets(values, sub) == pytest.approx(140 / 3)
    info = {"languages": ["cmn"], "language_of": {"a": "cmn"}, "fewshot_languages": []}
    refs, preds = {"a": "我们 去 北京"}, {"a": "我们 去 上海"}
    assert mono.score(preds, refs, info, "test")["cer"] == pytest.approx(100 / 3)  # one word of three
    info = {"languages": ["fra"], "language_of": {"a": "fra"}, "fewshot_languages": []}
    assert mono.score({"a": "ABD"}, {"a": "ABC"}, info, "test")["cer"] == pytest.approx(100 / 3)
