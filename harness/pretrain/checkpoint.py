"""A training stage's files: atomic checkpoints, the RNG states they carry, the log, the done marker.

Checkpoints (`checkpoint.pt`, written atomically every checkpoint_every steps and at the end):
model, optimiser, scheduler, step, the RNG states of every rank (torch CPU/CUDA, numpy, python)
and the data position (epoch, batch). `done.json` marks a finished stage. Re-running resumes
from the checkpoint and gives the same weights as an uninterrupted run (CPU, same seed).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torch import Tensor

from harness.errors import HarnessError

CHECKPOINT = "checkpoint.pt"
DONE = "done.json"
LOG = "log.jsonl"


def rng_state() -> dict:
    """This process's RNG states (torch CPU, CUDA when initialised, numpy, python)."""
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def set_rng_state(st: dict) -> None:
    """Restore the RNG states saved by `rng_state`."""
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"])


def save_checkpoint(path: Path, obj: dict) -> None:
    """torch.save to a temp file in the same folder, fsync, rename: a kill never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> Optional[dict]:
    """The checkpoint at `path` on the CPU, None when there is none."""
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def final_model_state(out_dir: Path) -> Dict[str, Tensor]:
    """The trained model's state dict (encoder + objective heads) of a finished training stage."""
    out_dir = Path(out_dir)
    if not (out_dir / DONE).is_file():
        raise HarnessError(f"{out_dir}: training has not finished (no {DONE})")
    return load_checkpoint(out_dir / CHECKPOINT)["model"]


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (written after the checkpoint a resumed run restarts from)."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in keep))
    tmp.replace(path)
