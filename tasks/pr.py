"""PR: phoneme recognition, frame-wise linear head + CTC, scored by PER (docs/protocol.md section 3).

Targets: SUPERB's PR (s3prl downstream/ctc/libriphone.yaml, corpus/libriphone.py) maps each
word of the transcript through a LibriSpeech lexicon (`WORD PH1 PH2 ...` per line, ARPAbet with
stress; the first entry of a word wins). That lexicon is a separate download: `harness eval
--lexicon FILE` (EvalConfig.lexicon) reads it, and a word it lacks is an error, as in s3prl.
Without one the targets are the espeak phones the corpus carries (synth: espeak's phonemes;
LibriSpeech: the loader's espeak-ng phones), a substitute: every result records
`phones_source` ("lexicon" or "espeak") in its extra so a board can mark the substitutes."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from harness.errors import HarnessError
from harness.registry import register_task
from tasks.base import error_rate_metric, pools_by_subset_split, require, Splits
from tasks.base_ctc import CTCTask
from tasks.heads import FrameCTCHead
from tasks.base_lr import superb_lr_grid
from tasks.metrics import error_rate


@register_task("pr")
class PhonemeRecognition(CTCTask):
    name = "pr"
    primary_metric = "per"
    metrics = (error_rate_metric("per"),)
    versions = {1: "unversioned runs", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    reference_lr = 1e-2
    profiles = {
        # quick: one lr for the demo budget (1e-2 was dev-best for three of the four demo upstreams;
        # at 3e-3 fbank stays on the CTC blank plateau)
        "quick": dict(steps=500, lrs=(1e-2,), batch_seconds=24.0, eval_every=125, head_dim=256,
                      optimizer="adamw"),
        # s3prl downstream/ctc/libriphone.yaml: Adam 1e-2, batch 16 x accumulation 2, clip 1,
        # dev every 1000 of 100k updates, project_dim 256 then a linear layer (FrameLevel). lrs:
        # the maintainers' ctc/pr.sh grid (docs/conformance.md, "Learning-rate search")
        "paper": dict(steps=100_000, lrs=superb_lr_grid(reference_lr, runfile=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5)),
                      batch_seconds=16 * 12.0, max_batch_items=16, grad_accum=2,
                      grad_clip=1.0, eval_every=1000, head_dim=256, optimizer="adam"),
    }

    def __init__(self):
        self.lexicon: Optional[Dict[str, List[str]]] = None
        self.lexicon_file = ""

    def set_lexicon(self, path):
        self.lexicon, self.lexicon_file = read_lexicon(Path(path)), str(path)

    def tokens(self, utt):
        if self.lexicon is not None:
            return [p for w in (utt.text or "").upper().split() for p in self.lexicon[w]]
        return (utt.custom.get("phones") or "").split()

    def prepare(self, corpus):
        def has_target(u):
            return bool((u.text or "").split()) if self.lexicon is not None else bool(u.custom.get("phones"))

        def pick(split):
            utts = [u for u in corpus.select(split=split, subset="speech")
                    if (u.language or "en").startswith("en") and has_target(u)]
            return require(utts, self.name, corpus, f"English {split} utterances with phones")

        splits = {s: pick(s) for s in ("train", "dev", "test")}
        if self.lexicon is not None:
            missing = sorted({w for part in splits.values() for u in part for w in (u.text or "").upper().split()
                              if w not in self.lexicon})
            if missing:
                raise HarnessError(f"lexicon {self.lexicon_file} lacks {len(missing)} word(s) of corpus "
                                   f"{corpus.name}, e.g. {', '.join(missing[:5])}")
        info = {"vocab": self.vocab_from(splits["train"]),
                "phones_source": "lexicon" if self.lexicon is not None else "espeak",
                "lexicon_file": self.lexicon_file}
        return Splits(**splits, info=info, pools=pools_by_subset_split(corpus, splits))

    reports_ctc_floor = True  # PER is the error rate of the phone tokens the head emits

    def extra_results(self, preds, refs, info):
        out = {**super().extra_results(preds, refs, info), "phones_source": info["phones_source"]}
        if info["lexicon_file"]:
            out["lexicon_file"] = info["lexicon_file"]
        return out

    def make_head(self, dim, info, cfg):
        return FrameCTCHead(dim, cfg.head_dim, len(info["vocab"]))

    def score(self, preds, refs, info, split):
        ids = list(refs)
        return {"per": error_rate([refs[i] for i in ids], [preds[i] for i in ids])}


def read_lexicon(path: Path) -> Dict[str, List[str]]:
    """A pronunciation lexicon: `WORD PH1 PH2 ...` per line (tabs or spaces), as s3prl's
    downstream/ctc/lexicon/librispeech-lexicon*.txt; a word's first entry wins (s3prl's
    libriphone.py keeps the first for a deterministic result). Words are upper-cased.

    Raises:
        HarnessError: the file is missing, empty, or has a word without phones.
    """
    if not path.is_file():
        raise HarnessError(f"lexicon {path} does not exist")
    lex: Dict[str, List[str]] = {}
    for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise HarnessError(f"lexicon {path} line {k}: {line.strip()!r} has no phones (want WORD PH1 PH2 ...)")
        lex.setdefault(parts[0].upper(), parts[1:])
    if not lex:
        raise HarnessError(f"lexicon {path} has no entries")
    return lex
