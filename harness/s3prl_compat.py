"""The one module that imports s3prl (0.4.18): the reference implementation in tests and
benchmarks, and the runtime path of `s3prl:NAME:FILE` upstreams and of `harness export --format
s3prl`, which saves through s3prl's own model classes (upstreams/source_s3prl.py).
s3prl calls torchaudio APIs removed in torchaudio 2.9 at import time (`torchaudio.set_audio_backend`,
`torchaudio.sox_effects`); we shim them here and nowhere else."""

from __future__ import annotations

import sys
import types


def _shim_torchaudio() -> None:
    import torchaudio

    if not hasattr(torchaudio, "set_audio_backend"):
        torchaudio.set_audio_backend = lambda *a, **k: None
    if not hasattr(torchaudio, "sox_effects") or "torchaudio.sox_effects" not in sys.modules:
        mod = types.ModuleType("torchaudio.sox_effects")

        def _unavailable(*a, **k):
            raise RuntimeError("torchaudio.sox_effects was removed in torchaudio 2.9")

        mod.apply_effects_tensor = _unavailable
        mod.apply_effects_file = _unavailable
        torchaudio.sox_effects = mod
        sys.modules["torchaudio.sox_effects"] = mod


def featurizer_class():
    """s3prl.nn.Featurizer, importable on torchaudio 2.11."""
    _shim_torchaudio()
    from s3prl.nn import Featurizer

    return Featurizer


def diarization_pit_loss():
    """s3prl.downstream.diarization.utils.pit_loss (SD's permutation-invariant BCE)."""
    _shim_torchaudio()
    from s3prl.downstream.diarization.utils import pit_loss

    return pit_loss


def hub_local_entries() -> dict:
    """s3prl's hub entries that build an upstream from a local checkpoint: name -> function
    (`hubert_local`, `wavlm_local`, ...; each called with `ckpt=PATH`)."""
    _shim_torchaudio()
    from s3prl import hub

    return {n: getattr(hub, n) for n in hub.options() if n.endswith("_local")}


def s3prl_upstream(name: str, ckpt: str):
    """s3prl.nn.S3PRLUpstream for hub entry `name` on the local checkpoint `ckpt`: s3prl's own
    loader, hidden-state collection and frame-length convention.

    Its constructor reseeds Python's and torch's global generators (s3prl.util.pseudo_data,
    for a trial forward) and draws the model's initial weights from them; both are restored, so
    loading an upstream leaves the caller's random streams where they were."""
    import random

    import torch

    _shim_torchaudio()
    from s3prl.nn import S3PRLUpstream

    py_state = random.getstate()
    try:
        with torch.random.fork_rng():
            return S3PRLUpstream(name, path_or_url=ckpt)
    finally:
        random.setstate(py_state)


def module(name: str):
    """The s3prl module `name` (e.g. "s3prl.upstream.hubert.hubert_model"), imported after the
    shim: how tests reach s3prl's model classes to write checkpoints in its formats."""
    import importlib

    if name != "s3prl" and not name.startswith("s3prl."):
        raise ValueError(f"{name!r} is not an s3prl module")
    _shim_torchaudio()
    return importlib.import_module(name)
