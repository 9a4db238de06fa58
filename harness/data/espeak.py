"""A ctypes wrapper around the espeak-ng library shipped by the pip package `espeakng-loader`.

espeak-ng is initialised once per process in synchronous retrieval mode
(AUDIO_OUTPUT_SYNCHRONOUS): `espeak_Synth` returns when the whole text is synthesised, and
the synth callback collects the int16 samples (22050 Hz) and the events. Initialisation sets
espeakINITIALIZE_PHONEME_EVENTS, so the events include one espeakEVENT_PHONEME per phoneme
whose `id.string` (8 bytes) holds the phoneme's espeak *mnemonic* name (Kirshenbaum-like ASCII,
e.g. "h", "@", "l", "oU", "_:" for a pause) and whose `audio_position` (ms) marks its start:
`synthesize` turns them into a phone alignment.

`text_to_phonemes` goes through espeak_TextToPhonemes and returns **IPA** (UTF-8, stress marks
kept, words separated by spaces, clauses joined by a space).

espeak-ng keeps global state: its output can depend on what was synthesised before in the same
process. Callers who need reproducible audio synthesise a fixed list of items in a fixed order
in a fresh process (the synth corpus generator runs one process per shard).

The layout below follows espeak-ng's public header `speak_lib.h`:

    typedef struct {
        espeak_EVENT_TYPE type;          // int
        unsigned int unique_identifier;
        int text_position;               // characters from the start of the text (1-based)
        int length;                      // word length in characters (WORD events)
        int audio_position;              // ms within the generated speech output
        int sample;                      // internal
        void *user_data;
        union { int number; const char *name; char string[8]; } id;
    } espeak_EVENT;
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from harness.errors import HarnessError

SAMPLE_RATE = 22050  # espeak-ng's native output rate (checked against espeak_Initialize)

# espeak_AUDIO_OUTPUT
AUDIO_OUTPUT_PLAYBACK = 0
AUDIO_OUTPUT_RETRIEVAL = 1
AUDIO_OUTPUT_SYNCHRONOUS = 2
AUDIO_OUTPUT_SYNCH_PLAYBACK = 3

# espeak_Initialize options
espeakINITIALIZE_PHONEME_EVENTS = 0x0001
espeakINITIALIZE_PHONEME_IPA = 0x0002
espeakINITIALIZE_DONT_EXIT = 0x8000

# espeak_EVENT_TYPE
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_MARK = 3
EVENT_PLAY = 4
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7
EVENT_SAMPLERATE = 8

# espeak_Synth flags / position types
espeakCHARS_UTF8 = 1
espeakENDPAUSE = 0x1000
POS_CHARACTER = 1

# espeak_PARAMETER
espeakRATE = 1
espeakVOLUME = 2
espeakPITCH = 3
espeakRANGE = 4
espeakPUNCTUATION = 5
espeakCAPITALS = 6
espeakWORDGAP = 7

# espeak_TextToPhonemes phonememode bits
espeakPHONEMES_IPA = 0x02

# Phoneme-event names that are not phones: pauses (espeak names them "_", "_:", "_!", "_|", ...,
# all starting with "_") and word boundaries. Stress marks prefix vowel names ("'a" primary,
# ",a" secondary, "%" / "=" unstressed / syllabic in some tables) and are stripped.
PAUSE_PHONEMES = frozenset({"||", "|"})
STRESS_MARKS = "',%="


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(EspeakEvent)
)


@dataclass(frozen=True)
class Event:
    """One espeak event: type (EVENT_*), audio position in ms, text position, and for phoneme
    events the phoneme name (for word/sentence events `name` is the number as a string)."""

    type: int
    audio_ms: int
    text_position: int
    name: str = ""


@dataclass
class Synthesis:
    """The result of one `synthesize` call.

    Attributes:
        audio: int16 samples at `sample_rate` (mono).
        sample_rate: 22050.
        events: every event espeak reported, in order.
        alignment: [(phone, start_s, end_s)] from the phoneme events; pauses are named "sil";
            consecutive entries touch and the last one ends at the end of the audio.
    """

    audio: np.ndarray
    sample_rate: int
    events: List[Event] = field(default_factory=list)
    alignment: List[Tuple[str, float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / float(self.sample_rate)

    def phones(self) -> List[str]:
        """The phone names of the alignment, pauses ("sil") removed."""
        return [p for p, _, _ in self.alignment if p != "sil"]


def clean_phone(name: str) -> str:
    """The phone symbol for an espeak phoneme-event name: "sil" for pauses, stress marks
    stripped ("'oU" -> "oU"); "" when nothing is left (a stress-only event)."""
    if name in PAUSE_PHONEMES or name.startswith("_"):
        return "sil"
    return name.lstrip(STRESS_MARKS)


class Espeak:
    """The process-wide espeak-ng engine. Use `get_engine()`; espeak-ng cannot be initialised
    twice in one process with different options, so this class is a singleton in practice."""

    def __init__(self, lib_path: Optional[str] = None, data_path: Optional[str] = None):
        import espeakng_loader

        self._lock = threading.Lock()
        lib_path = lib_path or espeakng_loader.get_library_path()
        data_path = data_path or espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError as e:  # pragma: no cover - depends on the installation
            raise HarnessError(f"cannot load espeak-ng from {lib_path}: {e}") from e
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetSynthCallback.argtypes = [SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [
            ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int,
        ]
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        # espeak-ng seeds its noise generator (breathy variants) with time(NULL) at
        # initialisation, and the Klatt variants draw noise from libc rand(): both are
        # reseeded before each synthesis so the audio depends on the seed only.
        self._set_rand_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self._set_rand_seed is not None:
            self._set_rand_seed.restype = ctypes.c_int
            self._set_rand_seed.argtypes = [ctypes.c_long]
        libc = ctypes.CDLL(None)
        self._srand = libc.srand
        self._srand.restype = None
        self._srand.argtypes = [ctypes.c_uint]
        rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(),
            espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_DONT_EXIT,
        )
        if rate <= 0:
            raise HarnessError(f"espeak-ng failed to initialise with data at {data_path}")
        self.lib = lib
        self.sample_rate = int(rate)
        self._chunks: List[np.ndarray] = []
        self._events: List[Event] = []
        self._callback = SYNTH_CALLBACK(self._on_audio)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: Optional[str] = None

    def version(self) -> str:
        """espeak-ng's version string (espeak_Info)."""
        v = self.lib.espeak_Info(None)
        return v.decode() if v else "unknown"

    # -- callback -----------------------------------------------------------------------------
    def _on_audio(self, wav, numsamples, events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events:
            ev = events[i]
            if ev.type == EVENT_LIST_TERMINATED:
                break
            if ev.type == EVENT_PHONEME:
                name = ev.id.string.decode("utf-8", "replace")
            elif ev.type in (EVENT_WORD, EVENT_SENTENCE):
                name = str(ev.id.number)
            else:
                name = ""
            self._events.append(Event(int(ev.type), int(ev.audio_position),
                                      int(ev.text_position), name))
            i += 1
        return 0

    # -- voice --------------------------------------------------------------------------------
    def set_voice(self, voice: str, rate: int = 175, pitch: int = 50, range_: int = 50) -> None:
        """Select a voice by name, variants included ("en", "en+f3", "de+m2"), then set the
        speaking rate (words per minute, 80..450), pitch (0..100) and pitch range (0..100)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise HarnessError(f"espeak-ng has no voice {voice!r}")
        self._voice = voice
        for param, value, lo, hi in (
            (espeakRATE, rate, 80, 450), (espeakPITCH, pitch, 0, 100),
            (espeakRANGE, range_, 0, 100),
        ):
            if not lo <= int(value) <= hi:
                raise HarnessError(f"espeak parameter {param} out of range [{lo}, {hi}]: {value}")
            self.lib.espeak_SetParameter(param, int(value), 0)

    # -- synthesis ----------------------------------------------------------------------------
    def seed(self, seed: int) -> None:
        """Reseed espeak-ng's noise generator and libc's rand() (used by the Klatt voices)."""
        seed = int(seed) & 0x7FFFFFFF
        if self._set_rand_seed is not None:
            self._set_rand_seed(seed)
        self._srand(seed)

    def synthesize(self, text: str, voice: Optional[str] = None, rate: int = 175,
                   pitch: int = 50, range_: int = 50, seed: Optional[int] = 0) -> Synthesis:
        """Synthesise `text` (UTF-8, plain text) and return audio, events and the alignment.
        With `voice` given the voice and parameters are set first; otherwise the current voice
        (and its parameters) is used. The noise generators are reseeded with `seed` first
        (None: leave them as they are, time-seeded by espeak-ng)."""
        with self._lock:
            if voice is not None:
                self.set_voice(voice, rate=rate, pitch=pitch, range_=range_)
            elif self._voice is None:
                raise HarnessError("espeak: no voice selected")
            if seed is not None:
                self.seed(seed)
            self._chunks, self._events = [], []
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data, len(data))
            err = self.lib.espeak_Synth(buf, len(data), 0, POS_CHARACTER, 0, espeakCHARS_UTF8,
                                        None, None)
            if err != 0:
                raise HarnessError(f"espeak_Synth failed (error {err}) on {text[:60]!r}")
            audio = (np.concatenate(self._chunks) if self._chunks
                     else np.zeros(0, dtype=np.int16)).astype(np.int16, copy=False)
            events = self._events
            self._chunks, self._events = [], []
        return Synthesis(audio, self.sample_rate, events, _alignment(events, len(audio),
                                                                      self.sample_rate))

    def text_to_phonemes(self, text: str, voice: Optional[str] = None, ipa: bool = True) -> str:
        """IPA transcription of `text` via espeak_TextToPhonemes (words separated by spaces,
        stress marks kept, clauses joined by a space); `ipa=False`: espeak's ASCII phoneme
        mnemonics instead, the names its phoneme events (and so the synth alignments) use."""
        with self._lock:
            if voice is not None and voice != self._voice:
                if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise HarnessError(f"espeak-ng has no voice {voice!r}")
                self._voice = voice
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data, len(data))
            ptr = ctypes.c_void_p(ctypes.addressof(buf))
            parts = []
            while ptr.value:
                out = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), espeakCHARS_UTF8,
                                                     espeakPHONEMES_IPA if ipa else 0)
                if out:
                    s = out.decode("utf-8", "replace").strip()
                    if s:
                        parts.append(s)
        return " ".join(parts)


def _alignment(events: List[Event], n_samples: int, sr: int) -> List[Tuple[str, float, float]]:
    """Phone segments from phoneme events: each phone lasts until the next one starts; the last
    until the end of the audio. Times are clipped to the audio and kept monotone."""
    total = n_samples / float(sr)
    marks = []
    for ev in events:
        if ev.type != EVENT_PHONEME or not ev.name:
            continue
        t = min(max(ev.audio_ms / 1000.0, 0.0), total)
        if marks and t < marks[-1][1]:
            t = marks[-1][1]
        phone = clean_phone(ev.name)
        if phone:  # a stress-only event continues the previous phone
            marks.append((phone, t))
    out = []
    for i, (p, t) in enumerate(marks):
        end = marks[i + 1][1] if i + 1 < len(marks) else total
        if end <= t:
            continue  # zero-length: espeak marks stress/boundary with no audio
        if out and p == "sil" and out[-1][0] == "sil":
            out[-1] = ("sil", out[-1][1], end)
        else:
            out.append((p, t, end))
    if out and out[0][1] > 0:
        if out[0][0] == "sil":
            out[0] = ("sil", 0.0, out[0][2])
        else:
            out.insert(0, ("sil", 0.0, out[0][1]))
    return [(p, round(s, 4), round(e, 4)) for p, s, e in out]


_ENGINE: Optional[Espeak] = None


def get_engine() -> Espeak:
    """The process-wide espeak-ng engine (initialised on first use)."""
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = Espeak()
    return _ENGINE


def synthesize(text: str, voice: str = "en", rate: int = 175, pitch: int = 50,
               range_: int = 50, seed: Optional[int] = 0) -> Synthesis:
    """Synthesise `text` with `voice` ("en", "en+f3", "de+m2", ...) at the given rate (wpm),
    pitch and range (0..100), noise generators seeded with `seed`. Returns a Synthesis
    (int16 audio at 22050 Hz, events, alignment)."""
    return get_engine().synthesize(text, voice=voice, rate=rate, pitch=pitch, range_=range_,
                                   seed=seed)


def text_to_phonemes(text: str, lang: str = "en", ipa: bool = True) -> str:
    """IPA transcription (`ipa=False`: phoneme mnemonics) of `text` in espeak voice/language
    `lang` (see module docstring)."""
    return get_engine().text_to_phonemes(text, voice=lang, ipa=ipa)
