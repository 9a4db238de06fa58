"""The model family seam (upstreams/base.py, upstreams/base_conversion.py): every registered family's
encoder is an `Encoder` that does what the objectives call on it, the objectives call nothing
the contract leaves out, each family declares its checkpoint conversions, and the checkpoint
source modules name no family: they ask the registered families."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.errors import HarnessError
from harness.registry import FAMILIES, load_all
from upstreams.base import Encoder, Family
from upstreams.base_conversion import FairseqConversion, HfConversion, S3prlConversion, TorchaudioConversion

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "upstreams").glob("source_*.py"))
KINDS = {"hf": HfConversion, "fairseq": FairseqConversion, "torchaudio": TorchaudioConversion,
         "s3prl": S3prlConversion}
#: what the contract declares: methods, properties and annotated attributes of the Protocol
DECLARED = {k for k in vars(Encoder) if not k.startswith("_") or k == "__call__"} | set(Encoder.__annotations__)


load_all()


def _families():
    return [FAMILIES.get(n) for n in FAMILIES.names()]


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
    f.write_text("def run(self, x, pad):\n    enc = self.encoder\n    return enc.blocks(x, pad), self.encoder.foo()\n")
    assert _encoder_members_used(f) - DECLARED == {"blocks", "foo"}


# ----------------------------------------------------------------------------- conversions


def test_every_family_declares_its_conversions_by_source():
    fams = _families()
    assert {f.name for f in fams} >= {"hubert", "wavlm"}
    for fam in fams:
        assert set(fam.sources) <= set(KINDS), fam.name
        for source, conv in fam.sources.items():
            assert isinstance(conv, KINDS[source]), (fam.name, source)
    hf_types = [t for f in fams if "hf" in f.sources for t in f.sources["hf"].model_types]
    prefixes = [p for f in fams if "torchaudio" in f.sources for p in f.sources["torchaudio"].prefixes]
    assert len(hf_types) == len(set(hf_types)) and len(prefixes) == len(set(prefixes))
    assert all(not a.startswith(b) for a in prefixes for b in prefixes if a != b)  # one family per factory


def _family_words() -> set:
    """Lower-case strings that identify a registered family in some source format."""
    words = set()
    for fam in _families():
        words.add(fam.name)
        s = fam.sources
        words.update(s["hf"].model_types if "hf" in s else ())
        words.update(s["torchaudio"].prefixes if "torchaudio" in s else ())
        words.update([s["s3prl"].entry] if "s3prl" in s else ())
    return {w.lower() for w in words}


def _family_mentions(text: str, words: set, family_modules: set) -> list:
    """(line, what) of every mention of `words` in code: string constants other than docstrings,
    identifiers, imports of a family's modules (comments and docstrings are not code)."""
    tree = ast.parse(text)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            names = [node.value]
        elif isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.alias):
            names = [node.asname or node.name.rsplit(".", 1)[-1]]
        if isinstance(node, ast.ImportFrom) and node.module in family_modules:
            found.append((node.lineno, f"imports {node.module}"))
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"imports {a.name}") for a in node.names if a.name in family_modules]
        found += [(node.lineno, n) for n in names if any(w in n.lower() for w in words)]
    return found


def _family_modules() -> set:
    mods = set()
    for fam in _families():
        mods.update({fam.config_cls.__module__, fam.encoder_cls.__module__, fam.upstream_cls.__module__})
        mods.update(type(c).__module__ for c in fam.sources.values())
    return mods


def test_source_modules_name_no_family():
    assert [p.stem for p in SOURCES] == ["source_fairseq", "source_hf", "source_s3prl", "source_torchaudio"]
    words, mods = _family_words(), _family_modules()
    assert {"hubert", "wavlm", "hubert_", "wavlm_", "wav2vec2_", "hubert_local"} <= words
    mentions = {p.name: _family_mentions(p.read_text(), words, mods) for p in SOURCES}
    assert not any(mentions.values()), mentions


def test_the_scan_sees_a_family_branch():
    code = ('"""Docstrings may say hubert."""\nfrom upstreams.wavlm import WavlmConfig\n'
            'def f(model_type):\n    # so may comments: wavlm\n    return model_type == "wavlm"\n')
    found = _family_mentions(code, {"wavlm", "hubert"}, {"upstreams.wavlm"})
    assert found == [(2, "imports upstreams.wavlm"), (2, "WavlmConfig"), (5, "wavlm")]


# ----------------------------------------------------------------------------- the sources ask the registry


class _ClaimsAll(FairseqConversion):
    def claims(self, cfg, keys):
        return True

    def config(self, cfg, normalize):
        raise AssertionError("not reached")

    def state_dict(self, sd):
        return sd


class _NoTorchaudioFactory(TorchaudioConversion):
    prefixes = ("toyfam_",)

    def config(self, preset):
        raise HarnessError(f"no factory {preset}")

    def state_dict(self, sd):
        return sd


def test_a_new_family_is_asked_by_the_sources(monkeypatch):
    from upstreams.source_fairseq import claiming_family
    from upstreams.source_torchaudio import factory_config

    hub = next(f for f in _families() if f.name == "hubert")
    toy = Family(name="toyfam", config_cls=hub.config_cls, presets={}, encoder_cls=hub.encoder_cls,
                 upstream_cls=hub.upstream_cls, sources={"fairseq": _ClaimsAll(), "torchaudio": _NoTorchaudioFactory()})
    monkeypatch.setitem(FAMILIES._items, "toyfam", toy)
    with pytest.raises(HarnessError, match=r"expected a factory named wav2vec2_\*, hubert_\*, toyfam_\* or wavlm_\*$"):
        factory_config("conformer")
    with pytest.raises(HarnessError, match="no factory toyfam_x"):
        factory_config("toyfam_x")
    with pytest.raises(HarnessError, match="claimed by hubert and toyfam .*exactly one"):
        claiming_family({"encoder_layers": 2}, ["encoder.layers.0.fc1.weight"])
