"""ML-SUPERB training budgets: per language, a seeded pick of training utterances up to a number
of seconds ("10min" = 600 s, "1h" = 3600 s per language), few-shot languages with exactly 5.

The order is a hash of (seed, utterance id), so it depends on nothing but the ids: the same corpus
always gives the same pick, the 10-minute pick is a prefix of the 1-hour pick (the budgets are
nested, as in ML-SUPERB), and utterances added to a corpus later slot into the order without
reshuffling the existing ones.

On `synth` the budgets are scaled (x0.1 by default, corpus.json key `mlsuperb_budget_scale`
overrides): synth small holds 2-16 minutes of speech per language, so unscaled budgets would all
mean "everything" and 10 min and 1 h would not differ.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any, Callable, Dict, List, Optional, Sequence

from harness.data.corpus import Corpus, Utterance
from harness.errors import HarnessError

#: budget name -> seconds of training speech per language on a real corpus
BUDGETS: Dict[str, float] = {"10min": 600.0, "1h": 3600.0}
#: default scale of the budgets on synth corpora
SYNTH_SCALE = 0.1
#: training utterances of a few-shot language (ML-SUPERB: 5)
FEWSHOT_UTTS = 5
FEWSHOT = "fewshot"


def budget_scale(corpus: Corpus) -> float:
    """corpus.json's `mlsuperb_budget_scale` if present, else 0.1 on synth and 1 on real corpora."""
    if "mlsuperb_budget_scale" in corpus.meta:
        scale = corpus.meta["mlsuperb_budget_scale"]
        if not isinstance(scale, (int, float)) or scale <= 0:
            raise HarnessError(f"{corpus.root}/corpus.json: mlsuperb_budget_scale must be a positive number, "
                               f"got {scale!r}")
        return float(scale)
    return SYNTH_SCALE if corpus.kind == "synth" else 1.0


def budget_seconds(name: str) -> float:
    if name not in BUDGETS:
        raise HarnessError(f"unknown ML-SUPERB budget {name!r}; known: {', '.join(BUDGETS)}")
    return BUDGETS[name]


def seeded_order(utts: Sequence[Utterance], seed: int = 0) -> List[Utterance]:
    """Utterances sorted by sha1(seed, id): a fixed pseudo-random order that depends on ids only."""
    def key(u: Utterance):
        return hashlib.sha1(f"{seed}:{u.id}".encode()).hexdigest(), u.id

    return sorted(utts, key=key)


def is_fewshot(utt: Utterance) -> bool:
    return utt.custom.get("lang_class") == FEWSHOT


def pick_within(utts: Sequence[Utterance], seconds: float, seed: int = 0) -> List[Utterance]:
    """The longest prefix of the seeded order whose total duration is <= `seconds` (at least one
    utterance, so a language is never empty)."""
    out, total = [], 0.0
    for u in seeded_order(utts, seed):
        if out and total + u.duration > seconds:
            break
        out.append(u)
        total += u.duration
    return out


def select_budget(corpus: Corpus, budget: str, languages: Optional[Sequence[str]] = None, seed: int = 0,
                  keep: Optional[Callable[[Utterance], bool]] = None
                  ) -> tuple[Dict[str, List[Utterance]], Dict[str, Any]]:
    """Training utterances per language for one budget.

    Args:
        corpus: reads its `speech` subset, `train` split; utterances need a language.
        budget: "10min" or "1h".
        languages: restrict to these codes (default: every language with training speech).
        seed: seeds the order.
        keep: only utterances it accepts count (e.g. those with non-empty normalised text).
    Returns:
        (language -> picked utterances in seeded order, info) where info records the budget, the
        scale, the seconds per language actually picked and which languages are few-shot.
        Utterances that carry `custom["budgets"]` (the ML-SUPERB release's own 10min / 1h lists)
        are taken as listed for the budgets they name; no duration cut is applied to them.
    """
    nominal = budget_seconds(budget)
    scale = budget_scale(corpus)
    limit = nominal * scale
    by_lang: Dict[str, List[Utterance]] = defaultdict(list)
    official = False
    for u in corpus.select(split="train", subset="speech"):
        # a release that lists its own budget sets (ML-SUPERB: custom["budgets"]) is used as is
        listed = u.custom.get("budgets")
        if listed is not None:
            official = True
            if budget not in listed:
                continue
        if u.language and (keep is None or keep(u)):
            by_lang[u.language].append(u)
    if languages is not None:
        missing = [lang for lang in languages if lang not in by_lang]
        if missing:
            raise HarnessError(f"corpus {corpus.name} ({corpus.root}) has no training speech in "
                               f"language(s) {', '.join(missing)}")
        by_lang = {lang: by_lang[lang] for lang in languages}
    if not by_lang:
        raise HarnessError(f"corpus {corpus.name} ({corpus.root}) has no training speech with a language")
    picked, fewshot = {}, []
    for lang in sorted(by_lang):
        utts = by_lang[lang]
        if any(is_fewshot(u) for u in utts):
            fewshot.append(lang)
            picked[lang] = seeded_order(utts, seed)[:FEWSHOT_UTTS]
        elif official:
            picked[lang] = seeded_order(utts, seed)  # the release's own list for this budget
        else:
            picked[lang] = pick_within(utts, limit, seed)
    info = {
        "budget": budget,
        "budget_seconds": nominal,
        "budget_scale": scale,
        "budget_seconds_scaled": limit,
        "official_lists": official,
        "fewshot_languages": fewshot,
        "normal_languages": [lang for lang in picked if lang not in fewshot],
        "train_seconds": {lang: round(sum(u.duration for u in us), 3) for lang, us in picked.items()},
        "train_utts": {lang: len(us) for lang, us in picked.items()},
    }
    return picked, info
