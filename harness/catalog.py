"""What registered upstreams and exports are, described without weights: the rows of `harness
list upstreams` for exports under a runs folder, the facts a result.json records of its upstream,
and the registry's own description of each registered upstream (what
harness.upstream_names.REGISTERED, the torch-free table the listing prints, is checked against).

Parameter counts come from the config alone: each model is constructed on PyTorch's meta device
(shapes without storage or initialisation), so describing a Large model costs milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple, Union

import torch

from harness.errors import HarnessError
from harness.registry import UPSTREAMS, load_all
from harness.upstream_names import UpstreamRow, export_folders
from upstreams.base import CONFIG_FILE, Upstream, read_export_config


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
