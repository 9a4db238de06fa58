"""The model family seam (upstreams/base.py): every registered family's encoder is an `Encoder`
that does what the objectives call on it, and the objectives call nothing the contract leaves out."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.registry import FAMILIES, load_all
from upstreams.base import Encoder, Family

ROOT = Path(__file__).resolve().parents[2]
#: what the contract declares: methods, properties and annotated attributes of the Protocol
DECLARED = {k for k in vars(Encoder) if not k.startswith("_") or k == "__call__"} | set(Encoder.__annotations__)


load_all()


def _smallest_config(fam: Family):
    return min((fam.preset(p) for p in fam.presets), key=lambda c: (c.encoder_layers, c.encoder_dim))


# ----------------------------------------------------------------------------- the encoder contract


def test_the_contract_declares_the_calls_of_mshubert_and_masked_prediction():
    assert {"config", "num_layers", "__call__", "front_end", "apply_mask", "transformer_states"} <= DECLARED


@pytest.mark.parametrize("name", FAMILIES.names())
def test_every_family_encoder_keeps_the_contract_and_its_parts_compose_to_forward(name):
    fam = FAMILIES.get(name)
    enc = fam.random_encoder(_smallest_config(fam)).eval()
    assert isinstance(enc, nn.Module) and isinstance(enc, Encoder)
    for member in DECLARED - set(Encoder.__annotations__) - {"num_layers"}:  # same parameter names
        ours = inspect.signature(getattr(enc, "forward" if member == "__call__" else member))
        declared = inspect.signature(getattr(Encoder, member))
        assert list(ours.parameters) == [p for p in declared.parameters if p != "self"], (name, member)
    assert enc.num_layers == enc.config.encoder_layers
    g = torch.Generator().manual_seed(0)
    wavs, lens = 0.1 * torch.randn(2, 6000, generator=g), torch.tensor([6000, 4100])
    with torch.no_grad():
        x, feats, lengths, pad = enc.front_end(wavs, lens)
        mask = torch.zeros(pad.shape, dtype=torch.bool)
        mask[:, 3:9] = True
        out = enc(wavs, lens, mask=mask)
        seen = []
        states = enc.transformer_states(enc.apply_mask(x, mask), pad, None, lambda i, h: (seen.append(i), h)[1])
    assert seen == list(range(1, enc.num_layers + 1)) and len(states) == enc.num_layers + 1
    assert torch.equal(lengths, out.lengths) and torch.equal(pad, out.padding_mask)
    assert torch.equal(feats, out.features)
    for a, b in zip(states, out.hidden_states):
        assert torch.equal(a, b)
    assert not torch.equal(enc.apply_mask(x, mask), x)  # the mask embedding went in


def _encoder_members_used(path: Path) -> set:
    """Attributes taken of the encoder in `path`: X in `encoder.X`, `enc.X`, `self.encoder.X`,
    `model.encoder.X`, and `__call__` where one of those is called."""
    def is_encoder(node) -> bool:
        return (isinstance(node, ast.Name) and node.id in ("encoder", "enc")) or (
            isinstance(node, ast.Attribute) and node.attr == "encoder"
            and isinstance(node.value, ast.Name) and node.value.id in ("self", "model"))

    used = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and is_encoder(node.value):
            used.add(node.attr)
        if isinstance(node, ast.Call) and is_encoder(node.func):
            used.add("__call__")
    return used


def test_pretraining_calls_only_what_the_contract_declares():
    files = sorted((ROOT / "harness" / "pretrain").rglob("*.py"))
    module_api = set(dir(nn.Module))  # to, train, zero_grad, parameters, ... of every encoder
    used = {name: _encoder_members_used(f) - module_api for f in files for name in [f.relative_to(ROOT)]}
    assert used[Path("harness/pretrain/objectives/mshubert.py")] >= {"front_end", "apply_mask", "transformer_states"}
    undeclared = {str(f): sorted(u - DECLARED) for f, u in used.items() if u - DECLARED}
    assert not undeclared, f"encoder members used but not declared in upstreams.base.Encoder: {undeclared}"


def test_the_scan_sees_a_call_past_the_contract(tmp_path):
    f = tmp_path / "objective.py"
    f.write_text("def run(self, x, pad):\n    enc = self.encoder\n    return enc.encoder(x, pad), self.encoder.foo()\n")
    assert _encoder_members_used(f) - DECLARED == {"encoder", "foo"}
