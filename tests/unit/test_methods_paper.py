"""The Base recipes hold their method papers' values (docs/methods.md), so that an edit cannot
drift from a paper silently.

Each check reads a recipe through the project's loader (harness.pretrain.recipe_load.load_recipe) and
compares one resolved value with the value docs/methods.md marks as the paper's ("paper") or as a
released reference's ("reference": the paper is silent and the value comes from the authors' code
or checkpoints). `mismatches` is also run on edited copies of the recipes, to show that it catches
a changed value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
import yaml

from harness.pretrain.recipe_load import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "harness" / "recipes"

# A check: (what, getter on the loaded Recipe, expected value, source). `it(r, k)` is iteration k
# (1-based), so that the getters read as the tables in docs/methods.md.
Check = Tuple[str, Callable[[Any], Any], Any, str]


def it(r, k):
    return r.iterations[k - 1]


def warmup_updates(train) -> int:
    """Linear warm-up length in updates (TrainConfig: warmup_frac of the steps)."""
    return int(round(train.warmup_frac * train.steps))


def frame_samples(model) -> int:
    """Samples per frame: the product of the CNN strides (320 = 20 ms at 16 kHz)."""
    return math.prod(model.conv_strides)


WAVLM_NET: List[Check] = [
    ("CNN channels", lambda m: m.conv_channels, (512,) * 7, "WavLM IV-A"),
    ("CNN strides", lambda m: m.conv_strides, (5, 2, 2, 2, 2, 2, 2), "WavLM IV-A"),
    ("CNN kernels", lambda m: m.conv_kernels, (10, 3, 3, 3, 3, 2, 2), "WavLM IV-A"),
    ("conv. position embedding kernel", lambda m: m.pos_conv_kernel, 128, "WavLM IV-A"),
    ("conv. position embedding groups", lambda m: m.pos_conv_groups, 16, "WavLM IV-A"),
    ("relative position buckets", lambda m: m.num_buckets, 320, "WavLM IV-A"),
    ("relative position max offset", lambda m: m.max_distance, 800, "WavLM IV-A"),
    ("layers", lambda m: m.encoder_layers, 12, "WavLM V-A"),
    ("hidden size", lambda m: m.encoder_dim, 768, "WavLM V-A"),
]


def _on(k: int, checks: List[Check], attr: str) -> List[Check]:
    """The same checks applied to iteration k's `attr` (model, objective_options, ...)."""
    return [(f"it{k} {w}", (lambda r, g=g: g(getattr(it(r, k), attr))), v, s) for w, g, v, s in checks]


def _mixing(noise_prob: float) -> List[Check]:
    return [
        ("mixed share of utterances", lambda o: o.mix_prob, 0.2, "WavLM V-A"),
        ("mixing-noise probability", lambda o: o.noise_prob, noise_prob, "WavLM V-A"),
        ("utterance energy ratio, dB", lambda o: tuple(o.ratio_db), (-5.0, 5.0), "WavLM IV-B, Alg. 1 line 7"),
        ("noise SNR, dB", lambda o: tuple(o.snr_db), (-5.0, 20.0), "WavLM IV-B, Alg. 1 line 10"),
        ("mix length <= L/2", lambda o: o.max_fraction, 0.5, "WavLM IV-B, Alg. 1 line 12"),
        ("energies over the mixed regions", lambda o: o.energy, "region", "WavLM IV-B, Alg. 1 lines 15-17"),
    ]


PAPER: Dict[str, List[Check]] = {
    "wavlm_base": [
        ("it1 is a HuBERT on MFCC labels", lambda r: (it(r, 1).family, it(r, 1).features.source), ("hubert", "mfcc"),
         "WavLM V-A (first-iteration HuBERT Base)"),
        ("it2 network", lambda r: it(r, 2).family, "wavlm", "WavLM IV-A"),
        ("it2 labels: layer of it1", lambda r: (it(r, 2).features.source, it(r, 2).features.layer), ("layer", 6),
         "WavLM V-A"),
        ("it2 objective", lambda r: it(r, 2).objective, "denoising", "WavLM IV-B"),
        ("it2 updates", lambda r: it(r, 2).train.steps, 400_000, "WavLM V-A, Table VII"),
        ("it2 peak lr", lambda r: it(r, 2).train.lr, 5e-4, "WavLM Table VII"),
        ("it2 warm-up updates", lambda r: warmup_updates(it(r, 2).train), 32_000, "WavLM Table VII"),
        *_on(2, WAVLM_NET, "model"),
        *_on(2, _mixing(0.0), "objective_options"),
    ],
    "wavlm_base_plus": [
        ("it2 is a second-iteration HuBERT", lambda r: (it(r, 2).family, it(r, 2).features.source),
         ("hubert", "layer"), "WavLM V-A (released 2nd-iteration HuBERT Base)"),
        ("it3 network", lambda r: it(r, 3).family, "wavlm", "WavLM IV-A"),
        ("it3 labels: layer of it2", lambda r: (it(r, 3).features.source, it(r, 3).features.layer), ("layer", 9),
         "WavLM V-A"),
        ("it3 objective", lambda r: it(r, 3).objective, "denoising", "WavLM IV-B"),
        ("it3 updates", lambda r: it(r, 3).train.steps, 1_200_000, "WavLM Table VII (V-A text: 1M)"),
        ("it3 peak lr", lambda r: it(r, 3).train.lr, 5e-4, "WavLM Table VII"),
        ("it3 warm-up updates", lambda r: warmup_updates(it(r, 3).train), 96_000, "WavLM Table VII"),
        *_on(3, WAVLM_NET, "model"),
        *_on(3, _mixing(0.1), "objective_options"),
    ],
    "mshubert_base": [
        ("it1 is a HuBERT on MFCC labels", lambda r: (it(r, 1).objective, it(r, 1).features.source),
         ("masked_prediction", "mfcc"), "MS-HuBERT 3 (first-iteration HuBERT)"),
        ("it2 objective", lambda r: it(r, 2).objective, "mshubert", "MS-HuBERT 2.2"),
        ("it2 labels: layer of it1", lambda r: (it(r, 2).features.source, it(r, 2).features.layer), ("layer", 6),
         "MS-HuBERT 3"),
        ("it2 K of the first k-means", lambda r: it(r, 2).cluster.k, 1000, "MS-HuBERT 3"),
        ("it2 label sets", lambda r: it(r, 2).objective_options.levels, (1000, 500, 250, 125, 50, 25), "MS-HuBERT 3"),
        ("it2 each set fitted on the previous centroids", lambda r: [s.parent for s in it(r, 2).label_streams()],
         ["", "km1000", "km500", "km250", "km125", "km50"], "MS-HuBERT 3"),
        ("it2 sets dropped per update", lambda r: it(r, 2).objective_options.drop_sets, 2, "MS-HuBERT 2.2.2, 3"),
        ("it2 Swap", lambda r: it(r, 2).objective_options.swap, True, "MS-HuBERT 2.2.1"),
        ("it2 head layers equidistant, ending on the last",
         lambda r: (lambda ls: (max(ls), len({b - a for a, b in zip(sorted(ls), sorted(ls)[1:])})))(
             it(r, 2).objective_options.layers(it(r, 2).model.encoder_layers)), (12, 1), "MS-HuBERT 2.2.2"),
        ("it2 finest set on the last layer", lambda r: it(r, 2).objective_options.layers(12)[0], 12,
         "MS-HuBERT 2.2.2 footnote (reverse of [17])"),
        ("it2 updates", lambda r: it(r, 2).train.steps, 400_000, "MS-HuBERT 3"),
        ("it2 seconds of audio per GPU", lambda r: it(r, 2).train.batch_samples / 16000, 87.5, "MS-HuBERT 3"),
        ("it2 layers x hidden", lambda r: (it(r, 2).model.encoder_layers, it(r, 2).model.encoder_dim), (12, 768),
         "MS-HuBERT 3"),
    ],
    "mhubert147_base": [
        ("three iterations", lambda r: len(r.iterations), 3, "mHuBERT-147 (summary: 3 iterations)"),
        ("labels from a faiss IVF index", lambda r: {i.cluster.method for i in r.iterations}, {"ivf"},
         "mHuBERT-147 (summary: faiss IVF)"),
        ("index: OPQ, IVF with HNSW32 coarse quantiser, PQ x4fsr",
         lambda r: {i.cluster.ivf_factory for i in r.iterations}, {"OPQ16_64,IVF{K}_HNSW32,PQ16x4fsr"},
         "mHuBERT-147 (summary: OPQM_D,IVFK_HNSW32,PQMx4fsr); M, D from the authors' scripts"),
        ("updates per iteration", lambda r: {i.train.steps for i in r.iterations}, {2_000_000},
         "mHuBERT-147 (summary: 2M updates)"),
        ("HuBERT Base size", lambda r: {(i.model.encoder_layers, i.model.encoder_dim) for i in r.iterations},
         {(12, 768)}, "mHuBERT-147 (summary: 95M parameters)"),
    ],
    "cvhubert_base": [
        ("HuBERT Base network", lambda r: {(i.family, i.model.encoder_layers, i.model.encoder_dim)
                                           for i in r.iterations}, {("hubert", 12, 768)},
         "CV-HuBERT (arXiv 2309.15317 summary: vanilla HuBERT Base)"),
        ("20 ms frames", lambda r: {frame_samples(i.model) for i in r.iterations}, {320},
         "CV-HuBERT (summary: 20 / 40 / 80 ms)"),
        ("objective", lambda r: {i.objective for i in r.iterations}, {"masked_prediction"},
         "CV-HuBERT (summary: vanilla HuBERT)"),
    ],
    "wavlablm_base": [
        ("stage 1 objective: joint prediction and denoising", lambda r: it(r, 3).objective, "denoising",
         "WavLabLM (summary: extends WavLM's joint prediction and denoising)"),
        ("stage 2 continues stage 1", lambda r: (it(r, 4).continue_previous, it(r, 4).objective),
         (True, "denoising"), "WavLabLM (summary: multi-stage pre-training)"),
        ("stage 2 on a language-balanced subset", lambda r: it(r, 4).data.balance, "language",
         "WavLabLM (summary: balanced subset)"),
        ("labels from a HuBERT model's layer", lambda r: (it(r, 2).family, it(r, 3).features.source),
         ("hubert", "layer"), "WavLabLM (summary: features of an existing HuBERT Base)"),
    ],
}

# Values docs/methods.md takes from the authors' released code, configs or checkpoints where the
# paper is silent (repository / file named there).
REFERENCE: Dict[str, List[Check]] = {
    "mhubert147_base": [
        ("K in every iteration", lambda r: {i.cluster.k for i in r.iterations}, {1000},
         "HF utter-project/mHuBERT-147 card: K=1000"),
        ("language / dataset up-sampling", lambda r: {(i.train.upsample_alpha, i.train.upsample_beta)
                                                      for i in r.iterations}, {(0.7, 0.9)},
         "utter-project/fairseq mhubert147_base.yaml"),
        ("warm-up updates", lambda r: {warmup_updates(i.train) for i in r.iterations}, {32_000},
         "utter-project/fairseq mhubert147_base.yaml"),
        ("samples per GPU", lambda r: {i.train.batch_samples for i in r.iterations}, {2_800_000},
         "utter-project/fairseq mhubert147_base.yaml"),
        ("label layers", lambda r: [(i.features.source, i.features.layer) for i in r.iterations][1:],
         [("layer", 6), ("layer", 9)], "HuBERT's layers"),
        ("waveform normalisation", lambda r: {i.model.normalize for i in r.iterations}, {True},
         "utter-project/fairseq mhubert147_base.yaml"),
        ("peak lr, mask probability / span", lambda r: {(i.train.lr, i.train.mask_prob, i.train.mask_length)
                                                        for i in r.iterations}, {(5e-4, 0.8, 10)},
         "utter-project/fairseq mhubert147_base.yaml"),
    ],
    "hubert_base": [
        ("K per iteration", lambda r: [i.cluster.k for i in r.iterations], [100, 500], "HuBERT paper (as hubert_base.yaml records it)"),
        ("labels", lambda r: [(i.features.source, i.features.layer) for i in r.iterations][1], ("layer", 6),
         "HuBERT paper (as hubert_base.yaml records it)"),
        ("updates per iteration", lambda r: [i.train.steps for i in r.iterations], [250_000, 400_000],
         "HuBERT paper (as hubert_base.yaml records it)"),
        ("it2 warm-up updates", lambda r: warmup_updates(it(r, 2).train), 32_000, "hubert_base_librispeech.yaml"),
        ("peak lr, samples per GPU", lambda r: (it(r, 2).train.lr, it(r, 2).train.batch_samples), (5e-4, 1_400_000),
         "hubert_base_librispeech.yaml"),
        ("mask probability / span", lambda r: (it(r, 2).train.mask_prob, it(r, 2).train.mask_length), (0.8, 10),
         "hubert_base_librispeech.yaml"),
        ("dropouts, LayerDrop, feature_grad_mult", lambda r: (it(r, 2).model.dropout, it(r, 2).model.attention_dropout,
                                                              it(r, 2).model.layerdrop, it(r, 2).model.feature_grad_mult),
         (0.1, 0.1, 0.05, 0.1), "hubert_base_librispeech.yaml"),
    ],
    "wavlm_base": [
        ("it2 K", lambda r: it(r, 2).cluster.k, 500, "HuBERT iteration 2 (HuBERT paper)"),
        ("it2 attention heads", lambda r: it(r, 2).model.encoder_heads, 12, "torchaudio models.wavlm_base"),
    ],
    "wavlm_base_plus": [
        ("it3 K", lambda r: it(r, 3).cluster.k, 500, "HuBERT iteration 3 (HuBERT paper)"),
        ("it3 attention heads", lambda r: it(r, 3).model.encoder_heads, 12, "torchaudio models.wavlm_base"),
    ],
    "data2vec_base": [
        ("objective, iterations", lambda r: ([i.objective for i in r.iterations]), ["data2vec"],
         "fairseq data2vec_audio (one run, EMA teacher targets)"),
        ("top-K layers, instance norm per layer, layer norm of the average",
         lambda r: (it(r, 1).objective_options.average_top_k_layers, it(r, 1).objective_options.instance_norm_target_layer,
                    it(r, 1).objective_options.layer_norm_targets), (8, True, False),
         "fairseq base_librispeech.yaml"),
        ("EMA decay start / end / anneal updates",
         lambda r: (it(r, 1).objective_options.ema_decay, it(r, 1).objective_options.ema_end_decay,
                    it(r, 1).objective_options.ema_anneal_end_step), (0.999, 0.9999, 30_000),
         "fairseq base_librispeech.yaml"),
        ("loss beta (0 = L2), loss scale (0 = 1/sqrt(D))",
         lambda r: (it(r, 1).objective_options.loss_beta, it(r, 1).objective_options.loss_scale), (0.0, 0.0),
         "fairseq base_librispeech.yaml"),
        ("mask probability / span / min masks",
         lambda r: (it(r, 1).train.mask_prob, it(r, 1).train.mask_length, it(r, 1).train.min_masks), (0.65, 10, 1),
         "fairseq base_librispeech.yaml, data2vec_audio.py"),
        ("updates, warm-up updates, peak lr, samples per GPU",
         lambda r: (it(r, 1).train.steps, warmup_updates(it(r, 1).train), it(r, 1).train.lr, it(r, 1).train.batch_samples),
         (400_000, 12_000, 5e-4, 3_800_000), "fairseq base_librispeech.yaml"),
        ("CNN norm, waveform normalisation, input dropout, LayerDrop, feature_grad_mult",
         lambda r: (it(r, 1).model.extractor_mode, it(r, 1).model.normalize, it(r, 1).model.dropout_input,
                    it(r, 1).model.layerdrop, it(r, 1).model.feature_grad_mult),
         ("layer_norm", True, 0.0, 0.05, 1.0), "fairseq base_librispeech.yaml"),
    ],
    "mshubert_base": [
        ("it2 head layers", lambda r: list(it(r, 2).objective_options.head_layers), [12, 10, 8, 6, 4, 2],
         "our choice (docs/methods.md)"),
        ("it2 mask probability / span", lambda r: (it(r, 2).train.mask_prob, it(r, 2).train.mask_length), (0.8, 10),
         "fairseq hubert_base_librispeech.yaml"),
    ],
}


def mismatches(name, table: Dict[str, List[Check]], recipe=None) -> List[str]:
    """One line per check of `table[name]` that the recipe (loaded by name, or given) fails."""
    r = recipe if recipe is not None else load_recipe(name)
    out = []
    for what, get, want, source in table[name]:
        got = get(r)
        if got != want:
            out.append(f"{name}: {what} = {got!r}, {source} gives {want!r}")
    return out


@pytest.mark.parametrize("name", sorted(PAPER))
def test_recipe_holds_the_paper_values(name):
    assert mismatches(name, PAPER) == []


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_recipe_holds_the_reference_values(name):
    assert mismatches(name, REFERENCE) == []


def _edited(tmp_path, name, edit) -> Any:
    """The recipe `name` with `edit` applied to its parsed YAML, loaded from a copy."""
    data = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)


@pytest.mark.parametrize("name, edit, field", [
    ("wavlm_base_plus", lambda d: d["iterations"][2]["train"].update(steps=1_000_000), "it3 updates"),
    ("wavlm_base", lambda d: d["iterations"][1]["objective"].update(energy="whole"), "mixed regions"),
    ("wavlm_base", lambda d: d["iterations"][1]["objective"].update(noise_prob=0.1), "mixing-noise"),
    ("mshubert_base", lambda d: d["iterations"][1]["objective"].update(head_layers=[2, 4, 6, 8, 10, 12]),
     "finest set on the last layer"),
    ("mshubert_base", lambda d: d["iterations"][1]["train"].update(steps=250_000), "it2 updates"),
    ("mhubert147_base", lambda d: d["train"].update(steps=400_000), "updates per iteration"),
    ("cvhubert_base", lambda d: d["model"].update(preset="base_40ms"), "20 ms frames"),
    ("wavlablm_base", lambda d: d["iterations"][3]["data"].update(balance=""), "language-balanced"),
])
def test_a_changed_value_is_caught(tmp_path, name, edit, field):
    found = mismatches(name, PAPER, _edited(tmp_path, name, edit))
    assert found and any(field in line for line in found), found  # (a step change also moves the warm-up)


def test_an_unedited_copy_passes(tmp_path):
    """The copy-and-load route itself changes nothing (so the test above fails for the edit)."""
    for name in PAPER:
        assert mismatches(name, PAPER, _edited(tmp_path, name, lambda d: None)) == []
