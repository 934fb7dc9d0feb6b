"""Speech with known phoneme timing from several synthesizers.

- espeak-ng through the ``espeakng-loader`` wheel (the library and its data ship in the wheel): the
  library is driven through ctypes in synchronous mode with phoneme events, each carrying its
  audio position in milliseconds; a phone ends where the next event starts.
- festival (Debian ``festival`` plus a voice package such as ``festvox-kallpc16k``), driven by a
  scheme script per batch: ``utt.save.wave`` writes the audio, ``utt.save.segs`` each phone's end
  time in seconds.
- flite (Debian ``flite`` and ``libflite1``): CMU's small engine with its clustergen (statistical
  parametric) voices ``awb``, ``rms`` and ``slt`` and the diphone voice ``kal16``, driven through
  ctypes: the utterance's Segment relation gives each phone's end time.
- Kokoro-82M, a neural synthesizer: ``neural.py``.
"""

from __future__ import annotations

import ctypes
import math
import pathlib
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .visemes import ESPEAK, FESTIVAL, IPA, VOICE_TABLES, Phone, strip_espeak

I16 = npt.NDArray[np.int16]

#: Festival voices by short name: (scheme function, Debian package, language).
FESTIVAL_VOICES = {
    "kal": ("voice_kal_diphone", "festvox-kallpc16k", "en"),
    "ked": ("voice_ked_diphone", "festvox-kdlpc16k", "en"),
    "slt": ("voice_cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "en"),
    "lp": ("voice_lp_diphone", "festvox-italp16k", "it"),
    "pc": ("voice_pc_diphone", "festvox-itapc16k", "it"),
    "dita": ("voice_czech_dita", "festvox-czech-dita", "cs"),
    "machac": ("voice_czech_machac", "festvox-czech-machac", "cs"),
    "ph": ("voice_czech_ph", "festvox-czech-ph", "cs"),
    "krb": ("voice_czech_krb", "festvox-czech-krb", "cs"),
    "lj": ("voice_suo_fi_lj_diphone", "festvox-suopuhe-lj", "fi"),
    "mv": ("voice_hy_fi_mv_diphone", "festvox-suopuhe-mv", "fi"),
    "ona": ("voice_upc_ca_ona_hts", "festvox-ca-ona-hts", "ca"),
    "nsh": ("voice_msu_ru_nsh_clunits", "festvox-ru", "ru"),
    # festvox-mr-nsk and festvox-te-nsk carry the same diphone database (one speaker): Hindi only.
    "nsk": ("voice_hindi_NSK_diphone", "festvox-hi-nsk", "hi"),
}


def resample_pcm(audio: I16, rate: int, to: int) -> I16:
    """PCM16 ``audio`` at ``rate`` resampled to ``to`` Hz (soxr when installed, else scipy)."""
    if rate == to:
        return audio
    x = audio.astype(np.float64) / 32768.0
    try:
        import soxr

        y = soxr.resample(x, rate, to)
    except ImportError:
        from scipy import signal

        g = math.gcd(to, rate)
        y = signal.resample_poly(x, to // g, rate // g)
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


@dataclass
class Utterance:
    """Synthesized speech: PCM16 mono, its rate, its phones, and where it came from."""

    audio: I16
    rate: int
    phones: list[Phone]
    source: str  # "espeak", "festival", "flite", "kokoro" or "piper"
    voice: str
    text: str
    meta: dict[str, float] = field(default_factory=dict)

    @property
    def table(self) -> dict[str, tuple[str, ...]]:
        """The phoneme-to-viseme table for this utterance's phone alphabet."""
        if self.source == "espeak":
            return ESPEAK
        if self.source in ("kokoro", "piper"):
            return IPA
        return VOICE_TABLES.get(self.voice, FESTIVAL)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.rate


# ---------------------------------------------------------------------------------------------- espeak

_EVENT_END_LIST, _EVENT_PHONEME, _EVENT_END = 0, 7, 5
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
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


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Espeak:
    """The espeak-ng library of the ``espeakng-loader`` wheel (one per process: it is global)."""

    _instance: Espeak | None = None

    def __init__(self) -> None:
        import espeakng_loader  # the evaluation dependency; imported late so the module loads without it

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.rate = int(self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_PHONEME_EVENTS))
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: list[I16] = []
        self._events: list[tuple[int, int, str]] = []
        self._callback = _Callback(self._on_synth)  # kept alive as long as the library may call it
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip

    @classmethod
    def get(cls) -> Espeak:
        """The process's instance, created on first use."""
        if cls._instance is None:
            cls._instance = Espeak()
        return cls._instance

    @property
    def library(self) -> ctypes.CDLL:
        """The loaded libespeak-ng (for calls beyond synthesis, e.g. ``espeak_TextToPhonemes``)."""
        return self._lib

    @staticmethod
    def available() -> bool:
        """Whether the ``espeakng-loader`` wheel is installed."""
        try:
            import espeakng_loader  # noqa: F401
        except ImportError:
            return False
        return True

    def _on_synth(self, wav: ctypes._Pointer[ctypes.c_short], count: int, events: ctypes._Pointer[_Event]) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).astype(np.int16).copy())
        i = 0
        while events[i].type != _EVENT_END_LIST:
            ev = events[i]
            name = ev.id.string.decode("ascii", "replace") if ev.type == _EVENT_PHONEME else ""
            self._events.append((ev.type, ev.audio_position, name))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50) -> Utterance:
        """Speak ``text`` with ``voice`` (e.g. ``en-us+f3``); rate in words per minute, pitch 0-100."""
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak has no voice {voice!r}")
        self._lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, pitch_range, 0)
        self._chunks, self._events = [], []
        data = text.encode()
        self._lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)  # POS_CHARACTER, espeakCHARS_UTF8
        self._lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        duration = len(audio) / self.rate
        marks = [(pos / 1000.0, name) for kind, pos, name in self._events if kind == _EVENT_PHONEME]
        phones = []
        for i, (start, name) in enumerate(marks):
            end = marks[i + 1][0] if i + 1 < len(marks) else duration
            if end > start:
                phones.append(Phone(name, start, min(end, duration)))
        phones = with_closures(phones, audio, self.rate)
        meta = {"rate": float(rate), "pitch": float(pitch), "range": float(pitch_range)}
        return Utterance(audio, self.rate, phones, "espeak", voice, text, meta)


#: espeak phonemes with a closure before their release.
ESPEAK_STOPS = frozenset({"p", "b", "t", "d", "k", "g", "tS", "dZ", "t#", "d#", "t2", "d2", "t["})
CLOSURE_DROP_DB = 15.0  # a closure is this far below the peak of the sound before it
CLOSURE_MAX = 0.15  # seconds


def with_closures(phones: list[Phone], audio: I16, rate: int) -> list[Phone]:
    """espeak's event for a stop marks its release; move the start back to the closure.

    espeak renders a stop's closure (silence, or a weak voice bar) at the end of the sound before
    it, so its phoneme event comes at the burst. The lips close (p, b) or the tongue seals (t, d,
    k, g) at the closure: walking back from the event while the signal stays at least
    ``CLOSURE_DROP_DB`` below the previous sound's peak finds where it starts.
    """
    hop = max(1, rate // 400)  # 2.5 ms
    x = audio.astype(np.float64) / 32768.0
    n = len(x) // hop
    energy = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12) if n else np.zeros(0)
    out = list(phones)
    for i in range(1, len(out)):
        if strip_espeak(out[i].symbol) not in ESPEAK_STOPS:
            continue
        prev = out[i - 1]
        a, b = int(prev.start * rate) // hop, int(out[i].start * rate) // hop
        if b - a < 4 or b > n:
            continue
        peak = float(energy[a:b].max())
        limit = max(a + (b - a) // 3, b - int(CLOSURE_MAX * rate) // hop)
        j = b
        while j > limit and energy[j - 1] < peak - CLOSURE_DROP_DB:
            j -= 1
        if j < b:
            t = j * hop / rate
            out[i - 1] = Phone(prev.symbol, prev.start, t)
            out[i] = Phone(out[i].symbol, t, out[i].end)
    return out


# -------------------------------------------------------------------------------------------- festival


def festival_available(voice: str = "kal") -> bool:
    """Whether the festival binary and a voice (short name of :data:`FESTIVAL_VOICES`) are installed."""
    if shutil.which("festival") is None:
        return False
    function = FESTIVAL_VOICES[voice][0]
    name = function.removeprefix("voice_")
    return any(pathlib.Path("/usr/share/festival/voices").glob(f"*/{name}"))  # any voice folder of that name


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", " ").replace('"', " ") + '"'


def _read_wav(path: pathlib.Path) -> tuple[I16, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: not 16-bit")
        audio = np.frombuffer(w.readframes(w.getnframes()), "<i2")
        if w.getnchannels() > 1:
            audio = audio.reshape(-1, w.getnchannels())[:, 0]
        return audio.astype(np.int16), w.getframerate()


def _read_segs(path: pathlib.Path) -> list[Phone]:
    phones: list[Phone] = []
    start = 0.0
    body = path.read_text().split("#", 1)[-1]
    for line in body.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        end = float(parts[0])
        phones.append(Phone(parts[2], start, end))
        start = end
    return phones


def festival_batch(texts: Sequence[str], voice: str = "kal", stretch: Sequence[float] | None = None) -> list[Utterance]:
    """Speak each text with a festival voice in one festival process.

    ``stretch`` gives each text a ``Duration_Stretch`` (1.0 = the voice's own pace; diphone voices).
    """
    function = FESTIVAL_VOICES[voice][0]
    stretch = list(stretch) if stretch is not None else [1.0] * len(texts)
    with tempfile.TemporaryDirectory(prefix="lipsync-festival-") as tmp:
        root = pathlib.Path(tmp)
        lines = [f"({function})"]
        for i, (text, factor) in enumerate(zip(texts, stretch, strict=True)):
            lines += [
                f"(Parameter.set 'Duration_Stretch {factor:.3f})",
                f"(set! u (Utterance Text {_scheme_string(text)}))",
                "(utt.synth u)",
                f'(utt.save.wave u "{root}/{i}.wav" \'riff)',
                f'(utt.save.segs u "{root}/{i}.segs")',
            ]
        script = root / "batch.scm"
        script.write_text("\n".join(lines) + "\n")
        subprocess.run(["festival", "-b", str(script)], check=True, capture_output=True, timeout=3600)
        out = []
        for i, text in enumerate(texts):
            audio, rate = _read_wav(root / f"{i}.wav")
            phones = _read_segs(root / f"{i}.segs")
            out.append(Utterance(audio, rate, phones, "festival", voice, text, {"stretch": stretch[i]}))
    return out


# ----------------------------------------------------------------------------------------------- flite

#: flite voices by short name: (library suffix, kind). kal16 is a diphone voice, the others clustergen.
FLITE_VOICES = {"awb": "cmu_us_awb", "rms": "cmu_us_rms", "slt": "cmu_us_slt", "kal16": "cmu_us_kal16"}


class _Wave(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class Flite:
    """libflite and its English voices through ctypes (one per process)."""

    _instance: Flite | None = None

    def __init__(self) -> None:
        import ctypes.util

        path = ctypes.util.find_library("flite")
        if path is None:
            raise RuntimeError("libflite is not installed (Debian: flite, libflite1)")
        mode = ctypes.RTLD_GLOBAL
        for dep in ("flite", "flite_usenglish", "flite_cmulex"):
            ctypes.CDLL(ctypes.util.find_library(dep), mode=mode)
        self._lib = ctypes.CDLL(path, mode=mode)
        self._lib.flite_init()
        self._lib.flite_synth_text.restype = ctypes.c_void_p
        self._lib.flite_synth_text.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        self._lib.utt_wave.restype = ctypes.POINTER(_Wave)
        self._lib.utt_wave.argtypes = [ctypes.c_void_p]
        self._lib.utt_relation.restype = ctypes.c_void_p
        self._lib.utt_relation.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib.relation_head.restype = ctypes.c_void_p
        self._lib.relation_head.argtypes = [ctypes.c_void_p]
        self._lib.item_next.restype = ctypes.c_void_p
        self._lib.item_next.argtypes = [ctypes.c_void_p]
        self._lib.item_feat_float.restype = ctypes.c_float
        self._lib.item_feat_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib.item_feat_string.restype = ctypes.c_char_p
        self._lib.item_feat_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib.delete_utterance.argtypes = [ctypes.c_void_p]
        self._lib.flite_feat_set_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]
        self._voices: dict[str, int] = {}

    @classmethod
    def get(cls) -> Flite:
        """The process's instance, created on first use."""
        if cls._instance is None:
            cls._instance = Flite()
        return cls._instance

    @staticmethod
    def available(voice: str = "awb") -> bool:
        """Whether libflite and the voice's library are installed."""
        import ctypes.util

        return (
            ctypes.util.find_library("flite") is not None
            and ctypes.util.find_library(f"flite_{FLITE_VOICES[voice]}") is not None
        )

    def _voice(self, name: str) -> int:
        if name not in self._voices:
            import ctypes.util

            lib = ctypes.CDLL(ctypes.util.find_library(f"flite_{FLITE_VOICES[name]}"), mode=ctypes.RTLD_GLOBAL)
            register = getattr(lib, f"register_{FLITE_VOICES[name]}")
            register.restype = ctypes.c_void_p
            register.argtypes = [ctypes.c_char_p]
            self._voices[name] = int(register(None))
        return self._voices[name]

    def synthesize(self, text: str, voice: str = "awb", stretch: float = 1.0, pitch: float | None = None) -> Utterance:
        """Speak ``text`` with a flite voice; ``stretch`` > 1 slows it down; ``pitch`` a mean F0 in Hz."""
        vox = self._voice(voice)
        features = ctypes.cast(vox + ctypes.sizeof(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p))[0]
        self._lib.flite_feat_set_float(features, b"duration_stretch", stretch)
        if pitch is not None:
            self._lib.flite_feat_set_float(features, b"int_f0_target_mean", pitch)
        utt = self._lib.flite_synth_text(text.encode(), vox)
        if not utt:
            raise RuntimeError(f"flite failed on {text!r}")
        try:
            wave_ = self._lib.utt_wave(utt).contents
            rate = int(wave_.sample_rate)
            audio = np.ctypeslib.as_array(wave_.samples, (wave_.num_samples * wave_.num_channels,)).copy()
            if wave_.num_channels > 1:
                audio = audio.reshape(-1, wave_.num_channels)[:, 0].copy()
            phones: list[Phone] = []
            item = self._lib.relation_head(self._lib.utt_relation(utt, b"Segment"))
            start = 0.0
            while item:
                name = self._lib.item_feat_string(item, b"name").decode()
                end = float(self._lib.item_feat_float(item, b"end"))
                if end > start:
                    phones.append(Phone(name, start, end))
                start = max(start, end)
                item = self._lib.item_next(item)
        finally:
            self._lib.delete_utterance(utt)
        duration = len(audio) / rate
        phones = [Phone(p.symbol, p.start, min(p.end, duration)) for p in phones if p.start < duration]
        meta = {"stretch": float(stretch), "pitch": float(pitch or 0.0)}
        return Utterance(audio.astype(np.int16), rate, phones, "flite", voice, text, meta)
