"""The ctypes wrapper around espeak-ng (harness/data/espeak.py)."""

import ctypes

import numpy as np
import pytest

from harness.data import espeak as E
from harness.errors import HarnessError

SENTENCE = "Everyone has the right to life, liberty and the security of person."


def test_event_struct_matches_speak_lib_h():
    # speak_lib.h: 6 ints, then void* user_data, then the 8-byte id union
    ptr = ctypes.sizeof(ctypes.c_void_p)
    assert E.EspeakEvent.audio_position.offset == 16
    assert E.EspeakEvent.user_data.offset == 24
    assert E.EspeakEvent.id.offset == 24 + ptr
    assert ctypes.sizeof(E._EventId) == 8
    assert ctypes.sizeof(E.EspeakEvent) == 24 + ptr + 8


def test_synthesize_audio_rate_and_duration():
    s = E.synthesize(SENTENCE, "en")
    assert s.sample_rate == E.SAMPLE_RATE == 22050
    assert s.audio.dtype == np.int16 and s.audio.ndim == 1
    # 12 words at 175 wpm: about 4 s, with the comma pause
    assert 2.5 < s.duration < 6.0
    assert np.abs(s.audio.astype(np.int32)).max() > 1000
    slow = E.synthesize(SENTENCE, "en", rate=100)
    fast = E.synthesize(SENTENCE, "en", rate=300)
    assert slow.duration > s.duration > fast.duration


def test_phoneme_events_are_monotone_and_named():
    s = E.synthesize(SENTENCE, "en")
    ph = [e for e in s.events if e.type == E.EVENT_PHONEME]
    assert len(ph) > 30
    times = [e.audio_ms for e in ph]
    assert times == sorted(times)
    assert 0 <= times[0] and times[-1] <= s.duration * 1000 + 1
    assert all(e.name and len(e.name.encode()) <= 8 for e in ph)
    words = [e for e in s.events if e.type == E.EVENT_WORD]
    assert len(words) == len(SENTENCE.split())


def test_phones_of_known_words():
    assert E.synthesize("yes", "en").phones() == ["j", "E", "s"]
    assert E.synthesize("stop", "en").phones() == ["s", "t", "0", "p"]
    # pauses and stress marks never reach the phones
    phones = E.synthesize(SENTENCE, "en").phones()
    assert phones and not any(p.startswith(("_", "'", ",")) or p == "sil" for p in phones)


def test_alignment_covers_the_audio_and_matches_energy():
    s = E.synthesize(SENTENCE, "en+m3")
    al = s.alignment
    assert al[0][1] == 0.0
    assert al[-1][2] == pytest.approx(s.duration, abs=1e-3)
    for (_, _, end), (_, start, _) in zip(al, al[1:]):
        assert end == pytest.approx(start)
    assert all(e > b for _, b, e in al)
    # pauses ("sil", incl. the comma) are much quieter than phones: the time stamps line up
    x = s.audio.astype(np.float64)
    sr = s.sample_rate

    def level(b, e):
        seg = x[int(b * sr):int(e * sr)]
        return float(np.sqrt(np.mean(seg ** 2))) if len(seg) else 0.0

    sil = [level(b, e) for p, b, e in al if p == "sil" and e - b > 0.05]
    phon = [level(b, e) for p, b, e in al if p != "sil"]
    assert sil, "the comma should give a pause"
    assert np.median(sil) < 0.2 * np.median(phon)


def test_clean_phone():
    assert E.clean_phone("'oU") == "oU"
    assert E.clean_phone(",a:") == "a:"
    assert E.clean_phone("_:") == "sil"
    assert E.clean_phone("_") == "sil"
    assert E.clean_phone("tS;") == "tS;"


def test_voices_variants_and_parameters_change_the_audio():
    base = E.synthesize("hello there", "en+f3")
    other = E.synthesize("hello there", "en+m3")
    high = E.synthesize("hello there", "en+f3", pitch=90)
    assert not np.array_equal(base.audio, other.audio)
    assert not np.array_equal(base.audio, high.audio)
    assert base.phones() == other.phones()
    de = E.synthesize("Alle Menschen sind frei", "de+m2")
    assert de.phones() and de.duration > 0.8


def test_unknown_voice_and_bad_parameter_are_errors():
    with pytest.raises(HarnessError, match="no voice"):
        E.synthesize("hello", "xx-notalanguage")
    with pytest.raises(HarnessError, match="out of range"):
        E.synthesize("hello", "en", pitch=150)


def test_text_to_phonemes_is_ipa():
    ipa = E.text_to_phonemes("yes", "en")
    assert ipa == "jˈɛs"
    de = E.text_to_phonemes("ich bin", "de")
    assert "ç" in de and len(de.split()) == 2
    two = E.text_to_phonemes("Hello world. Second sentence here!", "en")
    assert "wˈɜːld" in two and "sˈɛntəns" in two


def test_fresh_processes_give_identical_audio():
    # espeak-ng seeds its noise with time(NULL); the wrapper reseeds, so a fresh process with
    # the same calls gives the same bytes (f5 is a breathy variant, klatt uses libc rand())
    import subprocess
    import sys
    import time

    code = ("import hashlib; from harness.data import espeak as E; h = hashlib.md5(); "
            "[h.update(E.synthesize(t, v, seed=7).audio.tobytes()) "
            " for t, v in [('hello there', 'en+f5'), ('yes', 'en+klatt'), ('no', 'en+f5')]]; "
            "print(h.hexdigest())")
    outs = []
    for _ in range(2):
        outs.append(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                   check=True).stdout.strip())
        time.sleep(1.05)  # a different time(NULL) for the second process
    assert len(outs[0]) == 32 and outs[0] == outs[1]
