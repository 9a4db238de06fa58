"""`fairseq:FILE.pt`: a pre-trained HuBERT, wav2vec 2.0 (fairseq) or WavLM (unilm) checkpoint, run
by the project family that reads it, read without fairseq and without arbitrary unpickling.

Reading. `torch.load(weights_only=True)` with an explicit allowlist. Besides tensors and plain
containers, such checkpoints pickle their configuration and training bookkeeping:
- `args`: an `argparse.Namespace` (pre-Hydra fairseq, e.g. wav2vec 2.0's 2020 releases);
- `cfg`: an omegaconf `DictConfig` tree (Hydra fairseq from 2021-03 to 2021-05, whose ChoiceEnum
  fields pickle as `fairseq.dataclass.constants.Choices`), a plain dict (fairseq's
  `Trainer.state_dict` since 2021-05: `OmegaConf.to_container(enum_to_str=True)`; unilm WavLM);
- `task_state` / `extra_state`: fairseq `Dictionary` objects (the HuBERT task's `dictionaries`
  state), logging meters and numpy scalars of older versions.
`argparse.Namespace` is allowlisted as itself. Every other allowlisted class (omegaconf's
containers, nodes and metadata, fairseq's dictionary and meters, numpy scalars in meters) is
mapped to an inert record of our own (`_Record`) that stores what the pickle hands it and runs none
of the original code; `_plain` turns the omegaconf records back into dicts and lists. Any other
global is refused with an error naming it.

Families. Each registered family with a fairseq conversion (`Family.sources["fairseq"]`,
upstreams/base_conversion.py) is asked whether it claims the checkpoint's config and weight names;
exactly one must (HuBERT claims fairseq HuBERT and wav2vec 2.0, which share its encoder layout;
WavLM claims a checkpoint with a relative position embedding). That family maps the config and the
weights (upstreams/hubert_fairseq.py documents fairseq's names).
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams.base import Upstream, check_state_dict
from upstreams.base_conversion import families_with, names

# Classes fairseq / unilm checkpoints pickle besides tensors (module path as the pickle names it).
RECORDED_GLOBALS = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.EnumNode",
    "typing.Any",
    "collections.defaultdict",  # omegaconf Metadata.resolver_cache
    "fairseq.dataclass.constants.Choices",  # ChoiceEnum values (extractor_mode, ...) in DictConfig-era cfgs
    "fairseq.data.dictionary.Dictionary",
    "fairseq.logging.meters.AverageMeter",
    "fairseq.logging.meters.TimeMeter",
    "fairseq.logging.meters.StopwatchMeter",
    "fairseq.logging.meters.MetersDict",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "numpy.dtype",
)
# Type objects stored as omegaconf metadata (key_type / element_type); used as markers only.
TYPE_GLOBALS = {"builtins.dict": dict, "builtins.list": list, "builtins.str": str, "builtins.int": int,
                "builtins.float": float, "builtins.bool": bool}


class _Record:
    """An inert stand-in for an allowlisted foreign class: keeps constructor arguments, pickled
    state and items, runs nothing else."""

    qualname = ""

    def __new__(cls, *args: Any) -> "_Record":  # NEWOBJ calls cls.__new__(cls, *args)
        inst = super().__new__(cls)
        inst.args, inst.items = args, {}
        return inst

    def __init__(self, *args: Any) -> None:  # REDUCE calls cls(*args); __new__ kept them
        pass

    def __repr__(self) -> str:  # shows up in errors about unconvertible config values
        return f"<pickled {self.qualname}{self.args!r}>"

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def __setstate__(self, state: Any) -> None:
        self.state = state


_RECORDS = {name: type(name.rsplit(".", 1)[1], (_Record,), {"qualname": name}) for name in RECORDED_GLOBALS}


def _state(rec: _Record) -> Dict[str, Any]:
    st = getattr(rec, "state", None)
    if isinstance(st, tuple) and len(st) == 2:  # (dict state, slot state)
        st = {**(st[0] or {}), **(st[1] or {})}
    return st if isinstance(st, dict) else {}


def _plain(obj: Any) -> Any:
    """omegaconf records -> dicts / lists / values (recursively); Namespace -> dict."""
    if isinstance(obj, argparse.Namespace):
        return {k: _plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, _Record):
        st = _state(obj)
        if "_content" in st:  # DictConfig / ListConfig
            return _plain(st["_content"])
        if "_val" in st:  # a value node
            return _plain(st["_val"])
        if not st and len(obj.args) == 1:  # an enum member: Choices("layer_norm")
            return _plain(obj.args[0])
        return obj
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def read_checkpoint(path: Path) -> Dict[str, Any]:
    """`torch.load(weights_only=True)` of a fairseq / unilm checkpoint with our allowlist.

    Raises:
        HarnessError: missing file, or a pickled global outside the allowlist (named).
    """
    if not path.is_file():
        raise HarnessError(f"fairseq checkpoint {str(path)!r} not found")
    allow = [argparse.Namespace, *((rec, name) for name, rec in _RECORDS.items()),
             *((t, name) for name, t in TYPE_GLOBALS.items())]
    try:
        with torch.serialization.safe_globals(allow):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises UnpicklingError, corrupt files several others
        m = re.search(r"GLOBAL (\S+)", str(e))
        if m:
            raise HarnessError(f"{path}: refused to unpickle {m.group(1)} (not in the fairseq source's allowlist "
                               f"of config classes; a checkpoint must hold only weights and its config)") from None
        raise HarnessError(f"{path}: cannot read checkpoint: {str(e).splitlines()[0] if str(e) else e!r}") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise HarnessError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    return state


def model_config(state: Dict[str, Any]) -> Tuple[Dict[str, Any], bool]:
    """(model config fields, task.normalize) from `cfg` (Hydra: cfg.model / cfg.task; unilm: flat)
    or `args` (pre-Hydra: flat Namespace)."""
    cfg = _plain(state.get("cfg"))
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        model, task = cfg["model"], cfg.get("task") or {}
        return model, bool(task.get("normalize", model.get("normalize", False)))
    if isinstance(cfg, dict) and cfg:  # unilm WavLM: the WavLMConfig fields themselves
        return cfg, bool(cfg.get("normalize", False))
    args = _plain(state.get("args"))
    if isinstance(args, dict) and args:
        return args, bool(args.get("normalize", False))
    raise HarnessError("checkpoint has neither 'cfg' nor 'args': cannot tell its architecture")


def parse_conv_layers(spec: str) -> list:
    """fairseq's `conv_feature_layers` string, e.g. "[(512,10,5)] + [(512,3,2)] * 4", evaluated
    with literals, `+` and `*` only (never eval)."""
    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, (ast.List, ast.Tuple)):
            vals = [ev(e) for e in node.elts]
            return vals if isinstance(node, ast.List) else tuple(vals)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise ValueError(ast.dump(node))
    try:
        layers = ev(ast.parse(spec, mode="eval"))
        return [(int(c), int(k), int(s)) for c, k, s in layers]
    except (SyntaxError, ValueError, TypeError) as e:
        raise HarnessError(f"conv_feature_layers {spec!r} is not a list of (dim, kernel, stride): {e}") from None


def claiming_family(cfg: Dict[str, Any], keys) -> Tuple[Any, Any]:
    """(family, its FairseqConversion) of the one registered family that claims a checkpoint with
    model config `cfg` and weight names `keys`.

    Raises:
        HarnessError: no family claims it, or several do.
    """
    keys = list(keys)
    readers = families_with("fairseq")
    found = [(f, c) for f, c in readers if c.claims(cfg, keys)]
    if len(found) != 1:
        which = names([f.name for f, _ in found]) if found else "none"
        raise HarnessError(f"the checkpoint is claimed by {which} of the families reading fairseq checkpoints "
                           f"({names([f.name for f, _ in readers])}); exactly one must claim it")
    return found[0]


@register_source("fairseq", form="fairseq:FILE.pt")
def load_fairseq(rest: str) -> Upstream:
    """`fairseq:FILE.pt` -> the upstream of the family that claims it, named `fairseq:<file stem>`."""
    path = Path(rest)
    state = read_checkpoint(path)
    try:
        cfg, normalize = model_config(state)
        fam, conv = claiming_family(cfg, state["model"])
        config = conv.config(cfg, normalize)
        sd = conv.state_dict(state["model"])
    except HarnessError as e:
        raise HarnessError(f"{path}: {e}") from None
    encoder = fam.encoder_cls(config)
    sd = conv.complete(sd, encoder)
    check_state_dict(encoder, sd, path)
    encoder.load_state_dict(sd)
    arch = cfg.get("_name") or cfg.get("arch") or fam.name
    return fam.upstream_cls(encoder, f"fairseq:{path.stem}", source=f"fairseq {arch} checkpoint {path}")
