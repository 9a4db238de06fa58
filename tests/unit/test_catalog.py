"""`harness list upstreams` (registered names and exports under runs/, with family, layers, width,
frame rate, parameters, source) and the error for an upstream matching no accepted form."""

import pytest
import torch
from typer.testing import CliRunner

from harness.cli import app
from harness.errors import HarnessError
from harness.evaluate import build_upstream
from upstreams.base import export_encoder, get_family


def _export(folder, name):
    fam = get_family("hubert")
    enc = fam.random_encoder(fam.preset("tiny"))
    export_encoder(enc, "hubert", folder, name)
    return sum(p.numel() for p in enc.parameters())


def test_list_shows_registered_and_exported_upstreams(tmp_path):
    runs = tmp_path / "runs"
    n_params = _export(runs / "pretrain" / "tiny" / "iter1" / "upstream", "hubert_tiny-it1")
    bad = runs / "pretrain" / "broken" / "iter1" / "upstream"
    bad.mkdir(parents=True)
    (bad / "upstream.json").write_text("{not json")
    r = CliRunner().invoke(app, ["list", "upstreams", "--runs", str(runs)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["upstream", "family", "layers", "width", "frame", "rate", "params", "source"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["random:hubert_tiny"][1:8] == ["hubert", "5", "128", "50", "Hz", "(20", "ms)"]
    assert rows["random:hubert_tiny"][8] == f"{n_params / 1e6:.3g}M"  # the preset's exact count
    assert rows["random:wavlm_large"][1:4] == ["wavlm", "25", "1024"] and rows["random:wavlm_large"][8] == "315M"
    assert rows["mfcc"][1:4] == ["mfcc", "1", "39"] and rows["mfcc"][8] == "0"
    exp = rows[str(runs / "pretrain" / "tiny" / "iter1" / "upstream")]
    assert exp[1:4] == ["hubert", "5", "128"] and exp[8] == f"{n_params / 1e6:.3g}M"
    assert "export 'hubert_tiny-it1'" in r.output
    assert any(line.startswith("skipped") and "broken" in line for line in lines)
    assert "s3prl:NAME:FILE" in r.output and "fusion:A+B" in r.output


def test_unknown_upstream_lists_forms_and_suggests_only_existing_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _export(tmp_path / "runs" / "pretrain" / "tiny" / "iter1" / "upstream", "t")
    with pytest.raises(HarnessError) as e:
        build_upstream("/no/such/model")
    msg = str(e.value)
    assert "unknown upstream '/no/such/model' (no such folder)" in msg and "Did you mean" not in msg
    assert "s3prl:NAME:FILE" in msg and "fusion:A+B" in msg and "upstream.json" in msg
    with pytest.raises(HarnessError, match=r"Did you mean: random:hubert_tiny\b"):
        build_upstream("random:hubert_tinny")
    with pytest.raises(HarnessError, match=r"unknown upstream source 's3prll:'\. Did you mean: s3prl:\?"):
        build_upstream("s3prll:hubert:x.pt")
    with pytest.raises(HarnessError, match=r"Did you mean: runs/pretrain/tiny/iter1/upstream\?"):
        build_upstream("runs/pretrain/tiny/iter2/upstream")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match="empty: folder has no upstream.json"):
        build_upstream("empty")
    torch.save({}, tmp_path / "model.pt")
    with pytest.raises(HarnessError, match="model.pt: a checkpoint file needs its source's prefix.*s3prl:NAME"):
        build_upstream("model.pt")


@pytest.mark.parametrize("args", [["--upstream", "nope:x", "--task", "ks"], ["--upstream", "fbank", "--task", "kss"]])
def test_eval_rejects_bad_names_before_touching_the_corpus(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(app, ["eval", *args, "--corpus", "synth", "--runs", str(tmp_path / "runs")])
    assert r.exit_code != 0
    assert "unknown" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()  # no corpus generated, no run
