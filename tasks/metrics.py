"""Metrics shared by tasks. Edit distances come from jiwer, EER/minDCF from speechbrain: the
reference implementations the protocol names. Values are percentages where SUPERB reports them."""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Hashable, List, Sequence

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


def eer_and_mindcf(scores: Sequence[float], labels: Sequence[int], p_target: float = 0.01) -> Dict[str, float]:
    """Equal error rate (percent) and minDCF (c_miss = c_fa = 1) via speechbrain."""
    from speechbrain.utils.metric_stats import EER, minDCF

    s = torch.tensor(list(scores), dtype=torch.float32)
    y = torch.tensor(list(labels), dtype=torch.bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("a trial list needs both target and non-target trials")
    eer, _ = EER(pos, neg)
    dcf, _ = minDCF(pos, neg, p_target=p_target)
    return {"eer": 100.0 * float(eer), "mindcf": float(dcf)}


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
