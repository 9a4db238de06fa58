"""The one module that imports s3prl (0.4.18), used as a reference implementation in tests and
benchmarks. s3prl calls torchaudio APIs removed in torchaudio 2.9 at import time
(`torchaudio.set_audio_backend`, `torchaudio.sox_effects`); we shim them here and nowhere else."""

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
