"""ML-SUPERB monolingual ASR: one probe per language (its own vocabulary, head and layer
weights), character CTC. Each probe's error rate is pooled over its test utterances: CER, or WER
for cmn and jpn (ESPnet egs2/ml_superb/asr1/local/mono_superb_score.py reads score_wer for those);
metric "cer" = the mean over a language's probes, then over languages (the same script: eng1,
eng2 and eng3 are averaged into one "eng" value first). Transcripts follow the monolingual prep,
which has no bracket regex (`remove_brackets = False`).

Languages: every normal (non-few-shot) language of the corpus. The quick profile keeps the
`QUICK_LANGUAGES` languages with the most training speech (ties: code order) so that the
per-language probes fit the CPU demo; `info["mono_languages"]` and `info["mono_languages_note"]`
say which. The per-language probes run through the `subsets` hook of harness.evaluate, which
stores `per_language_cer` and `per_language_layer_weights` in the result's extra.

On a corpus whose meta names `mono_pairs` ({name: [language, dataset]}, the ML-SUPERB release's
13 monolingual benchmarks), there is one probe per pair instead: as in the ML-SUPERB recipe, a
pair trains and selects on its dataset's utterances only and is tested on every test utterance
of its language; the per-subset extras are then keyed by pair name (e.g. "eng1").

Registered as `mono_asr_10min` and `mono_asr_1h`."""

from __future__ import annotations

from tasks.base import error_rate_metric, Splits
from tasks.base_mlsuperb import MLSuperbTask, register_mlsuperb

QUICK_LANGUAGES = 3


@register_mlsuperb("mono_asr")
class MonolingualASR(MLSuperbTask):
    primary_metric = "cer"
    higher_is_better = False
    metrics = (error_rate_metric("cer", 2),)
    versions = {1: "unversioned runs (some with the macro-averaged CER, before 3c700bb)", 2: "the definition when tasks began to declare versions (2026-12-07); version 1 runs were made by earlier code"}
    fewshot = False
    #: how evaluate names the subsets in its per-subset extras (per_language_cer, ...)
    subset_label = "language"
    remove_brackets = False
    max_train_seconds = None
    #: languages whose monolingual score is a word error rate (mono_superb_score.py)
    WER_LANGUAGES = ("cmn", "jpn")
    quick = dict(steps=150, lrs=(2e-3,), batch_seconds=24.0, max_batch_items=16, eval_every=50,
                 head_dim=96, head_layers=1, head="lite", dropout=0.1, optimizer="adam", weight_decay=1e-6)

    def prepare(self, corpus):
        splits = super().prepare(corpus)
        splits.info["mono_pairs"] = dict(corpus.meta.get("mono_pairs") or {})
        return splits

    def score(self, preds, refs, info, split):
        """One probe's test: "cer" = pooled CER, or pooled WER for a WER_LANGUAGES probe."""
        from tasks.metrics import error_rate

        langs = info["languages"]
        if len(langs) == 1 and langs[0] in self.WER_LANGUAGES:
            ids = list(refs)
            return {"cer": error_rate([refs[i] for i in ids], [preds[i] for i in ids])}
        return {"cer": self.grouped_cer(preds, refs, info)["cer"]}

    def extra_results(self, preds, refs, info):
        # one probe's extras; per_language_cer is keyed by the probe's subset (eng1, eng2, ... each
        # its own) and written by harness.evaluate.train_subset_probes
        out = super().extra_results(preds, refs, info)
        out.pop("per_language_cer", None)
        lang = info["languages"][0]
        out["mono_metric"] = {lang: "wer" if lang in self.WER_LANGUAGES else "cer"}
        return out

    def combine_subsets(self, values, subsets):
        """Mean over each language's probes, then over languages (NaN probes left out)."""
        from tasks.metrics import macro_mean

        by_lang = {}
        for name, v in values.items():
            by_lang.setdefault(subsets[name].info["languages"][0], {})[name] = v
        return macro_mean({lang: macro_mean(vs) for lang, vs in by_lang.items()})

    def languages(self, info, profile: str):
        langs = list(info["normal_languages"])
        if profile == "quick" and len(langs) > QUICK_LANGUAGES:
            langs = sorted(langs, key=lambda x: (-info["available_seconds"][x], x))[:QUICK_LANGUAGES]
        return sorted(langs)

    def subsets(self, splits, profile):
        if splits.info.get("mono_pairs"):
            return self._pair_subsets(splits, profile)
        langs = self.languages(splits.info, profile)
        n_all = len(splits.info["normal_languages"])
        note = (f"quick profile: {len(langs)} of {n_all} languages (most training speech)"
                if len(langs) < n_all else "all normal languages")
        splits.info.update(mono_languages=langs, mono_languages_note=note)
        out = {}
        for lang in langs:
            part = {s: [u for u in getattr(splits, s) if u.language == lang] for s in ("train", "dev", "test")}
            out[lang] = self._subset(splits, part, lang)
        return out

    def _subset(self, splits, part, lang):
        info = {**splits.info, "languages": [lang], "vocab": self.vocab_from(part["train"])}
        return Splits(**part, info=info, pools=splits.pools)

    def _pair_subsets(self, splits, profile):
        out, skipped = {}, []
        for name, (lang, dataset) in sorted(splits.info["mono_pairs"].items()):
            def ours(u, lang=lang, dataset=dataset):
                return u.language == lang and u.custom.get("dataset") == dataset

            part = {"train": [u for u in splits.train if ours(u)], "dev": [u for u in splits.dev if ours(u)],
                    "test": [u for u in splits.test if u.language == lang]}
            if all(part.values()):
                out[name] = self._subset(splits, part, lang)
            else:
                skipped.append(name)
        if not out:
            from harness.errors import HarnessError

            raise HarnessError(f"task {self.name!r}: none of the corpus's mono_pairs "
                               f"({', '.join(sorted(splits.info['mono_pairs']))}) has train, dev and test speech")
        if profile == "quick" and len(out) > QUICK_LANGUAGES:
            secs = {n: sum(u.duration for u in sub.train) for n, sub in out.items()}
            out = {n: out[n] for n in sorted(sorted(out, key=lambda n: (-secs[n], n))[:QUICK_LANGUAGES])}
        note = f"(language, dataset) pairs {', '.join(out)}" + (f"; without data: {', '.join(skipped)}" if skipped else "")
        splits.info.update(mono_languages=sorted({sub.info["languages"][0] for sub in out.values()}),
                           mono_languages_note=note)
        return out
