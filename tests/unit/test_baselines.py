"""The baseline upstreams follow s3prl's baseline/fbank.yaml and mfcc.yaml (per-utterance CMVN),
which is also what keeps mfcc off the CTC blank plateau (issue 12, item 6)."""

import pytest
import torch

from harness.evaluate import build_upstream


def _speechlike(seconds=1.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(16000 * seconds)) / 16000
    f0 = 120 + 40 * torch.sin(2 * torch.pi * 1.5 * t)
    wav = sum(torch.sin(2 * torch.pi * k * torch.cumsum(f0, 0) / 16000) / k for k in range(1, 8))
    return 0.3 * wav * (0.6 + 0.4 * torch.sin(2 * torch.pi * 3 * t)) + 0.01 * torch.randn(t.shape, generator=g)


@pytest.mark.parametrize("name, dim", [("fbank", 240), ("mfcc", 39)])
def test_baselines_apply_per_utterance_cmvn(name, dim):
    up = build_upstream(name)
    wavs = torch.stack([_speechlike(seed=0), _speechlike(seed=1)])
    wavs[1, 16000:] = 0
    hs = up(wavs, torch.tensor([24000, 16000]))
    assert hs.layers[0].shape[-1] == dim and "+cmvn" in up.spec.source
    for i, n in enumerate(hs.lengths.tolist()):
        x = hs.layers[0][i, :n]
        assert torch.allclose(x.mean(0), torch.zeros(dim), atol=1e-4)
        assert torch.allclose(x.std(0), torch.ones(dim), atol=1e-3)


def test_mfcc_without_cmvn_has_the_scale_that_kept_pr_on_the_plateau():
    """The un-normalised MFCCs (Kaldi's liftered cepstra) are an order of magnitude larger than
    unit scale; `fbank_no_cmvn` keeps s3prl's un-normalised variant under its own name."""
    from upstreams.baselines import KaldiFeatureUpstream

    raw = KaldiFeatureUpstream("mfcc_raw", "mfcc", 13, cmvn=False)
    x = raw(_speechlike()[None], torch.tensor([24000])).layers[0][0]
    assert x[:, :13].std(0).max() > 5
    assert build_upstream("fbank_no_cmvn").spec.source == "torchaudio.compliance.kaldi.fbank"
    assert build_upstream("fbank").weights_hash() != build_upstream("fbank_no_cmvn").weights_hash()


def test_mfcc_pr_leaves_the_ctc_blank_plateau(tiny_corpus, tmp_path):
    """The quick PR probe on mfcc learns phones within 100 updates (synth tiny: test PER 61.9 with
    CMVN; 79.2 with the raw MFCCs, and 91.98 on synth small in the full quick profile)."""
    from harness.evaluate import evaluate
    from harness.request import EvalRequest

    r = evaluate(EvalRequest("mfcc", "pr", str(tiny_corpus), tmp_path / "runs", tmp_path / "cache", lrs=[1e-2],
                             overrides={"steps": 100, "eval_every": 100}), log=lambda *_: None)[0]
    assert r["metrics"]["test"]["per"] < 70.0
    assert r["extra"]["trivial_baseline"]["test"]["per"] == pytest.approx(100.0)
