"""Bundled upstreams (upstreams/bundled.py): written from an export in float16, checked against
their sha256, loaded through the export loader, listed and evaluated by name."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from harness.errors import HarnessError
from upstreams import bundled as B
from upstreams.base import WEIGHTS_FILE, export_encoder, load_exported
from upstreams.hubert import HubertConfig, HubertEncoder


@pytest.fixture()
def export(tmp_path):
    torch.manual_seed(0)
    enc = HubertEncoder(HubertConfig.tiny())
    return export_encoder(enc, "hubert", tmp_path / "run" / "iter1" / "upstream", "toy-it1",
                          pretraining={"recipe": "toy", "updates": 3})


def test_write_then_load_through_the_export_path(tmp_path, export):
    folder = B.write_bundle(export, "toy", {"recipe": "toy"}, "# card\n", root=tmp_path / "bundles")
    meta = json.loads((folder / B.BUNDLE_FILE).read_text())
    assert meta["sha256"] == B.sha256_file(folder / WEIGHTS_FILE) and meta["dtype"] == "float16"
    half = load_file(str(folder / WEIGHTS_FILE))
    assert all(t.dtype == torch.float16 for t in half.values() if t.is_floating_point())
    ref, up = load_exported(export), B.load_bundle(folder)
    assert up.spec.name == "bundled:toy"
    for key, t in ref.state_dict().items():  # the float32 weights rounded to float16, widened back
        if t.is_floating_point():
            assert torch.equal(up.state_dict()[key], t.half().float()), key
    wav = torch.randn(1, 16000, generator=torch.Generator().manual_seed(1)) * 0.1
    lens = torch.tensor([16000])
    with torch.no_grad():
        a, b = ref(wav, lens).layers, up(wav, lens).layers
    rel = max(float((x - y).norm() / x.norm()) for x, y in zip(a, b))
    assert 0 < rel < 5e-3


def test_a_changed_weight_file_is_refused(tmp_path, export):
    folder = B.write_bundle(export, "toy", {}, "", root=tmp_path / "bundles")
    raw = bytearray((folder / WEIGHTS_FILE).read_bytes())
    raw[-1] ^= 1
    (folder / WEIGHTS_FILE).write_bytes(bytes(raw))
    with pytest.raises(HarnessError, match="sha256"):
        B.load_bundle(folder)


def test_a_bundle_is_written_once(tmp_path, export):
    B.write_bundle(export, "toy", {}, "", root=tmp_path / "bundles")
    with pytest.raises(HarnessError, match="exists already"):
        B.write_bundle(export, "toy", {}, "", root=tmp_path / "bundles")
    with pytest.raises(HarnessError, match="not an export folder"):
        B.write_bundle(tmp_path, "other", {}, "", root=tmp_path / "bundles")


@pytest.mark.parametrize("folder", B.bundle_folders(), ids=lambda p: p.name)
def test_each_committed_bundle_matches_its_hash_and_is_registered(folder):
    from harness.evaluate import build_upstream

    meta = B.check_bundle(folder)
    for key in ("commit", "command", "recipe", "recipe_hash", "corpus_version", "corpus_fingerprint"):
        assert meta.get(key), key
    up = build_upstream(B.PREFIX + folder.name)
    assert up.spec.name == B.PREFIX + folder.name
    ref = load_exported(folder)  # the same export loader, without the bundle's checks
    assert all(torch.equal(t, up.state_dict()[k]) for k, t in ref.state_dict().items())
    assert (folder / "CARD.md").read_text().startswith(f"# bundled:{folder.name}")


def test_the_demo_evaluates_a_committed_bundle():
    """The demo's bundled upstream is shipped (its folder, hash and card) and listed without torch."""
    from harness import demo
    from harness.upstream_names import REGISTERED_NAMES

    names = {B.PREFIX + p.name for p in B.bundle_folders()}
    assert demo.BUNDLED and set(demo.BUNDLED) <= names
    assert set(demo.BUNDLED) <= set(REGISTERED_NAMES)


def _make_bundle_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "make_bundle.py"
    spec = importlib.util.spec_from_file_location("make_bundle", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_card_takes_the_demo_board_rows_of_one_commit_and_keeps_the_weights(tmp_path):
    import shutil

    mb = _make_bundle_module()
    src = B.bundle_folders()[0]
    shutil.copytree(src, tmp_path / "root" / src.name)
    row = dict(upstream=f"bundled:{src.name}", task="pr", metric="per", mean=65.631, ci95=1.154, n_seeds=3,
               task_version=2, git_sha="abc123", score=414.54, score_ci95=30.56)
    board = tmp_path / "board"
    board.mkdir()
    (board / "board.json").write_text(json.dumps([row, {**row, "upstream": "fbank", "git_sha": "zzz"}]))
    folder = mb.update_demo_rows(src.name, board, "./run demo", tmp_path / "root")
    meta = json.loads((folder / "bundle.json").read_text())
    assert meta["demo_board"]["commit"] == "abc123" and meta["demo_board"]["score"] == "414.54 ± 30.56"
    assert meta["sha256"] == json.loads((src / "bundle.json").read_text())["sha256"]
    B.check_bundle(folder)  # the weights still match their hash
    card = (folder / "CARD.md").read_text()
    assert "| pr | per | 65.63 | ± 1.15 | 3 |" in card and "commit `abc123`" in card
    (board / "board.json").write_text(json.dumps([row, {**row, "task": "sid", "git_sha": "def456"}]))
    with pytest.raises(HarnessError, match="2 commits"):
        mb.update_demo_rows(src.name, board, "./run demo", tmp_path / "root")
