"""Frame rate as an upstream property (CV-HuBERT, docs/pretrain.md section 5): the 40 / 80 ms HuBERT presets,
label decimation to 12.5 Hz, the rate-dependent parts of SS and the CTC tasks, the fusion of
resolutions, and the cvhubert recipes (one 80 ms pre-training run on the toy corpus)."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.config import ProbeConfig
from harness.errors import ConfigError, HarnessError
from harness.registry import UPSTREAMS, load_all
from upstreams.base import HiddenStates, Upstream, UpstreamSpec
from upstreams.hubert import HubertConfig

load_all()


@pytest.mark.parametrize("preset,ms", [("tiny", 20), ("tiny_40ms", 40), ("tiny_80ms", 80)])
def test_frame_counts_follow_the_stride(preset, ms):
    up = UPSTREAMS.get(f"random:hubert_{preset}")()
    stride = 16 * ms
    assert up.spec.stride == stride and up.spec.frame_rate_hz == 1000 / ms
    rf = up.config.receptive_field
    n = torch.tensor([rf, 8000, 16000, 16000 + stride - 1, 16000 + stride, 40000])
    expected = (n - rf) // stride + 1  # whole frames that fit: len(audio) / stride up to the receptive field
    assert up.num_frames(n).tolist() == expected.tolist()
    assert (n.float() / stride - expected).abs().max() < rf / stride
    with torch.no_grad():
        hs = up(0.1 * torch.randn(2, 40000), torch.tensor([40000, 16000]))
    assert hs.lengths.tolist() == up.num_frames(torch.tensor([40000, 16000])).tolist()
    assert hs.layers[0].shape[1] == int(expected[-1])


def test_coarser_presets_change_only_the_last_cnn_layer():
    t, t40, t80 = HubertConfig.tiny(), HubertConfig.tiny().at_frame_ms(40), HubertConfig.tiny().at_frame_ms(80)
    assert (t40.conv_strides[-1], t40.conv_kernels[-1], t80.conv_strides[-1], t80.conv_kernels[-1]) == (4, 4, 8, 8)
    assert replace(t80, conv_kernels=t.conv_kernels, conv_strides=t.conv_strides) == t
    assert HubertConfig.base().at_frame_ms(40) == HubertConfig.base().at_frame_ms(20).at_frame_ms(40)
    with pytest.raises(ConfigError, match="30 ms"):
        t.at_frame_ms(30)


def test_mfcc_labels_come_down_to_12_5_hz():
    from harness.pretrain.labels import check_length, to_model_rate

    cfg = HubertConfig.tiny().at_frame_ms(80)
    lab = np.arange(300)  # 3 s of 100 Hz labels
    out = to_model_rate(lab, 100.0, cfg)
    assert out.tolist() == list(range(0, 300, 8))
    assert check_length("u", len(out), 48000, cfg) == 37  # within 0.1 s of the audio's frames
    with pytest.raises(HarnessError, match="utterance u"):
        check_length("u", 30, 48000, cfg)
    with pytest.raises(HarnessError, match="whole multiple"):
        to_model_rate(lab, 30.0, cfg)


# ----------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("rate,repeat", [(100.0, 1), (50.0, 1), (25.0, 2), (12.5, 4)])
def test_ctc_heads_see_at_least_50_hz(rate, repeat):
    from tasks.heads import RepeatFrames
    from tasks.pr import PhonemeRecognition

    task = PhonemeRecognition()
    head = task.build_head(8, rate, {"vocab": ["<blank>", "a", "b"]}, ProbeConfig(head_dim=8))
    assert isinstance(head, RepeatFrames) == (repeat > 1)
    x = torch.randn(2, 5, 8)
    log_probs, lens = head(x, torch.tensor([5, 3]))
    assert log_probs.shape[1] == 5 * repeat and lens.tolist() == [5 * repeat, 3 * repeat]
    if repeat > 1:  # repeated frames: identical outputs within each group of `repeat`
        torch.testing.assert_close(log_probs[:, ::repeat], log_probs[:, repeat - 1::repeat])


def test_ctc_targets_longer_than_the_frames_are_recorded_or_an_error():
    from tasks.base import Batch
    from tasks.pr import PhonemeRecognition

    task = PhonemeRecognition()
    head = task.build_head(8, 12.5, {"vocab": ["<blank>", "a", "b"]}, ProbeConfig(head_dim=8))
    out = head(torch.randn(2, 2, 8), torch.tensor([2, 1]))  # 8 and 4 head frames
    ok = Batch(["u1", "u2"], torch.tensor([2, 1]), ["a b a b a b a b", "a a b"])  # a a b: 4 frames with the blank
    info = {"phones_source": "espeak", "lexicon_file": ""}
    assert torch.isfinite(task.loss(out, ok)) and task.extra_results({}, {}, info) == {"phones_source": "espeak"}
    one_bad = Batch(["u1", "u2"], torch.tensor([2, 1]), ["a b", "a a b b"])  # u2 needs 6 frames, has 4
    loss = task.loss(out, one_bad)
    assert torch.isfinite(loss) and float(loss) > 0
    assert task.extra_results({}, {}, info) == {"phones_source": "espeak", "ctc_unalignable_train": {
        "u2": "needs 6 CTC frames (4 tokens + repeats), the head outputs 4 (features at 50 Hz)"}}
    all_bad = Batch(["u1", "u2"], torch.tensor([2, 1]), ["a b a b a b a b a", "a a b b"])
    with pytest.raises(HarnessError, match=r"no target of a training batch fits CTC: utterance u1 needs 9"):
        task.loss(out, all_bad)


@pytest.mark.parametrize("rate,hop,sub", [(100.0, 160, 1), (50.0, 320, 1), (25.0, 320, 2), (12.5, 320, 4)])
def test_ss_stft_hop_and_mask_subframes(rate, hop, sub):
    from tasks.ss import SourceSeparation

    task = SourceSeparation()
    head = task.build_head(8, rate, {}, ProbeConfig(head_dim=8, head_layers=1))
    assert (task._hop, task._subframes) == (hop, sub)
    x = torch.randn(2, 7, 8)
    masks, lens = head(x, torch.tensor([7, 4]))
    assert masks.shape == (2, 2, 7 * sub, 257) and lens.tolist() == [7 * sub, 4 * sub]
    # the STFT has one frame per hop: the masks cover the audio at any upstream rate
    assert task.stft(torch.randn(16000)).shape[0] == 1 + -(-16000 // hop)


# ----------------------------------------------------------------------------- fusion


class FrameIndex(Upstream):
    """A test upstream whose one feature is its frame index (+ 1000 x item), at `stride` samples."""

    def __init__(self, stride: int, layers: int = 2):
        super().__init__()
        self.stride = stride
        self.spec = UpstreamSpec(f"index{stride}", "test", 16000, layers, 1, 16000 / stride)

    def num_frames(self, n):
        return torch.as_tensor(n) // self.stride

    def forward(self, wavs, wav_lens):
        lens = self.num_frames(wav_lens)
        T = int(lens.max())
        t = torch.arange(T, dtype=torch.float32)[None, :] + 1000 * torch.arange(len(lens))[:, None]
        h = torch.where(torch.arange(T)[None, :] < lens[:, None], t, torch.full_like(t, -1.0))[..., None]
        return HiddenStates([h] * self.spec.num_layers, lens)


def test_fusion_repeats_coarse_frames_to_the_finest_count():
    from upstreams.fusion import FusionUpstream

    fus = FusionUpstream([FrameIndex(1280), FrameIndex(320), FrameIndex(640)])
    assert fus.spec.frame_rate_hz == 50.0 and fus.spec.hidden_size == 3 and fus.factors == [4, 1, 2]
    lens = torch.tensor([16000, 5000])  # 50 / 15 frames at 20 ms; 12 / 3 at 80 ms; 25 / 7 at 40 ms
    hs = fus(torch.zeros(2, 16000), lens)
    assert hs.lengths.tolist() == [50, 15] and len(hs.layers) == 2
    h = hs.layers[1]
    t = torch.arange(50)
    torch.testing.assert_close(h[0, :, 1], t.float())
    torch.testing.assert_close(h[0, :, 0], torch.clamp(t // 4, max=11).float())  # cut / extended to 50
    torch.testing.assert_close(h[0, :, 2], torch.clamp(t // 2, max=24).float())
    # item 1 only reads its own valid frames (never the -1 padding), then zeros past its 15 frames
    torch.testing.assert_close(h[1, :15, 0], 1000 + torch.clamp(t[:15] // 4, max=2).float())
    torch.testing.assert_close(h[1, :15, 2], 1000 + torch.clamp(t[:15] // 2, max=6).float())
    assert (h[1, 15:] == 0).all()
    with pytest.raises(HarnessError, match="whole multiple"):
        FusionUpstream([FrameIndex(320), FrameIndex(480)])
    with pytest.raises(HarnessError, match="number of layers"):
        FusionUpstream([FrameIndex(320), FrameIndex(640, layers=3)])


def test_fusion_of_the_three_resolutions_keeps_the_padding_contract():
    from harness.evaluate import build_upstream

    name = "fusion:random:hubert_tiny+random:hubert_tiny_40ms+random:hubert_tiny_80ms"
    fus = build_upstream(name)
    assert fus.spec.name == name and fus.spec.num_layers == 5 and fus.spec.hidden_size == 3 * 128
    twenty = UPSTREAMS.get("random:hubert_tiny")()
    torch.manual_seed(1)
    a, b = 0.1 * torch.randn(16000), 0.1 * torch.randn(9000)
    batch = torch.zeros(2, 16000)
    batch[0], batch[1, :9000] = a, b
    with torch.no_grad():
        hs = fus(batch, torch.tensor([16000, 9000]))
        alone = fus(b[None], torch.tensor([9000]))
        ref = twenty(b[None], torch.tensor([9000]))
    n = int(alone.lengths[0])
    assert hs.lengths.tolist() == [49, n] and n == int(ref.lengths[0]) == 27
    for hb, ha, hr in zip(hs.layers, alone.layers, ref.layers):
        torch.testing.assert_close(hb[1, :n], ha[0, :n], atol=1e-4, rtol=0)
        torch.testing.assert_close(ha[0, :, :128], hr[0])  # the 20 ms member passes through
        assert (hb[1, n:] == 0).all() and torch.isfinite(hb).all()
    with pytest.raises(HarnessError, match="two or more"):
        build_upstream("fusion:random:hubert_tiny")


# ----------------------------------------------------------------------------- recipes


def test_cvhubert_recipes_differ_only_in_the_frame_rate():
    from harness.pretrain.recipe_load import load_recipe

    r20, r40, r80 = (load_recipe(f"cvhubert_tiny_{ms}ms") for ms in (20, 40, 80))
    tiny = load_recipe("hubert_tiny")
    assert [it.model for it in r20.iterations] == [it.model for it in tiny.iterations]
    for r, ms, span in ((r20, 20, 10), (r40, 40, 5), (r80, 80, 3)):
        cnn = HubertConfig.tiny().at_frame_ms(ms)
        for it, ref in zip(r.iterations, tiny.iterations):
            assert (it.model.conv_kernels, it.model.conv_strides) == (cnn.conv_kernels, cnn.conv_strides)
            same_cnn = replace(it.model, conv_kernels=ref.model.conv_kernels, conv_strides=ref.model.conv_strides)
            assert same_cnn == ref.model
            assert 16000 / it.model.stride == 1000 / ms
            assert it.train == replace(ref.train, mask_length=span)  # equal updates, batch, lr
            assert (it.cluster, it.features, it.data) == (ref.cluster, ref.features, ref.data)
    base = load_recipe("cvhubert_base")
    assert base.iterations[-1].model == HubertConfig.base() and base.iterations[-1].cluster.k == 500


def test_pretrain_at_80_ms_on_the_toy_corpus(tmp_path):
    from harness.pretrain import dump
    from harness.pretrain.labels import LabelStore
    from harness.pretrain.run import pretrain
    from harness.pretrain.toy import make_toy_corpus
    from upstreams.base import load_exported

    toy = make_toy_corpus(tmp_path / "toy", n_train=8, n_dev=2, min_s=1.5, max_s=2.5, seed=0)
    micro = replace(HubertConfig.tiny(), conv_channels=(32,) * 7, encoder_dim=64, encoder_layers=2,
                    encoder_heads=4, encoder_ffn_dim=128, final_dim=32, dropout=0.0, attention_dropout=0.0,
                    dropout_input=0.0, layerdrop=0.0, feature_grad_mult=1.0).at_frame_ms(80)
    m = {k: (list(v) if isinstance(v, tuple) else v) for k, v in micro.to_dict().items()}
    recipe = tmp_path / "micro80.yaml"
    recipe.write_text(json.dumps({
        "name": "micro80", "data": {"min_seconds": 1.0}, "model": {"preset": "tiny_80ms", **m},
        "cluster": {"k": 8, "sample_fraction": 1.0, "niter": 10},
        "train": {"steps": 4, "lr": 2e-3, "batch_samples": 64000, "mask_length": 3, "checkpoint_every": 4,
                  "log_every": 2},
        "iterations": [{"features": {"source": "mfcc"}}, {"features": {"source": "layer", "layer": 1}}]}))
    up = load_exported(pretrain(recipe, str(toy.root), tmp_path / "run", log=lambda *_: None))
    assert up.spec.frame_rate_hz == 12.5 and up.spec.stride == 1280
    run = tmp_path / "run"
    for k in (1, 2):
        labels = LabelStore(run / f"iter{k}" / "labels" / "main" / "train")
        meta = json.loads(next((run / f"iter{k}" / "labels" / "main" / "train").glob("*.json")).read_text())
        assert meta["rate"] == 12.5
        for u in toy.utterances:
            if u.id in labels:
                n = int(micro.num_frames(int(round(u.duration * 16000))))
                assert abs(len(labels.get(u.id)) - n) <= 1
        s = json.loads((run / f"iter{k}" / "summary.json").read_text())
        assert 0 <= s["masked_acc"]["dev"] <= 1
    assert dump.FeatureReader(run / "iter2" / "features" / "train").rate == 12.5


def test_cli_lists_upstreams_with_their_frame_rates():
    from typer.testing import CliRunner

    from harness.cli import app

    r = CliRunner().invoke(app, ["list", "upstreams"])
    assert r.exit_code == 0
    rows = {line.split()[0]: line.split(None, 1)[1] for line in r.output.splitlines()[1:] if line.strip()}
    assert " 50 Hz (20 ms) " in rows["random:hubert_tiny"] and " 100 Hz (10 ms) " in rows["fbank"]
    assert " 25 Hz (40 ms) " in rows["random:hubert_tiny_40ms"] and " 12.5 Hz (80 ms) " in rows["random:hubert_base_80ms"]
    assert set(UPSTREAMS.names()) <= set(rows)
    assert "fusion:A+B" in r.output


def test_ctc_floor_is_the_fewest_deletions_brute_force():
    import itertools

    from tasks.metrics import ctc_floor_edits

    def need(s):
        return len(s) + sum(a == b for a, b in zip(s, s[1:]))

    for U in range(0, 8):
        for y in itertools.product("aab", repeat=U) if U <= 6 else [tuple("abaabba")]:
            for T in range(0, U + 4):
                fits = max(len(s) for r in range(U + 1) for s in itertools.combinations(y, r) if need(s) <= T)
                assert ctc_floor_edits(y, T) == U - fits, (y, T)


def test_pr_at_80_ms_records_the_floor_of_its_per_frame_head():
    from tasks.base import Batch
    from tasks.pr import PhonemeRecognition

    task = PhonemeRecognition()
    info = {"vocab": ["<blank>", "a", "b"], "phones_source": "espeak", "lexicon_file": ""}
    head = task.build_head(8, 12.5, info, ProbeConfig(head_dim=8))
    lens = torch.tensor([3, 2])  # upstream frames at 12.5 Hz: 12 and 8 head frames
    refs = {"u1": "a b a b a", "u2": "a a b c"}  # u1 fits 3 frames with 2 deletions; u2: a _ a (b dropped) or a b, c unseen
    task.decode(head(torch.randn(2, 3, 8), lens), Batch(["u1", "u2"], lens, list(refs.values())))
    floor = task.extra_results({}, refs, info)["ctc_floor_test"]
    assert floor == {"per": 100.0 * (2 + 1 + 1) / 9, "utterances": 2, "of": 2, "forced_deletions": 3,
                     "unseen_tokens": 1, "emit_rate_hz": 12.5}
    # at 50 Hz every target fits: no floor but the unseen token's
    head = task.build_head(8, 50.0, info, ProbeConfig(head_dim=8))
    task.decode(head(torch.randn(2, 12, 8), torch.tensor([12, 8])), Batch(["u1", "u2"], torch.tensor([12, 8]), []))
    assert "ctc_floor_test" not in task.extra_results({}, refs, info)
