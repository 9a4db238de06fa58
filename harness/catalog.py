"""What upstreams exist: the rows of `harness list upstreams` (registered names and the exports
found under a runs folder) and the error for a name that is none of the accepted forms.

Parameter counts come from the config alone: each model is constructed on PyTorch's meta device
(shapes without storage or initialisation), so listing a Large model costs milliseconds.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple, Union

import torch

from harness.errors import HarnessError
from harness.registry import SOURCES, UPSTREAMS, load_all
from upstreams.base import CONFIG_FILE, Upstream, read_export_config

#: the forms build_upstream accepts besides registered names and sources
OTHER_FORMS = ("fusion:A+B+... (names or folders, at the finest member's frame rate)",
               "a folder with upstream.json (written by harness pretrain or export)")


@dataclass(frozen=True)
class UpstreamRow:
    """One upstream as listed.

    Attributes:
        name: what `--upstream` takes (a registered name or an export folder).
        family: model family (spec.family).
        layers: hidden states exposed, L+1.
        width: feature dimension D.
        frame_rate_hz: frames per second.
        params: parameter count.
        source: where the weights come from.
    """

    name: str
    family: str
    layers: int
    width: int
    frame_rate_hz: float
    params: int
    source: str


def _row(up: Upstream, name: str, source: str) -> UpstreamRow:
    s = up.spec
    return UpstreamRow(name, s.family, s.num_layers, s.hidden_size, s.frame_rate_hz,
                       sum(p.numel() for p in up.parameters()), source)


def upstream_facts(up: Upstream) -> dict:
    """What a result.json records about its upstream, so that boards never open a checkpoint:
    family, layers (L+1), width D, frame rate (Hz), parameter count, source and `pretraining`
    (an export's upstream.json record of corpus, hours and updates; a fusion's: its members'
    records in order; None where the weights say nothing about it)."""
    s = up.spec
    members = getattr(up, "members", None)
    if members is not None:
        pre = [upstream_facts(m)["pretraining"] for m in members]
        pretraining = {"members": pre} if any(p is not None for p in pre) else None
    else:
        cfg = Path(s.source) / CONFIG_FILE if s.source else None
        pretraining = read_export_config(cfg.parent)[2].get("pretraining") if cfg and cfg.is_file() else None
    return {"family": s.family, "layers": s.num_layers, "width": s.hidden_size, "frame_rate_hz": s.frame_rate_hz,
            "params": sum(p.numel() for p in up.parameters()), "source": s.source, "pretraining": pretraining}


def registered_row(name: str) -> UpstreamRow:
    """Registered upstream `name`, described without weights (built on the meta device)."""
    load_all()
    with torch.device("meta"):
        up = UPSTREAMS.get(name)()
    return _row(up, name, up.spec.source)


def registered_rows() -> List[UpstreamRow]:
    """Every registered upstream, described without weights."""
    load_all()
    return [registered_row(n) for n in UPSTREAMS.names()]


def export_folders(runs_root: Union[str, Path]) -> List[Path]:
    """Folders under `runs_root` holding an upstream.json (pre-training iterations, exports)."""
    root = Path(runs_root)
    return sorted(p.parent for p in root.rglob(CONFIG_FILE)) if root.is_dir() else []


def export_rows(runs_root: Union[str, Path]) -> Tuple[List[UpstreamRow], List[str]]:
    """The exports under `runs_root`, described from their upstream.json alone, and one message
    per folder whose config cannot be read (a listing must not fail on one bad folder)."""
    rows, problems = [], []
    for folder in export_folders(runs_root):
        try:
            fam, config, meta = read_export_config(folder)
        except HarnessError as e:
            problems.append(str(e))
            continue
        name = str(meta.get("name") or folder.name)
        with torch.device("meta"):
            up = fam.upstream_cls(fam.encoder_cls(config), name, source=str(folder))
        rows.append(_row(up, str(folder), f"export {name!r}"))
    return rows, problems


def accepted_forms() -> List[str]:
    """Every form `--upstream` accepts: registered sources show their `form` meta (e.g.
    `s3prl:NAME:FILE`), falling back to `<prefix>:...`."""
    load_all()
    forms = ["a registered name (harness list upstreams)"]
    forms += [SOURCES.meta(p).get("form", f"{p}:...") for p in SOURCES.names()]
    return forms + list(OTHER_FORMS)


def unknown_upstream(name: str, runs_root: Union[str, Path] = Path("runs")) -> HarnessError:
    """The error for `name` matching no accepted form: what is wrong with it, close names that
    exist (registered names, export folders under `runs_root`) and the accepted forms."""
    load_all()
    prefix, colon, _ = name.partition(":")
    path = Path(name)
    if colon and prefix.isidentifier() and not any(n.startswith(prefix + ":") for n in UPSTREAMS.names()) \
            and prefix != "fusion":
        what = f"unknown upstream source {prefix + ':'!r}"
        candidates = [p + ":" for p in SOURCES.names()]
        probe = prefix + ":"
    elif path.is_dir():
        what = f"{name}: folder has no {CONFIG_FILE}"
        candidates, probe = [str(f) for f in export_folders(runs_root)], name
    elif path.is_file():
        what = f"{name}: a checkpoint file needs its source's prefix"
        candidates, probe = [], name
    else:
        what = f"unknown upstream {name!r}" + (" (no such folder)" if "/" in name else "")
        candidates = UPSTREAMS.names() + [str(f) for f in export_folders(runs_root)]
        probe = name
    close = difflib.get_close_matches(probe, candidates, n=3, cutoff=0.6)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return HarnessError(f"{what}.{hint} Accepted: {'; '.join(accepted_forms())}")
