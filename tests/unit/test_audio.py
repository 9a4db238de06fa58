import numpy as np
import pytest
import soundfile as sf

from harness.audio import load_audio
from harness.errors import BadAudioError


def test_resample_and_downmix(tmp_path):
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], 1).astype("float32")
    sf.write(tmp_path / "a.wav", stereo, 8000)
    wav = load_audio(tmp_path / "a.wav")
    assert wav.shape == (16000,)
    assert abs(float(wav.abs().max()) - 0.5) < 0.02  # mean of the two channels


@pytest.mark.parametrize("kind,reason", [
    ("missing", "does not exist"), ("text", "not a readable audio file"), ("empty", "empty"),
    ("nan", "NaN"), ("truncated", "cannot decode|truncated|not a readable"),
])
def test_bad_audio_names_file_and_reason(tmp_path, kind, reason):
    p = tmp_path / f"{kind}.wav"
    if kind == "text":
        p.write_text("hello, not audio")
    elif kind == "empty":
        sf.write(p, np.zeros(0, dtype="float32"), 16000)
    elif kind == "nan":
        x = np.zeros(1600, dtype="float32")
        x[5] = np.nan
        sf.write(p, x, 16000, subtype="FLOAT")
    elif kind == "truncated":
        sf.write(p, np.random.randn(16000).astype("float32") * 0.1, 16000)
        p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(BadAudioError, match=reason) as e:
        load_audio(p, duration=1.0 if kind == "truncated" else None)
    assert str(p) in str(e.value)


def test_bad_audio_error_survives_pickling():
    """The demo's worker pool pickles exceptions: a BadAudioError must come back whole."""
    import pickle

    from harness.errors import BadAudioError

    e = pickle.loads(pickle.dumps(BadAudioError("/x/a.flac", "file does not exist")))
    assert isinstance(e, BadAudioError) and e.path == "/x/a.flac" and "file does not exist" in str(e)
