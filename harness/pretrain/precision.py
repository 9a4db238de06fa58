"""The training precision of a pre-training stage: `train.precision` resolved to a torch dtype.

- "fp32" / "bf16": as asked (bf16 = matmuls and convolutions under bfloat16 autocast, fp32
  weights, optimizer and loss reductions).
- "auto": bf16 on a GPU that supports it, fp32 otherwise (the CPU included).
- "fastest": measured on this machine (issue 30: "the recipe uses whichever precision measures
  faster"). A copy of the encoder runs forward + backward on one batch of the recipe's size in
  fp32 and under bf16 autocast, one warm-up and three timed repeats each, alternated so that a
  load coming and going hits both alike; bf16 is taken when its median step is at least
  `MARGIN` faster. The margin keeps the choice stable from run to run on one machine: a CPU
  without native bf16 matmuls (no AVX512-BF16 / AMX) runs bf16 slower than fp32, one with them
  about 1.5-2x faster (bench/pretrain_step.py), so a 10 % margin is never near the line. The
  measurement draws its random numbers under `torch.random.fork_rng`, so the training stream
  is the one a fixed precision would see.

The choice and both medians are written to `<stage>/precision.json` once; a resumed stage reads
it back instead of measuring again (a stage never changes precision half way), and the stage's
summary records it.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import torch

#: bf16 must be at least this much faster (median step time ratio) to be chosen by "fastest"
MARGIN = 0.9
#: the file in a stage's folder that records the choice
PRECISION_FILE = "precision.json"
#: timed repeats per precision (after one warm-up)
REPEATS = 3


def _step(encoder: torch.nn.Module, wavs: torch.Tensor, dtype: torch.dtype) -> None:
    """One forward + backward of `encoder` on `wavs` under `dtype` autocast (gradients dropped)."""
    device_type = wavs.device.type
    with torch.autocast(device_type=device_type, dtype=dtype, enabled=dtype != torch.float32):
        out = encoder(wavs)
    states = out.hidden_states if hasattr(out, "hidden_states") else out
    loss = sum(s.float().pow(2).mean() for s in states)
    loss.backward()
    if device_type == "cuda":
        torch.cuda.synchronize(wavs.device)
    encoder.zero_grad(set_to_none=True)


def measure(encoder: torch.nn.Module, samples: int, device: str) -> Dict[str, float]:
    """Median seconds per forward + backward step of a copy of `encoder` on a (1, samples)
    batch, in fp32 and under bf16 autocast: {"fp32": s, "bf16": s}."""
    enc = copy.deepcopy(encoder).to(device).train()
    times: Dict[str, list] = {"fp32": [], "bf16": []}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    with torch.random.fork_rng(devices=[torch.device(device)] if device.startswith("cuda") else []):
        torch.manual_seed(0)
        wavs = torch.randn(1, samples, device=device)
        for name, dt in dtypes.items():  # warm-up (allocator, kernel selection)
            _step(enc, wavs, dt)
        for _ in range(REPEATS):
            for name, dt in dtypes.items():
                t0 = time.perf_counter()
                _step(enc, wavs, dt)
                times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def resolve_precision(precision: str, device: str, encoder: torch.nn.Module, samples: int,
                      out_dir: Path, is_main: bool, share: Callable[[dict], dict],
                      log: Callable[[str], None] = print) -> Tuple[torch.dtype, dict]:
    """The dtype a stage trains in, and what to record of the choice.

    Args:
        precision: train.precision ("auto", "fp32", "bf16", "fastest").
        device: the resolved device ("cpu", "cuda:N").
        encoder: the stage's encoder (only copied, for "fastest").
        samples: samples per measured batch (the recipe's batch_samples, capped at its crop).
        out_dir: the stage's folder (PRECISION_FILE lives there).
        is_main: rank 0 measures and writes; the others take rank 0's choice through `share`.
        share: rank 0's record to every rank (identity on one process).
        log: where the one line naming the choice goes.

    Returns:
        (torch.float32 or torch.bfloat16, {"precision_asked": ..., "precision": ..., and for
        "fastest" "step_s_fp32" / "step_s_bf16"}).
    """
    rec: dict = {"precision_asked": precision}
    if precision == "fastest":
        path = Path(out_dir) / PRECISION_FILE
        if is_main and path.is_file():
            rec = json.loads(path.read_text())
        elif is_main:
            t = measure(encoder, samples, device)
            choice = "bf16" if t["bf16"] < MARGIN * t["fp32"] else "fp32"
            rec = {"precision_asked": precision, "precision": choice,
                   "step_s_fp32": round(t["fp32"], 4), "step_s_bf16": round(t["bf16"], 4)}
            path.write_text(json.dumps(rec, indent=2) + "\n")
            log(f"precision: fastest -> {choice} (one {samples / 16000:.1f} s step: fp32 "
                f"{t['fp32']:.3f} s, bf16 {t['bf16']:.3f} s; bf16 needs < {MARGIN:g} x fp32)")
        rec = share(rec)  # every rank trains in rank 0's choice
        name = rec["precision"]
    elif precision == "bf16" or (precision == "auto" and device.startswith("cuda")
                                 and torch.cuda.is_bf16_supported()):
        name = "bf16"
    else:
        name = "fp32"
    rec["precision"] = name
    return (torch.bfloat16 if name == "bf16" else torch.float32), rec
