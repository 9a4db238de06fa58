"""Metrics shared by tasks. Edit distances come from jiwer (the reference implementation the
protocol names); EER and minDCF are computed here from one sorted ROC pass and tested against
s3prl's and Kaldi's definitions. Values are percentages where SUPERB reports them."""

from __future__ import annotations

import re
import string
from collections import defaultdict
from typing import Dict, Hashable, List, Optional, Sequence

import numpy as np
import torch


def error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Token error rate in percent: total edit distance / total reference tokens (tokens split
    on whitespace). Used for WER and, on space-separated phones, PER."""
    import jiwer

    refs, hyps = list(refs), list(hyps)
    if not refs:
        return float("nan")
    # jiwer rejects empty references; an empty reference contributes its insertions only
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    ins = sum(len(h.split()) for r, h in zip(refs, hyps) if not r.strip())
    n_ref = sum(len(r.split()) for r, _ in pairs)
    if not pairs:
        return float("inf") if ins else 0.0
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    errors = out.substitutions + out.deletions + out.insertions + ins
    return 100.0 * errors / n_ref


def char_error_rate(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Character error rate in percent (spaces count as characters), via jiwer."""
    import jiwer

    pairs = [(r, h) for r, h in zip(refs, hyps) if r]
    if not pairs:
        return float("nan")
    out = jiwer.process_characters([r for r, _ in pairs], [h for _, h in pairs])
    n = sum(len(r) for r, _ in pairs)
    return 100.0 * (out.substitutions + out.deletions + out.insertions) / n


def accuracy(refs: Sequence[Hashable], preds: Sequence[Hashable]) -> float:
    refs, preds = list(refs), list(preds)
    return 100.0 * float(np.mean([r == p for r, p in zip(refs, preds)])) if refs else float("nan")


def macro_accuracy(refs: Sequence[Hashable], preds: Sequence[Hashable]) -> float:
    """Mean over classes of per-class accuracy (recall), in percent."""
    per = per_class_accuracy(refs, preds)
    return float(np.mean(list(per.values()))) if per else float("nan")


def per_class_accuracy(refs: Sequence[Hashable], preds: Sequence[Hashable]) -> Dict[Hashable, float]:
    hit, tot = defaultdict(int), defaultdict(int)
    for r, p in zip(refs, preds):
        tot[r] += 1
        hit[r] += int(r == p)
    return {k: 100.0 * hit[k] / tot[k] for k in sorted(tot, key=str)}


#: minDCF's operating point (NIST SRE 2008 and VoxSRC 2019: P_target 0.01, C_miss = C_fa = 1)
DCF_P_TARGET = 0.01
DCF_C_MISS = 1.0
DCF_C_FA = 1.0


def roc_points(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The detection trade-off of a trial list, from one sort: (FNR, FPR) at every threshold
    between distinct scores, from "reject all" (FNR 1, FPR 0) to "accept all" (FNR 0, FPR 1).

    A trial is accepted when its score is >= the threshold; tied scores are accepted or
    rejected together (no threshold separates them). Memory is O(trials).

    Args:
        scores: (N,) trial scores, higher = more likely the same speaker.
        labels: (N,) 1 for target trials, 0 for non-target trials.

    Returns:
        fnr, fpr: (K + 1,) each, K = the number of distinct scores, as fractions.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores but {y.size} labels")
    n_tar, n_non = int(y.sum()), int((~y).sum())
    if n_tar == 0 or n_non == 0:
        raise ValueError("a trial list needs both target and non-target trials")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last trial of each tied group
    tp = np.r_[0, np.cumsum(y)[last]]
    fp = np.r_[0, np.cumsum(~y)[last]]
    return 1.0 - tp / n_tar, fp / n_non


def eer_and_mindcf(scores: Sequence[float], labels: Sequence[int], p_target: float = DCF_P_TARGET,
                   c_miss: float = DCF_C_MISS, c_fa: float = DCF_C_FA) -> Dict[str, float]:
    """Equal error rate (percent) and normalised minimum detection cost of a trial list.

    EER: where the ROC, linear between its points, crosses FNR = FPR (s3prl's sv_voxceleb1 EER:
    sklearn's roc_curve, interpolated, root of 1 - FPR - TPR). minDCF: the lowest
    C_miss P_target FNR + C_fa (1 - P_target) FPR over the thresholds, divided by the cost of
    the best decision without scores, min(C_miss P_target, C_fa (1 - P_target)) (NIST SRE,
    Kaldi's compute_min_dcf.py), so 1.0 = no better than always rejecting. Both come from one
    sorted pass (`roc_points`), memory O(trials).

    Args:
        scores: (N,) trial scores.
        labels: (N,) 1 target, 0 non-target.
        p_target: prior of a target trial.
        c_miss, c_fa: costs of a miss and of a false alarm.

    Returns:
        eer (percent) and mindcf (normalised, no unit).
    """
    fnr, fpr = roc_points(scores, labels)
    d = fnr - fpr  # 1 at "reject all", -1 at "accept all", non-increasing
    k = int(np.argmax(d <= 0))
    if d[k] == 0:
        eer = fpr[k]
    else:  # the crossing lies on the segment from point k - 1 to point k
        t = d[k - 1] / (d[k - 1] - d[k])
        eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
    cost = c_miss * p_target * fnr + c_fa * (1.0 - p_target) * fpr
    c_default = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return {"eer": 100.0 * float(eer), "mindcf": float(cost.min() / c_default)}


def cosine_trial_scores(emb: Dict[str, torch.Tensor], trials: List[tuple]) -> tuple[List[float], List[int]]:
    """Cosine similarity of L2-normalised embeddings for each (label, enroll, test) trial."""
    scores, labels = [], []
    for lab, a, b in trials:
        ea = torch.nn.functional.normalize(emb[a].float(), dim=-1)
        eb = torch.nn.functional.normalize(emb[b].float(), dim=-1)
        scores.append(float((ea * eb).sum()))
        labels.append(int(lab))
    return scores, labels


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Greedy CTC decoding: best class per frame, merge repeats, drop blanks.

    Args:
        log_probs: (B, T, V).
        lengths: (B,) valid frames.
    """
    best = log_probs.argmax(-1).cpu()
    out = []
    for i, n in enumerate(lengths.tolist()):
        seq = torch.unique_consecutive(best[i, :n]).tolist()
        out.append([t for t in seq if t != blank])
    return out


# --- speaker diarization (SD) -------------------------------------------------------------------

#: docs/protocol.md section 2: SD reports the lowest DER over these decoding settings
SD_MEDIANS = (1, 11)
SD_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)


def ctc_frames_needed(target: Sequence[Hashable]) -> int:
    """Frames a CTC head needs to emit `target`: one per token plus a blank between equal neighbours."""
    y = list(target)
    return len(y) + sum(a == b for a, b in zip(y, y[1:]))


def ctc_floor_edits(target: Sequence[Hashable], frames: int) -> int:
    """The fewest edits between `target` and any output a CTC head can emit with one label per
    frame over `frames` frames (an output of n labels with r adjacent equal pairs needs n + r
    frames: a blank between repeats). Exact: dropping a label never raises that need, so the best
    output is the longest subsequence of the target that fits, and the edits are the deletions.

    Args:
        target: (U,) reference tokens.
        frames: frames the head emits over.

    Returns:
        U minus the longest fitting subsequence's length (0 when the whole target fits).
    """
    y = list(target)
    U = len(y)
    if ctc_frames_needed(y) <= frames:
        return 0
    if frames <= 0:
        return U
    eq = np.array([[a == b for b in y] for a in y], dtype=np.int64)  # (U, U): y_j == y_i
    before = np.tri(U, U, -1, dtype=bool).T  # before[j, i]: j < i
    cost = np.ones(U, dtype=np.int64)  # cost[i]: least frames of a kept subsequence of length k ending at i
    best = 1
    for k in range(2, U + 1):
        step = np.where(before, cost[:, None] + eq, np.iinfo(np.int64).max // 2).min(axis=0) + 1
        if step.min() > frames:
            break
        cost, best = step, k
    return U - best


def binary_median_filter(active: np.ndarray, k: int) -> np.ndarray:
    """Median filter of a binary (T, C) activity matrix along time, per column.

    Equals scipy.signal.medfilt(active, (k, 1)) (zero padding at both ends): for 0/1 values the
    median of an odd window is its majority.

    Args:
        active: (T, C) 0/1 array.
        k: odd window length in frames (1 = no filtering).
    """
    active = np.asarray(active)
    if k <= 1:
        return active.astype(bool)
    if k % 2 == 0:
        raise ValueError(f"median filter length must be odd, got {k}")
    x = np.pad(active.astype(np.int32), ((k // 2, k // 2), (0, 0)))
    c = np.cumsum(np.pad(x, ((1, 0), (0, 0))), axis=0)
    window_sums = c[k:] - c[:-k]  # (T, C)
    return window_sums > k // 2


def frames_to_annotation(active: np.ndarray, frame_rate: float, labels: Sequence[str] = ("0", "1"), uri: str = "u"):
    """A pyannote Annotation of the runs of active frames; frame t spans [t, t + 1) / frame_rate s.

    Args:
        active: (T, C) bool, speaker c active in frame t.
        frame_rate: frames per second.
        labels: a label per column.
    """
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    active = np.asarray(active, dtype=bool)
    for c in range(active.shape[1]):
        col = np.concatenate([[False], active[:, c], [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(col))
        for k, (s, e) in enumerate(zip(edges[0::2], edges[1::2])):
            ann[Segment(s / frame_rate, e / frame_rate), f"{c}_{k}"] = labels[c]
    return ann


def segments_to_annotation(segments: Sequence[Sequence], uri: str = "u"):
    """A pyannote Annotation from [[speaker, start_s, end_s], ...] (overlaps allowed)."""
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for k, (spk, s, e) in enumerate(segments):
        if e > s:
            ann[Segment(float(s), float(e)), k] = str(spk)
    return ann


def diarization_error_rate(refs: Sequence, hyps: Sequence, uems: Optional[Sequence] = None) -> Dict[str, float]:
    """DER in percent over many conversations: total error / total reference speech, with
    pyannote.metrics (collar 0, overlap scored, optimal speaker mapping per conversation).

    Args:
        refs, hyps: pyannote Annotations, one pair per conversation.
        uems: per conversation the scored extent (a pyannote Segment or Timeline, e.g. the
            recording); None = the union of reference and hypothesis extents (pyannote warns).

    Returns:
        der, and its parts (missed, false alarm, confusion) in percent of reference speech.
    """
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
    for k, (r, h) in enumerate(zip(refs, hyps)):
        uem = None if uems is None else uems[k]
        if uem is not None and not hasattr(uem, "support"):
            from pyannote.core import Timeline

            uem = Timeline([uem])
        metric(r, h, uem=uem)
    total = metric["total"]
    if total <= 0:
        return {"der": float("nan"), "missed": float("nan"), "false_alarm": float("nan"), "confusion": float("nan")}
    return {"der": 100.0 * float(abs(metric)), "missed": 100.0 * metric["missed detection"] / total,
            "false_alarm": 100.0 * metric["false alarm"] / total, "confusion": 100.0 * metric["confusion"] / total}


def der_grid(probs: Sequence[np.ndarray], frame_rates: Sequence[float], refs: Sequence,
             medians: Sequence[int] = SD_MEDIANS, thresholds: Sequence[float] = SD_THRESHOLDS,
             uems: Optional[Sequence] = None) -> Dict[tuple, float]:
    """DER (percent) for each (median filter, threshold) decoding setting.

    Frames are thresholded first, then median-filtered (as s3prl's make_rttm does).

    Args:
        probs: per conversation (T, C) speaker activity probabilities.
        frame_rates: per conversation, frames per second.
        refs: per conversation, the reference pyannote Annotation.
        uems: per conversation the scored extent (see diarization_error_rate).
    """
    out = {}
    for k in medians:
        for th in thresholds:
            hyps = [frames_to_annotation(binary_median_filter(p > th, k), fr, uri=r.uri)
                    for p, fr, r in zip(probs, frame_rates, refs)]
            out[(int(k), float(th))] = diarization_error_rate(refs, hyps, uems)["der"]
    return out


def best_setting(grid: Dict[tuple, float]) -> tuple:
    """The (median, threshold) with the lowest DER; ties go to the first in grid order."""
    return min(grid, key=lambda s: (grid[s], list(grid).index(s)))


# --- source separation (SS) -----------------------------------------------------------------------

def si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), both signals made zero-mean first.

    SI-SDR = 10 log10(|a s|^2 / |a s - e|^2), a = <e, s> / |s|^2.

    Args:
        est, ref: (..., S) signals, broadcastable.

    Returns:
        (...) dB.
    """
    est = est - est.mean(-1, keepdim=True)
    ref = ref - ref.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return 10 * torch.log10((target * target).sum(-1) / ((noise * noise).sum(-1) + eps) + eps)


def pit_si_sdr(est: torch.Tensor, ref: torch.Tensor) -> tuple[float, tuple]:
    """Mean SI-SDR (dB) over sources under the best pairing of estimates with references.

    Args:
        est, ref: (C, S) estimated and reference sources.

    Returns:
        (mean SI-SDR of the best permutation, that permutation: perm[i] = reference of estimate i).
    """
    from itertools import permutations

    pair = si_sdr(est[:, None, :], ref[None, :, :])  # (C est, C ref)
    C = est.shape[0]
    best = max(permutations(range(C)), key=lambda p: float(sum(pair[i, p[i]] for i in range(C))))
    return float(sum(pair[i, best[i]] for i in range(C)) / C), best


def si_sdr_improvement(est: torch.Tensor, ref: torch.Tensor, mix: torch.Tensor) -> Dict[str, float]:
    """SI-SDR of the estimates (PIT) and its improvement over the mixture, in dB, one utterance.

    Args:
        est, ref: (C, S) estimated and reference sources.
        mix: (S,) the mixture.

    Returns:
        si_sdr (PIT mean over sources), si_sdr_mix (the mixture as every estimate), si_sdri.
    """
    est, ref, mix = est.double(), ref.double(), mix.double()
    s, _ = pit_si_sdr(est, ref)
    s_mix = float(si_sdr(mix[None, :].expand_as(ref), ref).mean())
    return {"si_sdr": s, "si_sdr_mix": s_mix, "si_sdri": s - s_mix}


# ESPnet egs2/ml_superb/asr1/local/data_prep.py, process_text: a "[" up to the last "]" after it
# with no parenthesis in between (greedy: "[a] b [c]" goes whole), then ASCII punctuation
_MLSUPERB_BRACKETS = re.compile(r"\[[^()]*\]")
_ASCII_PUNCTUATION = str.maketrans("", "", string.punctuation)


def mlsuperb_normalize(text: Optional[str], brackets: bool = True) -> str:
    """ML-SUPERB's transcript normalisation, as ESPnet's recipe writes its `text` files.

    Multilingual prep (`local/data_prep.py`): remove every match of the bracket regex (greedy
    from a "[" to the last "]" with no parenthesis between), delete the 32 ASCII punctuation
    characters of Python's `string.punctuation`, upper-case (`str.upper`, so "ß" -> "SS").
    Monolingual prep (`local/single_lang_data_prep.py`, `brackets=False`): the same without the
    bracket regex. Everything else stays: other scripts' punctuation ("¿", "¡", "。", "।"),
    combining marks, runs of spaces inside the text (each a CTC space token, as ESPnet's char
    tokenizer makes them). Leading and trailing whitespace is dropped, as reading the Kaldi-style
    `text` file (`utt_id text`) does. No Unicode normalisation (the recipe applies none).
    """
    text = text or ""
    if brackets:
        text = _MLSUPERB_BRACKETS.sub("", text)
    return text.translate(_ASCII_PUNCTUATION).upper().strip()


def lang_token(code: str) -> str:
    """The ML-SUPERB language tag of a language code, e.g. "en" -> "[en]", "eng" -> "[eng]"."""
    return f"[{code}]"


def first_lang_token(tokens: Sequence[str], unknown: str = "[UNK]") -> str:
    """ML-SUPERB's LID rule on a decoded token sequence: the first `[xxx]` token, else "[UNK]"."""
    for t in tokens:
        if len(t) > 2 and t.startswith("[") and t.endswith("]"):
            return t
    return unknown


def macro_mean(values: Dict[Hashable, float]) -> float:
    """Unweighted mean over groups (languages), NaN groups left out; NaN when none."""
    vals = [v for v in values.values() if v == v]
    return float(np.mean(vals)) if vals else float("nan")


_TOKEN = re.compile(r"\[[^\[\]\s]*\]|.", re.S)


def split_tokens(text: str) -> List[str]:
    """A target string -> CTC tokens: each `[xx]` language tag is one token, everything else one
    character per token (spaces included). Normalised text has no brackets, so any bracketed
    run is a tag."""
    return _TOKEN.findall(text or "")


def strip_lang_tokens(text: str) -> str:
    """The transcript part of an ML-SUPERB ASR+LID string: tags removed, single spaces."""
    return " ".join("".join(t for t in split_tokens(text) if not (len(t) > 2 and t[0] == "[")).split())


def token_error_rate(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> float:
    """Edit distance over token sequences (multi-character tokens such as `[en]` count once) /
    total reference tokens, in percent, via jiwer on words of one symbol per token."""
    symbols: Dict[str, str] = {}

    def word(t: str) -> str:
        return symbols.setdefault(t, f"t{len(symbols)}")

    return error_rate([" ".join(word(t) for t in r) for r in refs], [" ".join(word(t) for t in h) for h in hyps])
