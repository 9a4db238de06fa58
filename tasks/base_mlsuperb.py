"""MLSuperbTask and register_mlsuperb: the base class of the ML-SUPERB tasks (mono_asr, ml_asr,
lid_ctc, asr_lid), a helper of tasks/base.py (not a task)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional

from harness.data.corpus import Utterance
from harness.errors import HarnessError
from tasks.base import Splits, most_frequent, pools_by_subset_split, require
from tasks.base_ctc import CTCTask


class MLSuperbTask(CTCTask):
    """The ML-SUPERB tasks (docs/protocol.md section 3: mono_asr, ml_asr, lid_ctc, asr_lid): the ML-SUPERB
    head, CTC over characters of normalised text (space is a token) and/or one `[lang]` token per
    language, greedy decoding; CER pooled over the utterances of the normal and of the few-shot
    languages (`grouped_cer`), LID accuracy over utterances.

    Training data follow a budget (harness/data/budgets.py): per language up to 10 min or 1 h of
    speech (scaled on synth), few-shot languages 5 utterances. Each subclass is registered twice
    by `register_mlsuperb(family)`, as `<family>_10min` and `<family>_1h`.

    Class attributes a subclass sets:
        family: the task family name (the registered names add the budget).
        fewshot: include few-shot languages.
        with_tag / with_text: targets start with the `[lang]` token / hold the transcript.
        quick: the quick profile (ProbeConfig overrides); the paper profile is shared.

    Head (ProbeConfig): head_dim = Transformer width d (8 heads from 256 up, else 4), head_layers
    = blocks, dropout; head "default" = ESPnet's sizes (FFN 4d, d subsampling channels), "lite" =
    FFN 2d and 8 subsampling channels (the quick profile: a CPU affords it; the convolutions are the
    costliest part, and 8 channels instead of 16 train asr_lid 15% faster for 1-2 CER points).
    """

    heads = ("default", "lite")

    family: str = ""
    budget: str = "10min"
    char_level = True
    fewshot: bool = True
    with_tag: bool = False
    with_text: bool = True
    #: the quick profile of each family; none turns SpecAugment on: the recipe's masks slow a
    #: few hundred updates down (ml_asr_10min, synth small, test CER normal without / with:
    #: fbank 49.35 / 54.30, mfcc 52.40 / 63.17)
    quick: Dict[str, Any] = {}
    #: paper profile (ESPnet egs2/ml_superb/asr1/conf/tuning/train_asr_s3prl_{10min,1h}.yaml): Adam
    #: 1e-4, weight decay 1e-6, 8 utterances x accumulation 4, ESPnet's grad_clip default 5,
    #: 2 pre-LN blocks d 256 / 8 heads / FFN 1024, dropout 0.1, the recipe's SpecAugment, the
    #: average of the 5 checkpoints with the lowest validation loss (keep_nbest_models 5)
    paper: Dict[str, Any] = dict(lrs=(1e-4,), batch_seconds=8 * 30.0, max_batch_items=8, grad_accum=4, grad_clip=5.0,
                                 head_dim=256, head_layers=2, dropout=0.1, optimizer="adam",
                                 weight_decay=1e-6, specaug=True, average_best=5)
    #: updates = num_iters_per_epoch x max_epoch / accum_grad: 10000 x 30 / 4 and 20000 x 30 / 4
    paper_steps: Dict[str, int] = {"10min": 75_000, "1h": 150_000}
    #: one evaluation per ESPnet epoch (num_iters_per_epoch / accum_grad updates)
    paper_eval_every: Dict[str, int] = {"10min": 2_500, "1h": 5_000}
    ctc_reduction = "batch"  # espnet2/asr/ctc.py: summed, divided by the batch size

    # -- targets ---------------------------------------------------------------------------
    #: the multilingual prep's bracket regex (ESPnet local/data_prep.py); the monolingual prep
    #: (local/single_lang_data_prep.py) has none
    remove_brackets: bool = True

    def transcript(self, utt: Utterance) -> str:
        from tasks.metrics import mlsuperb_normalize

        return mlsuperb_normalize(utt.text, brackets=self.remove_brackets)

    def tokens(self, utt):
        from tasks.metrics import lang_token

        toks = [lang_token(utt.language)] if self.with_tag else []
        if self.with_text:
            text = self.transcript(utt)
            toks += ([" "] if toks else []) + list(text)
        return toks

    def encode(self, text):
        from tasks.metrics import split_tokens

        return [self._index[t] for t in split_tokens(text) if t in self._index]

    def usable(self, utt: Utterance) -> bool:
        """Speech with a language (and, for transcript targets, non-empty normalised text)."""
        return bool(utt.language) and (not self.with_text or bool(self.transcript(utt)))

    #: the multilingual prep skips training utterances over 20 s ("the default setting in ml-superb
    #: benchmark", local/data_prep.py); the monolingual prep keeps them (None)
    max_train_seconds: Optional[float] = 20.0

    def trainable(self, utt: Utterance) -> bool:
        """A usable utterance the recipe keeps for training."""
        return self.usable(utt) and (self.max_train_seconds is None or utt.duration <= self.max_train_seconds)

    # -- data ------------------------------------------------------------------------------
    def prepare(self, corpus):
        from harness.data.budgets import select_budget

        usable = [u for u in corpus.select(split="train", subset="speech") if self.usable(u)]
        langs = sorted({u.language for u in usable})
        picked, binfo = select_budget(corpus, self.budget, languages=langs, keep=self.trainable)
        if not self.fewshot:
            picked = {k: v for k, v in picked.items() if k not in binfo["fewshot_languages"]}
        if not picked:
            raise HarnessError(f"corpus {corpus.name} ({corpus.root}) has no usable language for task {self.name!r}")
        train = [u for lang in sorted(picked) for u in picked[lang]]

        def pick(split):
            utts = [u for u in corpus.select(split=split, subset="speech") if u.language in picked and self.usable(u)]
            return require(utts, self.name, corpus, f"{split} speech in languages {', '.join(sorted(picked))}")

        splits = {"train": train, "dev": pick("dev"), "test": pick("test")}
        available = {lang: round(sum(u.duration for u in usable if u.language == lang), 3) for lang in picked}
        # the corpus's resource class of each language ("high" / "low" / "fewshot" on synth, where it
        # also describes the pre-training split; "normal" / "fewshot" on real corpora)
        classes = {lang: Counter(str(u.custom.get("lang_class")) for u in usable if u.language == lang).most_common(1)[0][0]
                   for lang in picked}
        info = {
            **binfo,
            "train_seconds": {k: v for k, v in binfo["train_seconds"].items() if k in picked},
            "train_utts": {k: v for k, v in binfo["train_utts"].items() if k in picked},
            "languages": sorted(picked),
            "fewshot_languages": [x for x in binfo["fewshot_languages"] if x in picked],
            "normal_languages": [x for x in binfo["normal_languages"] if x in picked],
            "available_seconds": available,
            "language_classes": classes,
            "language_of": {u.id: u.language for part in splits.values() for u in part},
            "vocab": self.vocab_from(train),
        }
        return Splits(**splits, info=info, pools=pools_by_subset_split(corpus, splits))

    def make_head(self, dim, info, cfg):
        from tasks.heads_mlsuperb import MLSUPERB_SPECAUG, MLSuperbHead

        d = cfg.head_dim
        if cfg.head not in ("default", "lite"):
            raise HarnessError(f"task {self.name!r}: head {cfg.head!r} unknown; choose default or lite")
        # "lite" (quick profile): 8 subsampling channels instead of d, FFN 2d instead of 4d
        lite = cfg.head == "lite"
        return MLSuperbHead(dim, len(info["vocab"]), d_model=d, heads=8 if d >= 256 else 4, ffn=(2 if lite else 4) * d,
                            layers=cfg.head_layers, dropout=cfg.dropout, conv_channels=8 if lite else None,
                            specaug=MLSUPERB_SPECAUG if cfg.specaug else None)

    # -- scoring ---------------------------------------------------------------------------
    def by_language(self, refs: Dict[str, Any], info: Dict[str, Any]) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        for uid in refs:
            out.setdefault(info["language_of"][uid], []).append(uid)
        return dict(sorted(out.items()))

    def language_cer(self, preds, refs, info) -> Dict[str, float]:
        """CER per language on transcripts, language tags removed (percent)."""
        from tasks.metrics import char_error_rate

        return {lang: char_error_rate([self.text_part(refs[i]) for i in ids], [self.text_part(preds[i]) for i in ids])
                for lang, ids in self.by_language(refs, info).items()}

    def grouped_cer(self, preds, refs, info) -> Dict[str, float]:
        """CER in percent pooled over the utterances of a group, as ML-SUPERB's sclite runs on the
        hypotheses of the "trained" and the "reserved" (few-shot) languages (ESPnet
        egs2/ml_superb/asr1/local/split_results.py, score_type normal): cer_normal, cer_fewshot,
        and cer over all utterances. Language tags are removed first."""
        from tasks.metrics import char_error_rate

        few = set(info["fewshot_languages"])
        groups: Dict[str, List[str]] = {"cer": list(refs), "cer_normal": [], "cer_fewshot": []}
        for uid in refs:
            groups["cer_fewshot" if info["language_of"][uid] in few else "cer_normal"].append(uid)
        return {name: char_error_rate([self.text_part(refs[i]) for i in ids], [self.text_part(preds[i]) for i in ids])
                for name, ids in groups.items()}

    def text_part(self, target: str) -> str:
        """The transcript of a target or output string (language tags removed where targets have them)."""
        from tasks.metrics import strip_lang_tokens

        return strip_lang_tokens(target) if self.with_tag else target

    def decoded_language(self, text: str) -> str:
        from tasks.metrics import first_lang_token, split_tokens

        return first_lang_token(split_tokens(text))

    def lid_scores(self, preds, refs, info) -> Dict[str, Any]:
        """LID by ML-SUPERB's rule (first tag of the greedy output, "[UNK]" if none): accuracy,
        macro accuracy and per-language accuracy (percent)."""
        from tasks.metrics import accuracy, macro_accuracy, per_class_accuracy

        ids = list(refs)
        r = [self.decoded_language(refs[i]) for i in ids]
        p = [self.decoded_language(preds[i]) for i in ids]
        per = per_class_accuracy(r, p)
        code = {self.decoded_language(refs[i]): info["language_of"][i] for i in ids}
        return {"acc": accuracy(r, p), "macro_acc": macro_accuracy(r, p),
                "per_language": {code[t]: v for t, v in per.items()}}

    def trivial_preds(self, refs, info):
        if not self.with_tag:
            return super().trivial_preds(refs, info)
        top = most_frequent(self.decoded_language(r) for r in refs.values())
        what = f"constant answer: the most frequent test language tag ({top})"
        return what + (" and no transcript" if self.with_text else ""), {i: top for i in refs}

    def extra_results(self, preds, refs, info):
        return {**super().extra_results(preds, refs, info), "per_language_cer": self.language_cer(preds, refs, info),
                "budget": self.budget_record(info)}

    def budget_record(self, info: Dict[str, Any]) -> Dict[str, Any]:
        """The training data a result was trained on: budget, scale, seconds and utterances per language."""
        keys = ("budget", "budget_seconds", "budget_scale", "budget_seconds_scaled", "train_seconds", "train_utts",
                "normal_languages", "fewshot_languages", "mono_languages", "mono_languages_note", "language_classes")
        return {k: info[k] for k in keys if k in info}


def register_mlsuperb(family: str):
    """Class decorator: register `<family>_10min` and `<family>_1h`, each a subclass fixing the budget."""
    from harness.data.budgets import BUDGETS
    from harness.registry import register_task

    def deco(cls):
        for budget in BUDGETS:
            name = f"{family}_{budget}"
            profiles = {"quick": dict(cls.quick), "paper": {**cls.paper, "steps": cls.paper_steps[budget],
                                                            "eval_every": cls.paper_eval_every[budget]}}
            sub = type(f"{cls.__name__}_{budget}", (cls,), {
                "name": name, "budget": budget, "family": family, "profiles": profiles,
                "__module__": cls.__module__, "__doc__": cls.__doc__})
            register_task(name)(sub)
        return cls

    return deco
