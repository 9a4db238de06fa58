"""The one module that decodes audio: soundfile, downmix to mono, resample to 16 kHz, validate.

Every failure is a BadAudioError naming the file and the reason, so that a long run can either
stop with one clear line or skip the item and count it (`--skip-bad`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
import torch

from harness.errors import BadAudioError

TARGET_SR = 16000


def load_audio(
    path: str | Path,
    offset: float = 0.0,
    duration: Optional[float] = None,
    target_sr: int = TARGET_SR,
) -> torch.Tensor:
    """Read a segment of an audio file as mono float32 at `target_sr`.

    Args:
        path: audio file (any format libsndfile reads: WAV, FLAC, OGG, ...).
        offset: segment start, seconds.
        duration: segment length, seconds (None = to the end).
        target_sr: output sample rate, Hz.

    Returns:
        (S,) float32 tensor in [-1, 1].

    Raises:
        BadAudioError: missing, unreadable, truncated, empty, or non-finite audio.
    """
    path = Path(path)
    if not path.exists():
        raise BadAudioError(path, "file does not exist")
    try:
        info = sf.info(str(path))
    except Exception as e:  # libsndfile's errors are RuntimeError/LibsndfileError with terse text
        raise BadAudioError(path, f"not a readable audio file ({_short(e)})") from None
    sr = int(info.samplerate)
    start = int(round(offset * sr))
    stop = None if duration is None else start + int(round(duration * sr))
    if start >= info.frames and info.frames > 0:
        raise BadAudioError(path, f"segment starts at {offset:.2f} s, past the end ({info.frames / sr:.2f} s)")
    try:
        data, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as e:
        raise BadAudioError(path, f"cannot decode ({_short(e)})") from None
    if stop is not None and data.shape[0] < (stop - start) - sr // 100:
        raise BadAudioError(
            path, f"truncated: expected {(stop - start) / sr:.2f} s from {offset:.2f} s, got {data.shape[0] / sr:.2f} s"
        )
    if data.shape[0] == 0:
        raise BadAudioError(path, "empty (0 samples)")
    if not np.isfinite(data).all():
        raise BadAudioError(path, "contains NaN or infinite samples")
    wav = torch.from_numpy(data.mean(axis=1) if data.shape[1] > 1 else data[:, 0])
    if sr != target_sr:
        import torchaudio.functional as AF

        wav = AF.resample(wav, sr, target_sr)
    return wav.contiguous()


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:160]


def pad_batch(wavs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad 1-D waveforms into (B, S_max) float32 with (B,) int64 lengths in samples."""
    lens = torch.tensor([w.numel() for w in wavs], dtype=torch.long)
    out = torch.zeros(len(wavs), int(lens.max()) if len(wavs) else 0)
    for i, w in enumerate(wavs):
        out[i, : w.numel()] = w
    return out, lens
