"""`fairseq:FILE.pt`: a pre-trained HuBERT, wav2vec 2.0 (fairseq) or WavLM (unilm) checkpoint, run
by the project's HuBERT / WavLM family, read without fairseq and without arbitrary unpickling.

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

Mapping. fairseq's parameter names are ours except the CNN blocks (`conv_layers.i.0` = conv,
`.2` = GroupNorm of block 0, `.2.1` = LayerNorm inside the transpose sandwich of layer-norm CNNs;
torchaudio's `import_fairseq_model` documents the same layout) and the positional conv
(`pos_conv.0`). Pre-training heads (`final_proj`, `label_embs_concat`, wav2vec 2.0's `quantizer`,
`project_q`, `target_glu`) are dropped. The family is WavLM when the config asks for a relative
position embedding (or the weights hold `relative_attention_bias`), HuBERT otherwise: wav2vec 2.0
shares HuBERT's encoder layout exactly.
"""

from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path
from typing import Any, Dict, Tuple

import torch
from torch import Tensor

from harness.errors import HarnessError
from harness.registry import register_source
from upstreams.base import Upstream, check_state_dict, get_family

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
# Pre-training heads: not part of the encoder.
_DROP = ("final_proj.", "label_embs_concat", "quantizer.", "project_q.", "target_glu.")


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


def _require(cfg: Dict[str, Any], key: str, allowed: tuple) -> None:
    if key in cfg and cfg[key] not in allowed:
        raise HarnessError(f"fairseq config {key}={cfg[key]!r} is not supported (the project's families "
                           f"implement {', '.join(map(repr, allowed))})")


def family_config(cfg: Dict[str, Any], normalize: bool, wavlm: bool):
    """Our family config from fairseq / unilm model fields (absent fields: fairseq's defaults, which
    equal HubertConfig's)."""
    fam = get_family("wavlm" if wavlm else "hubert")
    _require(cfg, "activation_fn", ("gelu",))
    _require(cfg, "layer_type", ("transformer",))
    _require(cfg, "pos_conv_depth", (1,))
    _require(cfg, "extractor_mode", ("default", "layer_norm"))
    _require(cfg, "conv_pos_batch_norm", (False,))
    _require(cfg, "quantize_input", (False,))
    if wavlm:
        _require(cfg, "gru_rel_pos", (True,))
    d = fam.config_cls()
    kw: Dict[str, Any] = {"normalize": normalize}
    if "conv_feature_layers" in cfg:
        layers = parse_conv_layers(str(cfg["conv_feature_layers"]))
        kw.update(conv_channels=[c for c, _, _ in layers], conv_kernels=[k for _, k, _ in layers],
                  conv_strides=[s for _, _, s in layers])
    if "extractor_mode" in cfg:
        kw["extractor_mode"] = "group_norm" if cfg["extractor_mode"] == "default" else "layer_norm"
    names = {"conv_bias": "conv_bias", "encoder_embed_dim": "encoder_dim", "encoder_layers": "encoder_layers",
             "encoder_attention_heads": "encoder_heads", "encoder_ffn_embed_dim": "encoder_ffn_dim",
             "layer_norm_first": "layer_norm_first", "conv_pos": "pos_conv_kernel",
             "conv_pos_groups": "pos_conv_groups", "dropout": "dropout", "attention_dropout": "attention_dropout",
             "activation_dropout": "activation_dropout", "dropout_input": "dropout_input",
             "encoder_layerdrop": "layerdrop", "feature_grad_mult": "feature_grad_mult", "final_dim": "final_dim"}
    if wavlm:
        names.update(num_buckets="num_buckets", max_distance="max_distance")
    if wavlm:  # unilm WavLMConfig's defaults where ours differ (its max_distance is 1280, not 800)
        cfg = {"max_distance": 1280, **cfg}
    for theirs, ours in names.items():
        if cfg.get(theirs) is not None:
            kw[ours] = type(getattr(d, ours))(cfg[theirs])
    if kw.get("final_dim") == 0:  # fairseq: 0 means encoder_embed_dim
        kw["final_dim"] = kw.get("encoder_dim", d.encoder_dim)
    try:
        return fam, fam.config_cls(**kw)
    except (ValueError, TypeError) as e:
        raise HarnessError(f"fairseq config gives no valid {fam.name} config: {e}") from None


_PATTERNS = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.norm.\2"),
    (r"encoder\.pos_conv\.0\.bias", "encoder.pos_conv.conv.bias"),
    (r"encoder\.pos_conv\.0\.(?:weight_g|parametrizations\.weight\.original0)",
     "encoder.pos_conv.conv.parametrizations.weight.original0"),
    (r"encoder\.pos_conv\.0\.(?:weight_v|parametrizations\.weight\.original1)",
     "encoder.pos_conv.conv.parametrizations.weight.original1"),
    (r"(mask_emb|(?:post_extract_proj|layer_norm|encoder\.layer_norm)\.(?:weight|bias))", r"\1"),
    (r"(encoder\.layers\.\d+\.(?:self_attn\.(?:[qkv]|out)_proj|self_attn_layer_norm|fc1|fc2|final_layer_norm)"
     r"\.(?:weight|bias))", r"\1"),
    (r"(encoder\.layers\.\d+\.self_attn\.(?:relative_attention_bias\.weight|grep_linear\.(?:weight|bias)|grep_a))",
     r"\1"),
]


def from_fairseq_state_dict(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Map a fairseq HuBERT / wav2vec 2.0 or unilm WavLM `model` state dict to our names.

    Raises:
        HarnessError: naming the first key with no counterpart (a fine-tuned model's
            `w2v_encoder.*` keys among them).
    """
    out: Dict[str, Tensor] = {}
    for key, value in sd.items():
        if key.startswith(_DROP):
            continue
        for pat, rep in _PATTERNS:
            m = re.fullmatch(pat, key)
            if m:
                out[m.expand(rep)] = value
                break
        else:
            hint = " (a fine-tuned model: give its pre-trained checkpoint)" if key.startswith("w2v_encoder.") else ""
            raise HarnessError(f"fairseq state dict: unknown key {key!r}{hint}")
    return out


@register_source("fairseq", form="fairseq:FILE.pt")
def load_fairseq(rest: str) -> Upstream:
    """`fairseq:FILE.pt` -> the project's HuBERT or WavLM upstream named `fairseq:<file stem>`."""
    path = Path(rest)
    state = read_checkpoint(path)
    try:
        cfg, normalize = model_config(state)
        wavlm = bool(cfg.get("relative_position_embedding")) or any(
            "relative_attention_bias" in k for k in state["model"])
        fam, config = family_config(cfg, normalize, wavlm)
        sd = from_fairseq_state_dict(state["model"])
    except HarnessError as e:
        raise HarnessError(f"{path}: {e}") from None
    encoder = fam.encoder_cls(config)
    sd.setdefault("mask_emb", encoder.mask_emb.detach().clone())  # only used by pre-training
    if "post_extract_proj.weight" not in sd and config.conv_channels[-1] == config.encoder_dim:
        # fairseq and unilm omit the projection when the CNN already has the encoder's width
        sd["post_extract_proj.weight"] = torch.eye(config.encoder_dim)
        sd["post_extract_proj.bias"] = torch.zeros(config.encoder_dim)
    check_state_dict(encoder, sd, path)
    encoder.load_state_dict(sd)
    arch = cfg.get("_name") or cfg.get("arch") or fam.name
    return fam.upstream_cls(encoder, f"fairseq:{path.stem}", source=f"fairseq {arch} checkpoint {path}")
