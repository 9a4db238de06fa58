"""Why SUPERB's FBANK row is at chance on a mean-pool task with CMVN and not without (issue 28,
item 3), shown on s3prl's own code (0.4.18: upstream/baseline, upstream/interfaces.Featurizer,
downstream/model.UtteranceLevel) and on ours, and that `fbank` / `mfcc` give KS and SID their
features without CMVN while every other task keeps CMVN."""

import os

import pytest
import torch

from harness.evaluate import build_task, build_upstream, plan_runs
from harness.featurizer import WeightedSum
from harness.request import EvalRequest
from harness.s3prl_compat import module
from tasks.heads import MeanPoolClassifier

LENGTHS = (16000, 12000, 9000)  # samples: 98, 73 and 54 Kaldi frames (snip edges)


def _wavs(seed=0):
    """Three noise-excited 'utterances' of different lengths with different spectra and loudness."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(LENGTHS):
        x = torch.randn(n, generator=g)
        x = torch.nn.functional.conv1d(x.view(1, 1, -1), torch.ones(1, 1, 2 + 3 * i) / (2 + 3 * i)).view(-1)
        out.append((0.05 + 0.3 * i) * x * torch.linspace(0.2, 1.0, x.numel()))
    return out


def _spread(logits):
    """Largest difference between any utterance's logits and the first one's."""
    return float((logits - logits[0]).abs().max())


def _s3prl_logits(config):
    """s3prl's path for KS/SID: baseline expert -> Featurizer -> pad -> projector -> UtteranceLevel
    (MeanPooling, then a Linear post-net), randomly initialised. Returns (logits, pooled lengths)."""
    expert = module("s3prl.upstream.baseline.expert")
    interfaces = module("s3prl.upstream.interfaces")
    model = module("s3prl.downstream.model")
    up = expert.UpstreamExpert(os.path.join(os.path.dirname(expert.__file__), config))
    featurizer = interfaces.Featurizer(up, upstream_device="cpu")
    wavs = _wavs()
    torch.manual_seed(0)
    projector = torch.nn.Linear(featurizer.output_dim, 256)
    head = model.UtteranceLevel(256, 12, pooling="MeanPooling")
    with torch.no_grad():
        feats = featurizer(wavs, up(wavs))
        lens = torch.IntTensor([len(f) for f in feats])
        logits, _ = head(projector(torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)), lens)
    return logits, lens.tolist()


def test_s3prl_fbank_with_cmvn_gives_every_utterance_the_same_logits():
    logits, lens = _s3prl_logits("fbank.yaml")
    # the Featurizer keeps round(samples / 160) frames: the two shorter items pool 2 zero frames
    # past their 73 and 54 valid ones, which after CMVN equal their mean and change nothing
    assert lens == [98, 75, 56]
    assert _spread(logits) < 1e-5
    assert _spread(_s3prl_logits("fbank_no_cmvn.yaml")[0]) > 1e-2


def _our_logits(up, layer_norm=False):
    wavs = _wavs()
    batch = torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True)
    hs = up(batch, torch.tensor(LENGTHS))
    torch.manual_seed(0)
    featurizer = WeightedSum(up.spec.num_layers, layer_norm=layer_norm)
    head = MeanPoolClassifier(up.spec.hidden_size, 256, 12)
    with torch.no_grad():
        return head(featurizer(hs.layers), hs.lengths)


@pytest.mark.parametrize("name", ["fbank", "mfcc"])
def test_ours_is_constant_with_cmvn_as_s3prl_and_not_on_ks_and_sid(name):
    up = build_upstream(name)
    assert _spread(_our_logits(up)) < 1e-5
    # s3prl's Featurizer never normalises a single layer; neither do we (a per-frame layer norm
    # is non-linear and would break the constant)
    assert _spread(_our_logits(up, layer_norm=True)) < 1e-5
    for task in ("ks", "sid"):
        variant = up.for_task(build_task(task))
        assert variant.spec.name == name and not variant.cmvn and "+cmvn" not in variant.spec.source
        assert _spread(_our_logits(variant)) > 1e-2
    for task in ("pr", "asr", "asv", "sd", "lid"):
        assert up.for_task(build_task(task)) is up


def test_ks_and_sid_features_are_s3prls_fbank_no_cmvn():
    ours = build_upstream("fbank").for_task(build_task("ks"))
    expert = module("s3prl.upstream.baseline.expert")
    ref = expert.UpstreamExpert(os.path.join(os.path.dirname(expert.__file__), "fbank_no_cmvn.yaml"))
    wavs = _wavs()
    hs = ours(torch.nn.utils.rnn.pad_sequence(wavs, batch_first=True), torch.tensor(LENGTHS))
    with torch.no_grad():
        want = ref(wavs)["hidden_states"][0]
    for i, n in enumerate(hs.lengths.tolist()):
        assert n == 1 + (LENGTHS[i] - 400) // 160
        torch.testing.assert_close(hs.layers[0][i, :n], want[i, :n], atol=1e-4, rtol=1e-4)
    # fbank_no_cmvn itself is the same features under its own name, on every task
    raw = build_upstream("fbank_no_cmvn")
    assert raw.for_task(build_task("pr")) is raw and raw.for_task(build_task("ks")) is raw


def test_a_single_layer_passes_the_weighted_sum_untouched_and_several_are_layer_normed():
    torch.manual_seed(0)
    x = 3.0 + 2.0 * torch.randn(2, 7, 5)
    assert torch.equal(WeightedSum(1, layer_norm=True)([x]), x)
    two = WeightedSum(2, layer_norm=True)([x, x])
    torch.testing.assert_close(two, torch.nn.functional.layer_norm(x, (5,)))


def test_eval_plans_ks_and_sid_runs_on_the_variant(tmp_path):
    from tests.conftest import make_tone_corpus

    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=3)
    seen = {}
    for task in ("ks", "sid", "pr"):
        p = plan_runs(EvalRequest("fbank", task, str(corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-3]))
        seen[task] = (p.upstream.spec.name, p.upstream.spec.source, p.weights_hash)
    assert seen["ks"] == seen["sid"]
    assert seen["ks"][:2] == ("fbank", "torchaudio.compliance.kaldi.fbank")
    assert seen["pr"][:2] == ("fbank", "torchaudio.compliance.kaldi.fbank+cmvn")
    assert seen["pr"][2] != seen["ks"][2]  # separate feature caches and run folders
