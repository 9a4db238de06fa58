"""ML-SUPERB pieces: the head, text normalisation, language tags, budgets, task registration."""

import pytest
import torch

from harness.data.budgets import BUDGETS, budget_scale, pick_within, select_budget, seeded_order
from harness.data.corpus import Corpus, Utterance
from harness.errors import HarnessError
from tasks.heads import SpecAugment, ctc_loss
from tasks.heads_mlsuperb import Conv2dSubsampling2, MLSuperbHead, utterance_mvn
from tasks.metrics import (first_lang_token, split_tokens, strip_lang_tokens,
                           token_error_rate)


# -- head ----------------------------------------------------------------------------------

def _head(**kw):
    torch.manual_seed(0)
    return MLSuperbHead(12, 7, d_model=32, heads=4, ffn=64, layers=2, dropout=0.1, **kw).eval()


@pytest.mark.parametrize("conv_channels", [None, 4])
def test_head_shapes_and_lengths(conv_channels):
    head = _head(conv_channels=conv_channels)
    x, lengths = torch.randn(3, 50, 12), torch.tensor([50, 31, 8])
    lp, out_lens = head(x, lengths)
    assert lp.shape == (3, (50 - 1) // 2 - 2, 7)
    assert out_lens.tolist() == [(n - 1) // 2 - 2 for n in (50, 31, 8)] == [22, 13, 1]
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 22), atol=1e-5)  # log-probabilities


def test_head_padding_does_not_change_valid_outputs():
    head = _head()
    torch.manual_seed(1)
    items = [torch.randn(n, 12) * 3 + 1 for n in (40, 23, 11)]
    lengths = torch.tensor([40, 23, 11])
    batch = torch.zeros(3, 40, 12) + 100.0  # loud padding: any leak would show
    for i, it in enumerate(items):
        batch[i, : len(it)] = it
    lp, out_lens = head(batch, lengths)
    for i, it in enumerate(items):
        alone, n = head(it[None], lengths[i : i + 1])
        assert int(n) == int(out_lens[i])
        assert torch.allclose(lp[i, : int(n)], alone[0], atol=1e-4), i


def test_head_short_input_gets_one_frame_and_trains_with_ctc():
    head = _head().train()
    lp, lens = head(torch.randn(2, 5, 12), torch.tensor([5, 3]))
    assert lens.tolist() == [1, 1] and lp.shape[1] >= 1
    loss = ctc_loss(lp, lens, [[3], [4]])
    loss.backward()
    assert torch.isfinite(loss) and head.proj.weight.grad.abs().sum() > 0


def test_head_learns_a_copy_task():
    """CTC on a toy mapping (class k = feature dim k lit for a stretch) drives the loss down."""
    torch.manual_seed(0)
    head = MLSuperbHead(6, 4, d_model=32, heads=4, ffn=64, layers=1, dropout=0.0, conv_channels=8)
    opt = torch.optim.Adam(head.parameters(), 3e-3)
    first = last = None
    for step in range(150):
        seqs = [torch.randint(1, 4, (3,)).tolist() for _ in range(8)]
        x = torch.randn(8, 60, 6) * 0.1
        for b, s in enumerate(seqs):
            for j, k in enumerate(s):
                x[b, j * 20 : j * 20 + 16, k] += 3.0
        lp, lens = head(x, torch.full((8,), 60))
        loss = ctc_loss(lp, lens, seqs)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
        last = float(loss.detach())
    assert last < 0.3 * first


def test_utterance_mvn_uses_valid_frames_only():
    x = torch.randn(2, 10, 3) * 5 + 2
    x[1, 6:] = 1000.0
    y = utterance_mvn(x, torch.tensor([10, 6]))
    assert torch.allclose(y[1, :6].mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y[1, :6].var(0, unbiased=False), torch.ones(3), atol=1e-3)
    assert y[1, 6:].abs().max() == 0
    assert torch.allclose(y[0], utterance_mvn(x[:1], torch.tensor([10]))[0])


def _spans(mask_1d):
    """Lengths of the runs of True in a 1-D bool tensor."""
    runs, n = [], 0
    for v in mask_1d.tolist() + [False]:
        if v:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


@pytest.mark.parametrize("recipe", ["superb_asr", "mlsuperb"])
def test_specaugment_follows_the_recipe_widths_in_training_only(recipe):
    from tasks.heads import SUPERB_ASR_SPECAUG
    from tasks.heads_mlsuperb import MLSUPERB_SPECAUG

    conf = {"superb_asr": SUPERB_ASR_SPECAUG, "mlsuperb": MLSUPERB_SPECAUG}[recipe]
    aug = SpecAugment(**{**conf, "time_warp": 0})
    x = torch.ones(4, 400, 240)
    assert torch.equal(aug.eval()(x, torch.tensor([400, 300, 200, 100])), x)
    torch.manual_seed(0)
    y = aug.train()(x, torch.tensor([400, 300, 200, 100]))
    zero = y == 0
    for b in range(4):
        rows, cols = zero[b].all(-1), zero[b].all(0)  # time-masked frames, frequency-masked dims
        f_spans, t_spans = _spans(cols), _spans(rows)
        assert len(f_spans) <= conf["freq_masks"] and max(f_spans, default=0) < conf["freq_width"][1] * conf["freq_masks"]
        t_max = conf.get("time_width", (0, 0))[1] if "time_width" in conf else int(400 * conf["time_width_ratio"][1])
        assert len(t_spans) <= conf["time_masks"] and max(t_spans, default=0) < t_max * conf["time_masks"]
        # the only zeros are whole masked frames or whole masked dims
        assert torch.equal(zero[b], rows[:, None] | cols[None, :])
    assert zero.any()


def test_time_warp_moves_frames_within_the_valid_part():
    aug = SpecAugment(time_warp=5, freq_masks=0, time_masks=0).train()
    ramp = torch.arange(60, dtype=torch.float32)[None, :, None].repeat(2, 1, 3)
    torch.manual_seed(1)
    y = aug(ramp, torch.tensor([60, 40]))
    assert y.shape == ramp.shape and not torch.equal(y, ramp)
    assert torch.equal(y[1, 40:], ramp[1, 40:])  # padding untouched
    assert (y[:, 1:40] - y[:, :39] >= -1e-4).all()  # a ramp stays non-decreasing
    short = torch.randn(1, 10, 3)  # t <= 2 W: not warped
    assert torch.equal(aug(short, torch.tensor([10])), short)


def test_conv2d_subsampling_lengths():
    assert Conv2dSubsampling2.out_lengths(torch.tensor([7, 8, 9, 100, 101])).tolist() == [1, 1, 2, 47, 48]


# -- text ----------------------------------------------------------------------------------

def test_tags_are_single_tokens():
    assert split_tokens("[de] HALLO WELT") == ["[de]", " ", *"HALLO", " ", *"WELT"]
    assert strip_lang_tokens("[de] HAL[fr]LO  WELT") == "HALLO WELT"
    assert token_error_rate([["[de]"]], [["[de]", "[fr]"]]) == 100.0  # one insertion / one ref token
    assert token_error_rate([["[de]", "A"]], [["[de]", "A"]]) == 0.0


@pytest.mark.parametrize("tokens, expected", [
    (["[de]", " ", "A"], "[de]"),
    (["A", "B", "[fr]", "[de]"], "[fr]"),  # the first tag wins, wherever it is
    (["A", " ", "B"], "[UNK]"),
    ([], "[UNK]"),
    (["[", "]"], "[UNK]"),  # bracket characters are not a tag
])
def test_lid_rule_first_tag_else_unk(tokens, expected):
    assert first_lang_token(tokens) == expected


# -- budgets -------------------------------------------------------------------------------

def _corpus(kind="synth", meta=None, per_lang=None):
    per_lang = per_lang or {"aa": (40, "high", 3.0), "bb": (12, "low", 5.0), "cc": (9, "fewshot", 4.0)}
    utts = []
    for lang, (n, cls, dur) in per_lang.items():
        for i in range(n):
            for split in ("train", "dev"):
                utts.append(Utterance(id=f"{lang}-{split}-{i:03d}", path="x.flac", duration=dur + 0.1 * (i % 3),
                                      text="a b", language=lang,
                                      custom={"split": split, "subset": "speech", "lang_class": cls}))
    return Corpus(name="t", kind=kind, root=None, utterances=utts, meta=dict(meta or {}))


def test_budget_scale_rules():
    assert budget_scale(_corpus("synth")) == 0.1
    assert budget_scale(_corpus("real")) == 1.0
    assert budget_scale(_corpus("synth", {"mlsuperb_budget_scale": 0.5})) == 0.5
    with pytest.raises(HarnessError, match="mlsuperb_budget_scale"):
        budget_scale(_corpus("synth", {"mlsuperb_budget_scale": -1}))


def test_budget_respected_fewshot_five_and_deterministic():
    c = _corpus(meta={"mlsuperb_budget_scale": 0.05})  # 10min -> 30 s, 1h -> 180 s per language
    picked, info = select_budget(c, "10min")
    assert info["budget_seconds_scaled"] == pytest.approx(30.0)
    assert info["fewshot_languages"] == ["cc"] and info["normal_languages"] == ["aa", "bb"]
    assert len(picked["cc"]) == 5 and info["train_utts"]["cc"] == 5
    for lang in ("aa", "bb"):
        secs = sum(u.duration for u in picked[lang])
        assert secs <= 30.0 and info["train_seconds"][lang] == pytest.approx(secs, abs=1e-3)
        rest = [u for u in c.select(split="train") if u.language == lang and u not in picked[lang]]
        # greedy prefix: the next utterance in the seeded order would not have fitted
        assert secs + seeded_order(rest)[0].duration > 30.0
    assert all(u.split == "train" for us in picked.values() for u in us)
    again, _ = select_budget(c, "10min")
    assert {k: [u.id for u in v] for k, v in again.items()} == {k: [u.id for u in v] for k, v in picked.items()}
    other, _ = select_budget(c, "10min", seed=1)
    assert [u.id for u in other["aa"]] != [u.id for u in picked["aa"]]


def test_budgets_are_nested_and_stable_when_the_corpus_grows():
    c = _corpus()
    small, _ = select_budget(c, "10min")
    big, info = select_budget(c, "1h")
    assert info["budget_seconds"] == BUDGETS["1h"] == 3600.0 and info["budget_scale"] == 0.1
    for lang in ("aa", "bb"):
        ids = [u.id for u in big[lang]]
        assert ids[: len(small[lang])] == [u.id for u in small[lang]]
    grown = _corpus(per_lang={"aa": (80, "high", 3.0), "bb": (12, "low", 5.0), "cc": (9, "fewshot", 4.0)})
    old_ids = {u.id for u in c.utterances}
    new_order = [u.id for u in seeded_order([u for u in grown.select(split="train") if u.language == "aa"])]
    assert [i for i in new_order if i in old_ids] == [u.id for u in seeded_order(
        [u for u in c.select(split="train") if u.language == "aa"])]


def test_pick_within_keeps_at_least_one_and_errors_name_the_problem():
    c = _corpus()
    assert len(pick_within(c.select(split="train")[:3], seconds=0.5)) == 1
    with pytest.raises(HarnessError, match="zz"):
        select_budget(c, "10min", languages=["aa", "zz"])
    with pytest.raises(HarnessError, match="2h"):
        select_budget(c, "2h")


# -- tasks ---------------------------------------------------------------------------------

def test_tasks_registered_per_budget_with_profiles():
    from harness.evaluate import build_task, resolve_config

    for family in ("mono_asr", "ml_asr", "lid_ctc", "asr_lid"):
        for budget, steps in (("10min", 75_000), ("1h", 150_000)):
            t = build_task(f"{family}_{budget}")
            assert t.name == f"{family}_{budget}" and t.budget == budget
            p = resolve_config(t, "paper").probe
            assert (p.steps, p.lrs, p.max_batch_items, p.grad_accum, p.optimizer, p.weight_decay) == (
                steps, (1e-4,), 8, 4, "adam", 1e-6)
            assert (p.head_dim, p.head_layers, p.dropout) == (256, 2, 0.1)


def test_lid_and_asr_lid_targets_and_scores():
    from harness.evaluate import build_task

    u = Utterance(id="u1", path="x", duration=1.0, text="Hallo, Welt!", language="de", custom={"split": "train"})
    lid, asr_lid, ml = build_task("lid_ctc_10min"), build_task("asr_lid_10min"), build_task("ml_asr_10min")
    assert lid.tokens(u) == ["[de]"]
    assert asr_lid.tokens(u) == ["[de]", " ", *"HALLO WELT"]
    assert ml.tokens(u) == list("HALLO WELT")
    info = {"language_of": {"a": "de", "b": "de", "c": "fr"}, "fewshot_languages": ["fr"]}
    refs = {"a": "[de] AB", "b": "[de] CD", "c": "[fr] EF"}
    preds = {"a": "[de] AB", "b": "CD", "c": "[de] EX"}  # b: no tag -> [UNK]
    s = asr_lid.score(preds, refs, info, "test")
    assert s["lid_acc"] == pytest.approx(100 / 3)
    assert s["cer_normal"] == 0.0 and s["cer_fewshot"] == 50.0
    s = lid.score({"a": "[de]", "b": "", "c": "[fr]"}, {k: v.split()[0] for k, v in refs.items()}, info, "test")
    assert s["acc"] == pytest.approx(200 / 3) and s["macro_acc"] == pytest.approx(75.0)


def test_trivial_answers_of_the_ctc_tasks():
    """lid_ctc / asr_lid: the most frequent test tag (ties: the first by name) and no transcript;
    ml_asr: empty output. Scored, they give the majority share and CER 100."""
    from harness.evaluate import build_task

    info = {"language_of": {"a": "fr", "b": "de", "c": "fr", "d": "de"}, "fewshot_languages": []}
    refs = {"a": "[fr] AB", "b": "[de] CD", "c": "[fr] EF", "d": "[de] GH"}
    asr_lid, lid, ml = build_task("asr_lid_10min"), build_task("lid_ctc_10min"), build_task("ml_asr_10min")
    what, preds = asr_lid.trivial_preds(refs, info)
    assert what == "constant answer: the most frequent test language tag ([de]) and no transcript"
    assert set(preds.values()) == {"[de]"}
    s = asr_lid.score(preds, refs, info, "test")
    assert s["lid_acc"] == 50.0 and s["cer_normal"] == 100.0
    tags = {k: v.split()[0] for k, v in refs.items()}
    tags["e"], info["language_of"]["e"] = "[fr]", "fr"
    what, preds = lid.trivial_preds(tags, info)
    assert what.endswith("([fr])") and lid.score(preds, tags, info, "test")["acc"] == 60.0
    what, preds = ml.trivial_preds(refs, info)
    assert what == "empty output" and set(preds.values()) == {""}


def test_official_budget_lists_are_used_as_listed():
    """An ML-SUPERB release names its own 10min / 1h sets (custom["budgets"]): no duration cut."""
    import dataclasses

    c = _corpus(kind="real")
    utts = []
    for u in c.utterances:
        if u.split == "train" and u.language == "aa":
            i = int(u.id.rsplit("-", 1)[1])
            names = ["10min", "1h"] if i < 3 else (["1h"] if i < 30 else [])
            u = dataclasses.replace(u, custom={**u.custom, "budgets": names})
        utts.append(u)
    c = dataclasses.replace(c, utterances=utts)
    ten, info = select_budget(c, "10min", languages=["aa"])
    hour, _ = select_budget(c, "1h", languages=["aa"])
    assert sorted(u.id for u in ten["aa"]) == [f"aa-train-{i:03d}" for i in range(3)]
    assert len(hour["aa"]) == 30 and info["official_lists"] is True


def test_mono_asr_uses_the_release_language_dataset_pairs():
    """ML-SUPERB's monolingual benchmarks are (language, dataset) pairs: train/dev from the
    pair's dataset, test from every dataset of the language."""
    from harness.evaluate import build_task

    utts = []
    for ds in ("mls", "voxpopuli"):
        for split in ("train", "dev", "test"):
            for i in range(4):
                utts.append(Utterance(id=f"eng-{ds}-{split}-{i}", path="x.flac", duration=2.0, text="a b",
                                      language="eng", custom={"split": split, "subset": "speech",
                                                              "dataset": ds, "lang_class": "normal"}))
    for split in ("train", "dev", "test"):
        utts.append(Utterance(id=f"deu-{split}", path="x.flac", duration=2.0, text="c d", language="deu",
                              custom={"split": split, "subset": "speech", "dataset": "swc", "lang_class": "normal"}))
    c = Corpus(name="t", kind="real", root=None, utterances=utts,
               meta={"mono_pairs": {"eng1": ["eng", "mls"], "eng3": ["eng", "voxpopuli"], "rus": ["rus", "x"]}})
    task = build_task("mono_asr_10min")
    splits = task.prepare(c)
    subs = task.subsets(splits, "paper")
    assert sorted(subs) == ["eng1", "eng3"]
    assert {u.custom["dataset"] for u in subs["eng1"].train} == {"mls"}
    assert {u.custom["dataset"] for u in subs["eng1"].dev} == {"mls"}
    assert {u.custom["dataset"] for u in subs["eng1"].test} == {"mls", "voxpopuli"}
    assert "without data: rus" in splits.info["mono_languages_note"]


def test_ctc_loss_reductions():
    """"mean": torch's default (each item / its target length, then the batch mean, s3prl);
    "batch": summed over items / batch size (ESPnet's CTC, the ML-SUPERB head)."""
    torch.manual_seed(0)
    lp = torch.randn(3, 20, 5).log_softmax(-1)
    lens, targets = torch.tensor([20, 15, 10]), [[1, 2, 3], [4, 4], [2]]
    per_item = torch.stack([torch.nn.functional.ctc_loss(lp[i, : lens[i]].unsqueeze(1), torch.tensor([t]),
                                                         lens[i : i + 1], torch.tensor([len(t)]), reduction="sum")
                            for i, t in enumerate(targets)])
    assert torch.allclose(ctc_loss(lp, lens, targets, reduction="batch"), per_item.sum() / 3)
    assert torch.allclose(ctc_loss(lp, lens, targets), (per_item / torch.tensor([3.0, 2.0, 1.0])).mean())
    with pytest.raises(ValueError, match="reduction"):
        ctc_loss(lp, lens, targets, reduction="sum")


def test_results_record_the_corpus_language_classes():
    """Each language's resource class (synth: high / low / fewshot) goes into the result's budget
    record, so an ablation board can group per-language CER without reading the corpus."""
    from harness.evaluate import build_task

    utts = [Utterance(id=f"{lang}-{split}-{i}", path="x.flac", duration=2.0, text="a b", language=lang,
                      custom={"split": split, "subset": "speech", "dataset": "synth", "lang_class": cls})
            for lang, cls in (("aa", "high"), ("bb", "low"), ("cc", "fewshot"))
            for split in ("train", "dev", "test") for i in range(6)]
    task = build_task("ml_asr_10min")
    splits = task.prepare(Corpus(name="t", kind="synth", root=None, utterances=utts, meta={}))
    assert splits.info["language_classes"] == {"aa": "high", "bb": "low", "cc": "fewshot"}
    assert task.budget_record(splits.info)["language_classes"] == {"aa": "high", "bb": "low", "cc": "fewshot"}
