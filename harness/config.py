"""Configuration: frozen dataclasses, strict keys, precedence and hashing.

Precedence: dataclass defaults < task profile defaults < `--config` file (YAML/TOML) < CLI flags.
Unknown keys are errors naming the key and the closest known ones. The resolved config is saved
with every run and its hash names the run folder. Config never builds objects by class path.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Type, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _require(cfg: "ProbeConfig", name: str, ok: bool, what: str) -> None:
    if not ok:
        raise ConfigError(f"config key 'probe.{name}' must be {what}, got {getattr(cfg, name)!r}")


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    """How one probe is trained (docs/protocol.md section 2). Units: steps are optimizer updates.

    Attributes:
        steps: optimizer updates.
        lrs: the learning-rate grid searched on dev (one run folder per lr).
        batch_seconds: seconds of audio per batch (items are packed up to this total).
        max_batch_items: upper bound on items per batch.
        grad_accum: gradient accumulation steps (the loss is divided by it).
        grad_clip: max grad norm.
        eval_every: steps between dev evaluations (the dev-best checkpoint is kept).
        optimizer: "adam" | "adamw".
        weight_decay: decoupled weight decay (AdamW) or L2 (Adam).
        head_dim: the head's hidden size (task-specific meaning, see each task).
        head_layers: depth of the head's recurrent/TDNN part where it has one.
        layer_norm: per-layer parameter-free LN before the weighted sum (off, as in SUPERB).
        crop_seconds: random crop of utterances at training time (0 = off), e.g. SID's 8 s.
        crop_frames: the crop in frames of the upstream instead (0 = use crop_seconds), e.g.
            SD's 2000-frame chunks, whose length in seconds follows the upstream's frame rate.
        head: head variant name where a task offers several (e.g. ASV "xvector" | "ecapa").
        dropout: dropout inside the head.
        specaug: SpecAugment on the weighted features in training, with the task's recipe values
            (ASR: s3prl asr/config.yaml; ML-SUPERB: the ESPnet recipe's specaug_conf).
        average_best: test the average of the weights of the N evaluations with the lowest dev
            loss (ESPnet's best_model_criterion valid loss, keep_nbest_models N); 1 = the single
            evaluation best on the task's primary metric.
        seed: random seed.
    """

    steps: int = 300
    lrs: Tuple[float, ...] = (1e-3,)
    batch_seconds: float = 60.0
    max_batch_items: int = 64
    grad_accum: int = 1
    grad_clip: float = 1.0
    eval_every: int = 100
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    head_dim: int = 256
    head_layers: int = 1
    layer_norm: bool = False
    crop_seconds: float = 0.0
    crop_frames: int = 0
    head: str = "default"
    dropout: float = 0.0
    specaug: bool = False
    average_best: int = 1
    seed: int = 1337

    def __post_init__(self):
        for name in ("steps", "eval_every", "max_batch_items", "grad_accum", "head_dim", "head_layers"):
            _require(self, name, getattr(self, name) >= 1, "an integer >= 1")
        _require(self, "batch_seconds", _finite(self.batch_seconds) and self.batch_seconds > 0, "a positive number")
        _require(self, "grad_clip", _finite(self.grad_clip) and self.grad_clip > 0, "a positive number")
        for name in ("weight_decay", "crop_seconds"):
            _require(self, name, _finite(getattr(self, name)) and getattr(self, name) >= 0, "a number >= 0")
        _require(self, "dropout", _finite(self.dropout) and 0 <= self.dropout < 1, "in [0, 1)")
        _require(self, "seed", self.seed >= 0, "an integer >= 0")
        _require(self, "optimizer", self.optimizer in ("adam", "adamw"), "'adam' or 'adamw'")
        _require(self, "crop_frames", self.crop_frames >= 0, "an integer >= 0")
        _require(self, "average_best", self.average_best >= 1, "an integer >= 1")
        # an empty grid is allowed here (the config hash is taken without lrs); resolve_config
        # rejects it for a run
        for lr in self.lrs:
            if not (_finite(lr) and lr > 0):
                raise ConfigError(f"config key 'probe.lrs': every learning rate must be a positive finite number, "
                                  f"got {lr!r}")


#: how cached layers are stored (harness.quant: int8 with per-channel scales)
CACHE_DTYPES = ("float16", "int8")
#: the upstream's precision when extracting (harness.extraction.DTYPES; float16 is CUDA's)
EXTRACT_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Everything that defines an evaluation besides the upstream and task names.

    Attributes:
        profile: "quick" (CPU minutes) or "paper" (published steps/batches/lrs).
        probe: the resolved probe configuration.
        cache_budget_gb: largest feature cache (all layers) written to disk; above it the
            upstream is run per batch instead.
        cache_dtype: how cached layers are stored: "float16", or "int8" (half the bytes; per
            utterance, layer and channel scales: harness/quant.py). Live mode applies the same
            rounding.
        extract_dtype: the upstream's precision when extracting: "float32" (the reference),
            "bfloat16" (autocast; CPUs with bf16 matmuls and GPUs) or "float16" (autocast, CUDA
            only): harness/extraction.py.
        device: "cpu", "cuda", "cuda:N" or "mps". Only its spelling is checked here; whether the
            machine has it is checked where the evaluation runs (`check_device` in
            harness/evaluate.py), so that a login node without a GPU can submit GPU jobs.
        skip_bad: skip (and count) unreadable audio instead of stopping.
        lexicon: a pronunciation lexicon file for PR (s3prl's LibriSpeech lexicon format); "" =
            the corpus's espeak phones, recorded as a substitute (see tasks/pr.py).
        dev_max_items / test_max_items: cap on evaluated items (0 = all).
    """

    profile: str = "quick"
    probe: ProbeConfig = ProbeConfig()
    cache_budget_gb: float = 20.0
    cache_dtype: str = "float16"
    extract_dtype: str = "float32"
    device: str = "cpu"
    skip_bad: bool = False
    lexicon: str = ""

    def __post_init__(self):
        ok = _finite(self.cache_budget_gb) and self.cache_budget_gb >= 0
        if not ok:
            raise ConfigError(f"config key 'cache_budget_gb' must be a number >= 0, got {self.cache_budget_gb!r}")
        if self.cache_dtype not in CACHE_DTYPES:
            raise ConfigError(f"config key 'cache_dtype' must be one of {', '.join(CACHE_DTYPES)}, got {self.cache_dtype!r}")
        if self.extract_dtype not in EXTRACT_DTYPES:
            raise ConfigError(f"config key 'extract_dtype' must be one of {', '.join(EXTRACT_DTYPES)}, got "
                              f"{self.extract_dtype!r}")
        check_device_name(self.device)


def check_device_name(device: str) -> str:
    """A device spelt as torch spells it: "cpu", "cuda", "cuda:N" or "mps" (not checked against
    this machine: see `check_device`)."""
    import re

    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?|mps", device):
        raise ConfigError(f"config key 'device' must be cpu, cuda, cuda:N or mps, got {device!r}")
    return device


def check_device(device: str) -> str:
    """A torch device this machine has: "cpu", "cuda" / "cuda:N" (a visible GPU) or "mps".
    Called where the work runs (in the job, not on the host that submits it)."""
    import torch

    check_device_name(device)
    if device.startswith("cuda"):
        n = torch.cuda.device_count()
        idx = int(device.split(":")[1]) if ":" in device else 0
        if idx >= n:
            raise ConfigError(f"device {device!r} asked for, but this machine has {n or 'no'} visible CUDA "
                              "device(s); use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but MPS is not available here; use --device cpu")
    return device


def check_count(key: str, value: int) -> int:
    """A count asked for on the command line (e.g. seeds): an integer >= 1."""
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")
    return value


def split_names(values, key: str) -> list:
    """Names given as repeated and/or comma-separated options ("a,b" "c" -> [a, b, c]); none at all
    (e.g. `--task ","`) is an error naming the option."""
    names = [v.strip() for x in values for v in str(x).split(",") if v.strip()]
    if not names:
        raise ConfigError(f"{key}: no name given (got {', '.join(map(repr, values)) or 'nothing'})")
    return names


def _check_keys(cls: Type, data: Mapping[str, Any], where: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    for k in data:
        if k not in names:
            close = difflib.get_close_matches(k, names, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown config key {where}{k!r}{hint}; known: {', '.join(names)}")


def _short(value: Any) -> str:
    """repr of a value, bounded (a nested value's full repr may be huge)."""
    import reprlib

    r = reprlib.Repr()
    r.maxlist = r.maxtuple = r.maxdict = 6
    r.maxlevel, r.maxstring, r.maxother = 3, 60, 60
    return r.repr(value)


def _coerce(field_type: Any, value: Any, key: str) -> Any:
    """`value` as the field's type. Strings are parsed (command-line `--set` values); otherwise the
    type must fit: a bool is not an int (`steps: true`), a number or a list is not a bool
    (`layer_norm: 2`, `skip_bad: [0]`), a number is not text."""
    t = field_type if isinstance(field_type, str) else getattr(field_type, "__name__", str(field_type))
    try:
        if t.startswith("Tuple") or t.startswith("tuple"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if not isinstance(value, (list, tuple)) or any(isinstance(v, bool) for v in value):
                raise ValueError(value)
            return tuple(float(v) for v in value)
        if t == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
            raise ValueError(value)
        if t == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if t == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError(value)
            return float(value)
        if t == "str":
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"config key {key!r}: cannot use {_short(value)} as {t}") from None
    return value


def merge(obj: T, updates: Mapping[str, Any], where: str = "") -> T:
    """Return a copy of dataclass `obj` with `updates` applied (nested dicts merge into nested
    dataclasses). Unknown keys and uncoercible values raise ConfigError."""
    _check_keys(type(obj), updates, where)
    kw = {}
    for f in dataclasses.fields(obj):
        if f.name not in updates:
            continue
        cur, new = getattr(obj, f.name), updates[f.name]
        if dataclasses.is_dataclass(cur):
            if not isinstance(new, Mapping):
                raise ConfigError(f"config key {where}{f.name!r} must be a table of keys")
            kw[f.name] = merge(cur, new, where=f"{where}{f.name}.")
        else:
            kw[f.name] = _coerce(f.type, new, where + f.name)
    return dataclasses.replace(obj, **kw)


#: the most values a config file may hold once its YAML aliases are expanded (a "billion laughs"
#: file holds a few lines and expands to 10^9 values)
MAX_CONFIG_VALUES = 100_000


def _expanded_size(data: Any, limit: int) -> int:
    """How many values `data` holds with shared (aliased) parts counted each time they occur;
    stops counting past `limit`, so the walk costs O(limit) whatever the nesting."""
    count, stack = 0, [data]
    while stack and count <= limit:
        x = stack.pop()
        count += 1
        if isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    return count


def read_config_file(path: str | Path) -> Dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) config file into a dict. A file that is not UTF-8
    text, a syntax error (with its line and column) or YAML aliases expanding past
    MAX_CONFIG_VALUES values is a ConfigError in one line naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise ConfigError(f"config file {path}: use .yaml, .yml or .toml")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path}: not UTF-8 text (byte {e.start} is {e.object[e.start]:#04x})") from None
    except OSError as e:
        raise ConfigError(f"config file {path}: cannot read it ({e.strerror or e})") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            raise ConfigError(f"config file {path}: YAML syntax error at {where}{e.problem or e.context}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {path}: YAML error: {' '.join(str(e).split())}") from None
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path}: TOML syntax error: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    if _expanded_size(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(f"config file {path}: holds more than {MAX_CONFIG_VALUES:,} values once its YAML aliases "
                          "are expanded; refused (a config needs a few dozen)")
    return data


def to_dict(obj: Any) -> Dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def config_hash(obj: Any, extra: Mapping[str, Any] | None = None) -> str:
    """Short stable hash of a config (and extra identifying values)."""
    payload = {"config": obj if isinstance(obj, dict) else to_dict(obj), "extra": dict(extra or {})}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]
