"""Issue 29, row 6: two different models in folders of one name never share a board row.

`hf:a/hf` and `hf:b/hf` (different weights): each upstream's name carries its weights' content
tag (`hf:hf@<8 hex>`), so each gets its own runs and its own row, and nothing is "set aside as
an older config" (on f051749 both were `hf:hf`: one row, the other model set aside). The same
weights under another folder name get the same tag.
"""

from __future__ import annotations

import json
import re

import torch
import transformers
from typer.testing import CliRunner

from harness import leaderboard
from harness.cli import app
from harness.evaluate import build_upstream
from tests.conftest import make_tone_corpus
from tests.unit.test_source_hf import SIZES


def _model(folder, seed):
    config = transformers.Wav2Vec2Config(conv_dim=[16] * 4, conv_kernel=[10, 4, 4, 4], conv_stride=[5, 4, 4, 4],
                                         num_feat_extract_layers=4, num_conv_pos_embeddings=16, **SIZES)
    torch.manual_seed(seed)
    transformers.Wav2Vec2Model(config).save_pretrained(folder)
    return folder


def test_row06_two_models_in_folders_of_one_name_get_their_own_rows(tmp_path):
    a, b = _model(tmp_path / "a" / "hf", 0), _model(tmp_path / "b" / "hf", 1)
    names = [build_upstream(f"hf:{x}").spec.name for x in (a, b)]
    assert all(re.fullmatch(r"hf:hf@[0-9a-f]{8}", n) for n in names) and names[0] != names[1]
    same = _model(tmp_path / "c" / "renamed", 0)  # a's weights under another folder name
    assert build_upstream(f"hf:{same}").spec.name.split("@")[1] == names[0].split("@")[1]

    corpus = make_tone_corpus(tmp_path / "tones", n_per_class=4)
    runs = tmp_path / "runs"
    for x in (a, b):
        r = CliRunner().invoke(app, ["eval", "--upstream", f"hf:{x}", "--task", "lid", "--corpus", str(corpus),
                                     "--steps", "2", "--runs", str(runs), "--cache", str(tmp_path / "cache")])
        assert r.exit_code == 0, r.output
    assert sorted(json.loads(p.read_text())["upstream"] for p in runs.rglob("result.json")) == sorted(names)
    best = leaderboard.select_best(leaderboard.collect(runs))
    assert sorted(best["upstream"]) == sorted(names)
    assert all(not s for s in best["set_aside"])
    r = CliRunner().invoke(app, ["leaderboard", "--runs", str(runs), "--out", str(tmp_path / "boards")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "boards" / "tones.md").read_text()
    assert "set aside" not in page and all(n in page for n in names)
