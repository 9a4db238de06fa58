"""`harness eval --upstream hf:DIR` and `harness export --format hf` through the CLI, on models
made inside the test: the run lands on the leaderboard under `hf:<folder name>@<weights tag>`, and an exported
project model gives its own features back through `hf:`."""

import json

import torch
import transformers
from typer.testing import CliRunner

from harness.cli import app
from harness.evaluate import build_upstream
from tests.unit.test_source_hf import SIZES


def test_eval_hf_folder_end_to_end(tiny_corpus, tmp_path):
    # the transformers-run path (one item at a time), at 20 ms frames so that attention stays cheap
    config = transformers.Wav2Vec2Config(conv_dim=[16] * 4, conv_kernel=[10, 4, 4, 4], conv_stride=[5, 4, 4, 4],
                                         num_feat_extract_layers=4, num_conv_pos_embeddings=16, **SIZES)
    folder = tmp_path / "w2v_tiny"
    torch.manual_seed(0)
    transformers.Wav2Vec2Model(config).save_pretrained(folder)
    runs, boards = tmp_path / "runs", tmp_path / "boards"
    r = CliRunner().invoke(app, ["eval", "--upstream", f"hf:{folder}", "--task", "sid", "--corpus", str(tiny_corpus),
                                 "--lr", "3e-3", "--steps", "30", "--runs", str(runs), "--cache", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    (result,) = [json.loads(p.read_text()) for p in runs.rglob("result.json")]
    assert result["upstream"].startswith("hf:w2v_tiny@") and result["num_layers"] == 3
    acc = result["metrics"]["test"][result["primary_metric"]]
    assert 0 <= acc <= 100
    r = CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--out", str(boards)])
    assert r.exit_code == 0, r.output
    assert "hf:w2v_tiny" in (boards / "synth.md").read_text()


def test_export_command_round_trip(tmp_path):
    out = tmp_path / "exported"
    r = CliRunner().invoke(app, ["export", "random:wavlm_tiny", "--format", "hf", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    ours, back = build_upstream("random:wavlm_tiny"), build_upstream(f"hf:{out}")
    assert back.spec.name.startswith("hf:exported@") and back.spec.family == "wavlm"
    wav = 0.3 * torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor([4000, 2500])
    with torch.no_grad():
        a, b = ours(wav, lens), back(wav, lens)
    assert torch.equal(a.lengths, b.lengths)
    for x, y in zip(a.layers, b.layers):
        assert (x - y).abs().max() < 1e-4
    r = CliRunner().invoke(app, ["export", "random:wavlm_tiny", "--format", "nope", "--out", str(out)],
                           terminal_width=200)  # an enum of harness.export.FORMATS: click refuses it
    assert r.exit_code == 2 and "'nope' is not one of 'hf'" in r.output
    r = CliRunner().invoke(app, ["export", "fbank", "--format", "hf", "--out", str(out)])
    assert r.exit_code == 1 and "hubert and wavlm" in r.output


def test_export_then_eval_of_hf_folder_caches_the_same_features(tiny_corpus, tmp_path):
    """export -> hf:DIR -> eval: the features `harness eval` caches for the folder are the
    original upstream's (float16 cache, so to float16 precision), item by item, every layer."""
    import numpy as np

    from harness.features import CachedPool

    out, runs, cache = tmp_path / "exp", tmp_path / "runs", tmp_path / "cache"
    assert CliRunner().invoke(app, ["export", "random:hubert_tiny", "--format", "hf", "--out", str(out)]).exit_code == 0
    for up in ("random:hubert_tiny", f"hf:{out}"):
        r = CliRunner().invoke(app, ["eval", "--upstream", up, "--task", "lid", "--corpus", str(tiny_corpus),
                                     "--lr", "3e-3", "--steps", "2", "--runs", str(runs), "--cache", str(cache)])
        assert r.exit_code == 0, r.output
    assert sorted(json.loads(p.read_text())["upstream"].split("@")[0] for p in runs.rglob("result.json")) == \
        ["hf:exp", "random:hubert_tiny"]
    pools = {}  # upstream name -> {utterance id: its cached pool}
    for index in (cache / "features").rglob("index.json"):
        idx = json.loads(index.read_text())
        pool = CachedPool(index.parent)
        pools.setdefault(idx["upstream"].split("@")[0], {}).update({item[0]: pool for item in idx["items"]})
    assert set(pools) == {"hf:exp", "random:hubert_tiny"}
    ours, theirs = pools["random:hubert_tiny"], pools["hf:exp"]
    assert ours.keys() == theirs.keys() and len(ours) > 10
    for uid in ours:
        a, b = ours[uid].get(uid).astype(np.float32), theirs[uid].get(uid).astype(np.float32)
        assert a.shape == b.shape and a.shape[1] == 5  # (T, L+1, D)
        assert np.abs(a - b).max() <= 2e-3 * max(1.0, np.abs(a).max())  # float16 rounding of equal values
