"""Which utterances a pre-training run uses: the recipe's data subset and splits, noise clips."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from harness.data.corpus import Corpus, Utterance
from harness.errors import HarnessError
from harness.pretrain.recipe import DataConfig

SPLITS = ("train", "dev")


def select_utterances(corpus: Corpus, data: DataConfig, split: str) -> List[Utterance]:
    """Utterances of `split` in the data config's subset (the subset filter is skipped when the
    corpus has no subset field), in manifest order; the train split is capped and, with
    balance "language", cut to at most `per_language` utterances of each language."""
    if not split:
        return []
    has_subset = any("subset" in u.custom for u in corpus.utterances)
    utts = corpus.select(split=split, subset=data.subset if has_subset else None)
    if split == data.train_split and data.max_utterances:
        utts = utts[: data.max_utterances]
    if split == data.train_split and data.balance == "language":
        utts = balance_languages(utts, data.per_language, data.balance_seed)
    return utts


def balance_languages(utts: List[Utterance], per_language: int = 0, seed: int = 0) -> List[Utterance]:
    """At most `per_language` utterances of each language (0 = the median language's count),
    drawn at random with `seed`, returned in manifest order."""
    by_lang: Dict[str, List[int]] = {}
    for i, u in enumerate(utts):
        if not u.language:
            raise HarnessError(f"utterance {u.id} has no language: a language-balanced subset needs one per utterance")
        by_lang.setdefault(u.language, []).append(i)
    cap = per_language or int(np.median([len(v) for v in by_lang.values()]))
    rng = np.random.default_rng(seed)
    keep: List[int] = []
    for lang in sorted(by_lang):
        idx = by_lang[lang]
        keep += idx if len(idx) <= cap else sorted(rng.choice(idx, cap, replace=False).tolist())
    return [utts[i] for i in sorted(keep)]


def noise_clips(corpus: Corpus, noise: Optional[str], split: str) -> List[str]:
    """Noise clip files for objectives that mix in noise: every wav/flac under `noise` (a folder,
    e.g. MUSAN or DNS-Challenge noise), else the corpus's own "noise" subset of `split`."""
    if noise:
        root = Path(noise)
        if not root.is_dir():
            raise HarnessError(f"--noise {noise}: not a folder of noise clips")
        files = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
        if not files:
            raise HarnessError(f"--noise {noise}: no .wav or .flac file in it")
        return files
    clips = [u for u in corpus.select(split=split) if u.subset == "noise"]
    return sorted({u.path for u in clips})
