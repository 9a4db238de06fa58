"""Text for the `synth` corpus: the vendored UDHR (harness/data/udhr/udhr.json.gz), cut into
sentence chunks of about 4-14 words, and split train/dev/test by chunk.

Everything here is deterministic: chunks follow the text order, and the split of a language's
chunks is a seeded permutation (`rng_for(seed, ...)`, never Python's salted `hash`).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Dict, List

import numpy as np

from harness.errors import HarnessError

UDHR_PATH = Path(__file__).resolve().parent / "udhr" / "udhr.json.gz"

MIN_WORDS, MAX_WORDS, SPLIT_WORDS = 4, 14, 10
SPLIT_FRACTIONS = {"train": 0.70, "dev": 0.15, "test": 0.15}

_SENTENCE_END = re.compile(r"(?<=[.!?;:\u0964\u06d4\u061f\u061b\u1362\u1364\u0589])\s+")
_CLAUSE_END = re.compile(r"(?<=[,\u060c\u1363\u3001\u055d])\s+")
_ENUM = re.compile(r"^(\(?\d{1,2}[.)]|\(?[a-z][.)]|[-\u2013\u2014\u2022*])\s+", re.I)
_EDGE = ",;:\u060c\u061b\u1363\u1364\u2013\u2014-\u00ab\u00bb\"'\u201c\u201d\u201e\u2018\u2019() "


def rng_for(seed: int, *tags) -> np.random.Generator:
    """A generator seeded by `seed` and string tags (stable across processes and platforms)."""
    key = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(t).encode("utf-8")) for t in tags]
    return np.random.default_rng(key)


@lru_cache(maxsize=1)
def load_udhr() -> Dict[str, dict]:
    """code -> {"name", "voice", "udhr", "iso6393", "paragraphs"} from the vendored file."""
    if not UDHR_PATH.exists():
        raise HarnessError(f"the vendored UDHR text is missing: {UDHR_PATH} "
                           "(rebuild it with scripts/make_udhr.py)")
    with gzip.open(UDHR_PATH, "rt", encoding="utf-8") as f:
        return json.load(f)["languages"]


def _clean(piece: str) -> str:
    piece = _ENUM.sub("", piece.strip())
    return piece.strip(_EDGE).strip()


def _balanced(words: List[str], size: int) -> List[List[str]]:
    n = max(1, math.ceil(len(words) / size))
    step = len(words) / n
    return [words[round(i * step):round((i + 1) * step)] for i in range(n)]


def chunk_paragraph(text: str) -> List[str]:
    """Cut one paragraph into chunks of MIN_WORDS..MAX_WORDS words at sentence, then clause,
    then word boundaries (a chunk below MIN_WORDS joins a neighbour when it fits)."""
    pieces: List[List[str]] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        if not words:
            continue
        if len(words) <= MAX_WORDS:
            pieces.append(words)
            continue
        cur: List[str] = []
        for clause in _CLAUSE_END.split(sentence):
            cw = clause.split()
            if len(cw) > MAX_WORDS:
                if cur:
                    pieces.append(cur)
                    cur = []
                pieces.extend(_balanced(cw, SPLIT_WORDS))
            elif len(cur) + len(cw) > MAX_WORDS:
                pieces.append(cur)
                cur = cw
            else:
                cur = cur + cw
        if cur:
            pieces.append(cur)
    merged: List[List[str]] = []
    for p in pieces:
        if merged and (len(p) < MIN_WORDS or len(merged[-1]) < MIN_WORDS) \
                and len(merged[-1]) + len(p) <= MAX_WORDS:
            merged[-1] = merged[-1] + p
        else:
            merged.append(p)
    out = []
    for p in merged:
        chunk = _clean(" ".join(p))
        if len(chunk.split()) >= MIN_WORDS - 1 and any(ch.isalpha() for ch in chunk):
            out.append(chunk)
    return out


@lru_cache(maxsize=None)
def chunks(lang: str) -> List[str]:
    """All distinct chunks of a language's UDHR text, in text order."""
    udhr = load_udhr()
    if lang not in udhr:
        raise HarnessError(f"no UDHR text for language {lang!r}; known: {', '.join(sorted(udhr))}")
    seen, out = set(), []
    for para in udhr[lang]["paragraphs"]:
        for c in chunk_paragraph(para):
            key = re.sub(r"\W+", " ", c.lower()).strip()
            if key and key not in seen:
                seen.add(key)
                out.append(c)
    return out


def split_chunks(lang: str, seed: int) -> Dict[str, List[str]]:
    """The language's chunks split ~70/15/15 into train/dev/test (disjoint, seeded)."""
    cs = chunks(lang)
    order = rng_for(seed, "text-split", lang).permutation(len(cs))
    n_dev = max(1, round(len(cs) * SPLIT_FRACTIONS["dev"]))
    n_test = max(1, round(len(cs) * SPLIT_FRACTIONS["test"]))
    n_train = len(cs) - n_dev - n_test
    idx = {"train": order[:n_train], "dev": order[n_train:n_train + n_dev],
           "test": order[n_train + n_dev:]}
    return {k: [cs[i] for i in sorted(v)] for k, v in idx.items()}
