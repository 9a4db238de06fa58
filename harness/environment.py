"""What machine made a number: CPU model, instruction sets, threads, torch and its backend flags.

Recorded in every probe result (result.json "environment") and every pre-training iteration
(summary.json "environment"), so that two boards made from the same code can be told apart by
machine (docs/reproducibility.md says which of these change results and by how much).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Dict, List

# /proc/cpuinfo flags that select different CPU kernels in torch / oneDNN / MKL / faiss
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16",
             "amx_int8", "amx_tile")  # fmt: skip
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "MKL_CBWR")


def _cpuinfo() -> Dict[str, Any]:
    """CPU model and the ISA_FLAGS it has, from /proc/cpuinfo (Linux; elsewhere platform's name)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": model, "isa": [f for f in ISA_FLAGS if f in flags]}


def environment() -> Dict[str, Any]:
    """A plain dict describing this process's compute environment.

    Keys: cpu (model name), isa (the ISA_FLAGS the CPU has), cpu_count (logical CPUs),
    torch (version), cpu_capability (the ATen kernel set torch dispatches to: "AVX512", "AVX2",
    "DEFAULT"), threads / interop_threads (torch's intra-op and inter-op pool sizes),
    deterministic_algorithms, mkldnn / mkl (enabled / available), cudnn_deterministic, cuda (the
    GPU's name when one is visible, else None), env (the thread and ISA environment variables
    that are set).
    """
    import torch

    cpu = _cpuinfo()
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu["model"], "isa": cpu["isa"], "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "mkldnn": bool(torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()),
        "mkl": torch.backends.mkl.is_available(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic), "cuda": cuda,
        "env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
    }


def machine_label(env: Dict[str, Any] | None) -> str:
    """One short line for a board cell: "AMD EPYC (AVX512), 2 threads"; "unknown" without a record."""
    if not env:
        return "unknown"
    threads = env.get("threads")
    return f"{env.get('cpu', '?')} ({env.get('cpu_capability', '?')}), {threads} thread{'s' if threads != 1 else ''}"


def machine_labels(envs: List[Dict[str, Any] | None]) -> List[str]:
    """The distinct machine_label of several records, sorted."""
    return sorted({machine_label(e) for e in envs})
