"""Bundled upstreams: pre-trained weights shipped inside the repository, evaluated by name.

Each bundle is a folder `upstreams/bundled/<name>/` holding an export exactly as `harness
pretrain` writes one (upstream.json + upstream.safetensors, here in float16 to halve its size),
plus:

- bundle.json: the sha256 of upstream.safetensors, and where the weights come from (recipe and
  its hash, the commit and the command that made them, the corpus version and content
  fingerprint, the pre-training updates);
- CARD.md: the same for a reader, with the board rows the weights reached.

It is registered as the upstream `bundled:<name>` and loads through `load_exported`, the path
of every export: the float16 weights are widened to the encoder's float32 on load. Before that
the file's sha256 is checked against bundle.json, so a damaged or swapped file is an error
naming the file, never a silently different model. `scripts/make_bundle.py` writes a bundle
from an export folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

from harness.errors import HarnessError
from harness.registry import register_upstream
from upstreams.base import CONFIG_FILE, WEIGHTS_FILE, Upstream

#: where the bundles live (a folder per bundle)
ROOT = Path(__file__).resolve().parent / "bundled"
#: the bundle's own record beside the export files
BUNDLE_FILE = "bundle.json"
#: the prefix of a bundle's upstream name
PREFIX = "bundled:"


def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def bundle_folders(root: Path = ROOT) -> List[Path]:
    """The bundle folders under `root` (those with a bundle.json), sorted by name."""
    return sorted(p.parent for p in Path(root).glob(f"*/{BUNDLE_FILE}")) if Path(root).is_dir() else []


def read_bundle(folder: Path) -> Dict:
    """bundle.json of `folder`, or one line naming the file and what is wrong."""
    path = Path(folder) / BUNDLE_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise HarnessError(f"{path}: cannot read the bundle record: {e}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise HarnessError(f"{path}: the bundle record has no sha256 of {WEIGHTS_FILE}")
    return meta


def check_bundle(folder: Path) -> Dict:
    """The bundle record of `folder` once its files are there and the weights match its sha256."""
    folder = Path(folder)
    meta = read_bundle(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise HarnessError(f"{folder / name}: missing bundle file")
    got = sha256_file(folder / WEIGHTS_FILE)
    if got != meta["sha256"]:
        raise HarnessError(f"{folder / WEIGHTS_FILE}: sha256 {got[:16]}... is not the bundle's "
                           f"{meta['sha256'][:16]}... (damaged or replaced; restore it with git checkout)")
    return meta


def load_bundle(folder: Path) -> Upstream:
    """The upstream of bundle `folder`, checked, through the export loader, named `bundled:<name>`."""
    from upstreams.base import load_exported

    folder = Path(folder)
    check_bundle(folder)
    up = load_exported(folder)
    up.spec = replace(up.spec, name=PREFIX + folder.name, source=f"bundle {folder.name}")
    return up


def _register(folder: Path) -> None:
    @register_upstream(PREFIX + folder.name)
    def build() -> Upstream:
        return load_bundle(folder)


for _folder in bundle_folders():
    _register(_folder)


def write_bundle(export: Path, name: str, provenance: Dict, card: str, root: Path = ROOT) -> Path:
    """Write bundle `root/<name>` from export folder `export`: its upstream.json as is, its
    weights cast to float16, bundle.json (`provenance` plus the weights' sha256) and CARD.md
    (`card`). Refuses an existing bundle folder (a bundle is written once, whole) and a weight
    that float16 cannot hold (|x| > 65504 would become infinite).

    Returns:
        the bundle folder.
    """
    import torch
    from safetensors.torch import load_file, save_file

    export, folder = Path(export), Path(root) / name
    if not (export / CONFIG_FILE).is_file() or not (export / WEIGHTS_FILE).is_file():
        raise HarnessError(f"{export}: not an export folder (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    if folder.exists():
        raise HarnessError(f"{folder} exists already; remove it to rewrite the bundle")
    sd = load_file(str(export / WEIGHTS_FILE))
    half = {}
    for key, t in sd.items():
        if t.is_floating_point():
            if bool((t.abs() > torch.finfo(torch.float16).max).any()):
                raise HarnessError(f"{export / WEIGHTS_FILE}: {key} exceeds the float16 range")
            t = t.to(torch.float16)
        half[key] = t.contiguous()
    folder.mkdir(parents=True)
    save_file(half, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_bytes((export / CONFIG_FILE).read_bytes())
    from upstreams.base import load_exported

    spec = load_exported(folder).spec  # the row `harness list upstreams` prints without torch
    row = {"family": spec.family, "layers": spec.num_layers, "width": spec.hidden_size,
           "frame_rate_hz": spec.frame_rate_hz, "params": sum(t.numel() for t in half.values())}
    meta = {**provenance, "name": PREFIX + name, "dtype": "float16", "sha256": sha256_file(folder / WEIGHTS_FILE),
            "row": row}
    (folder / BUNDLE_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    (folder / "CARD.md").write_text(card)
    return folder
