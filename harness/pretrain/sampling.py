"""mHuBERT-147's two-level language / dataset up-sampling of a pre-training epoch (docs/pretrain.md section 4).

The training loop draws each epoch's utterances with `upsample_indices` when train.upsample_alpha
or upsample_beta is not 1 (batches.epoch_order); the draw depends only on the generator it is given,
which the loop seeds by (seed, epoch), so every DDP rank and a resumed run draw the same epoch.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np


def upsample_indices(languages: Sequence[str], datasets: Sequence[str], alpha: float, beta: float,
                     rng: np.random.Generator) -> np.ndarray:
    """One epoch of mHuBERT-147's two-level up-sampling (their fairseq fork, mHubertDataset.
    ordered_indices): N = len(languages) draws, in random order, of utterance indices.

    Counts are utterances (not hours). Language l gets weight (n_l / N)^alpha, dataset d of l
    (n_ld / n_l)^beta, both normalised. N languages are drawn from the language weights; the draws
    of each language are split over its datasets by drawing from the dataset weights; a dataset
    drawn c times gives c of its utterances: a prefix of a random permutation when c <= n_ld,
    else c // n_ld whole shuffled copies plus c % n_ld utterances drawn without replacement.
    Groups are visited in order of first appearance, each language's draws shuffled, then all.

    Args:
        languages, datasets: (N,) the language and dataset of every utterance.
        alpha, beta: language and dataset smoothing exponents (1 = proportional to counts).
        rng: the epoch's generator.

    Returns:
        (N,) int64 indices into the utterances (with repeats when a group is up-sampled).
    """
    groups: Dict[str, Dict[str, List[int]]] = {}
    for i, (lang, ds) in enumerate(zip(languages, datasets)):
        groups.setdefault(lang, {}).setdefault(ds, []).append(i)
    n = len(languages)
    langs = list(groups)
    n_l = np.array([sum(len(v) for v in groups[lang].values()) for lang in langs], dtype=np.float64)
    p_l = (n_l / n) ** alpha
    per_lang = np.bincount(rng.choice(len(langs), size=n, p=p_l / p_l.sum()), minlength=len(langs))
    out: List[np.ndarray] = []
    for lang, m, total in zip(langs, per_lang, n_l):
        if m == 0:
            continue
        sets = list(groups[lang].values())
        p_d = (np.array([len(v) for v in sets], dtype=np.float64) / total) ** beta
        per_set = np.bincount(rng.choice(len(sets), size=int(m), p=p_d / p_d.sum()), minlength=len(sets))
        drawn = [_draw(np.asarray(idx), int(c), rng) for idx, c in zip(sets, per_set) if c]
        out.append(rng.permutation(np.concatenate(drawn)))
    return rng.permutation(np.concatenate(out)).astype(np.int64)


def _draw(idx: np.ndarray, c: int, rng: np.random.Generator) -> np.ndarray:
    """c members of idx: whole shuffled copies while c >= len(idx), then a draw without replacement."""
    parts = [rng.permutation(idx) for _ in range(c // len(idx))]
    if c % len(idx):
        parts.append(rng.choice(idx, c % len(idx), replace=False))
    return np.concatenate(parts)
