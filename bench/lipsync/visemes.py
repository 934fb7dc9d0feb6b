"""Phonemes to the 15 Oculus visemes, and the frame labels the harness scores against.

The tables here are the ground-truth convention documented in ``docs/lipsync.md``; the training
script labels its data with the same functions, so the model learns exactly what is scored.

Two phoneme alphabets are read: espeak-ng's English mnemonics (``'aI``, ``tS``, ``_:`` ...; stress
marks are stripped) and festival's ``radio`` phone set (``ay``, ``ch``, ``pau`` ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")
VISEME_INDEX = {name: i for i, name in enumerate(VISEMES)}
SIL, PP = 0, 1

#: How far the jaw is open for each viseme, 0 (closed) .. 1 (wide open): the truth for jawOpen.
OPENNESS = {
    "sil": 0.0, "PP": 0.0, "FF": 0.15, "TH": 0.25, "DD": 0.3, "kk": 0.35, "CH": 0.25, "SS": 0.15,
    "nn": 0.3, "RR": 0.3, "aa": 1.0, "E": 0.6, "I": 0.4, "O": 0.7, "U": 0.3,
}  # fmt: skip
OPENNESS_TABLE = np.array([OPENNESS[v] for v in VISEMES], np.float32)

# A phoneme maps to one viseme, to two (a diphthong: the first takes DIPHTHONG_SPLIT of its time),
# or to "next": /h/ takes the shape of the sound after it (sil when nothing voiced follows).
# espeak's bare modifier events (";" palatalization, stripped to "") extend the phone before them.
DIPHTHONG_SPLIT = 0.55
NEXT = "next"
PREVIOUS = "previous"

ESPEAK: dict[str, tuple[str, ...]] = {
    # consonants
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "m-": ("PP",),
    "f": ("FF",), "v": ("FF",),
    "T": ("TH",), "D": ("TH",),
    "t": ("DD",), "d": ("DD",), "t#": ("DD",), "d#": ("DD",), "?": ("DD",), "t2": ("DD",), "d2": ("DD",),
    "t[": ("DD",),
    "k": ("kk",), "g": ("kk",), "x": ("kk",),
    "tS": ("CH",), "dZ": ("CH",), "S": ("CH",), "Z": ("CH",),
    "s": ("SS",), "z": ("SS",),
    "n": ("nn",), "n-": ("nn",), "N": ("nn",), "l": ("nn",), "l/": ("nn",), "@L": ("nn",), "L": ("nn",),
    "r": ("RR",), "r-": ("RR",), "3": ("RR",), "3:": ("RR",), "@r": ("RR",), "IR": ("RR",), "VR": ("RR",),
    "w": ("U",), "w#": ("U",), "j": ("I",), "h": (NEXT,), "hw": ("U",),
    # vowels
    "a": ("aa",), "a#": ("aa",), "A:": ("aa",), "A@": ("aa",), "aa": ("aa",), "V": ("aa",), "0": ("aa",),
    "A": ("aa",),
    "@": ("E",), "@2": ("E",), "@5": ("E",), "@-": ("E",), "a2": ("E",),
    "E": ("E",), "e": ("E",), "e@": ("E",), "eI": ("E",), "E2": ("E",), "E3": ("E",),
    "I": ("I",), "I2": ("I",), "I#": ("I",), "i": ("I",), "i:": ("I",), "i@": ("I",), "i@3": ("I",),
    "O:": ("O",), "O": ("O",), "O@": ("O",), "o@": ("O",), "oU": ("O",), "oU#": ("O",), "0@": ("O",),
    "O2": ("O",),
    "U": ("U",), "u:": ("U",), "U@": ("U",), "u": ("U",), "u@": ("U",),
    "aI": ("aa", "I"), "aI2": ("aa", "I"), "aI@": ("aa", "I"), "aI3": ("aa", "I"),
    "aU": ("aa", "U"), "aU@": ("aa", "U"), "OI": ("O", "I"),
}  # fmt: skip

FESTIVAL: dict[str, tuple[str, ...]] = {
    "pau": ("sil",), "h#": ("sil",), "brth": ("sil",), "#": ("sil",),
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "em": ("PP",),
    "f": ("FF",), "v": ("FF",),
    "th": ("TH",), "dh": ("TH",),
    "t": ("DD",), "d": ("DD",), "dx": ("DD",),
    "k": ("kk",), "g": ("kk",),
    "ch": ("CH",), "jh": ("CH",), "sh": ("CH",), "zh": ("CH",),
    "s": ("SS",), "z": ("SS",),
    "n": ("nn",), "en": ("nn",), "ng": ("nn",), "l": ("nn",), "el": ("nn",),
    "r": ("RR",), "er": ("RR",), "axr": ("RR",),
    "w": ("U",), "y": ("I",), "hh": (NEXT,),
    "aa": ("aa",), "ae": ("aa",), "ah": ("aa",), "ax": ("E",),
    "eh": ("E",), "ey": ("E",),
    "ih": ("I",), "iy": ("I",),
    "ao": ("O",), "ow": ("O",),
    "uh": ("U",), "uw": ("U",),
    "ay": ("aa", "I"), "aw": ("aa", "U"), "oy": ("O", "I"),
}  # fmt: skip


# Festival's non-English voices (training only: they add real-recording voices of both sexes and
# a child). Stress digits and length marks are stripped before the lookup; trilled and tapped r
# take DD (tongue tip, lips neutral), not RR (the rounded English approximant).
ITALIAN: dict[str, tuple[str, ...]] = {
    "#": ("sil",), "a": ("aa",), "e": ("E",), "E": ("E",), "i": ("I",), "o": ("O",), "O": ("O",), "u": ("U",),
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "f": ("FF",), "v": ("FF",), "t": ("DD",), "d": ("DD",),
    "k": ("kk",), "g": ("kk",), "s": ("SS",), "z": ("SS",), "ts": ("SS",), "dz": ("SS",),
    "S": ("CH",), "tS": ("CH",), "dZ": ("CH",), "n": ("nn",), "J": ("nn",), "l": ("nn",), "L": ("nn",),
    "r": ("DD",), "j": ("I",), "w": ("U",),
}  # fmt: skip
CZECH: dict[str, tuple[str, ...]] = {
    "#": ("sil",), "_": ("sil",), "a": ("aa",), "e": ("E",), "i": ("I",), "o": ("O",), "u": ("U",),
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "f": ("FF",), "v": ("FF",), "t": ("DD",), "d": ("DD",),
    "t~": ("DD",), "d~": ("DD",), "k": ("kk",), "g": ("kk",), "ch": ("kk",), "s": ("SS",), "z": ("SS",),
    "c": ("SS",), "n": ("nn",), "n~": ("nn",), "l": ("nn",), "r": ("DD",), "j": ("I",), "h": (NEXT,),
}  # fmt: skip
FINNISH: dict[str, tuple[str, ...]] = {
    "#": ("sil",), "a": ("aa",), "e": ("E",), "i": ("I",), "o": ("O",), "u": ("U",), "y": ("U",),
    "p": ("PP",), "b": ("PP",), "m": ("PP",), "f": ("FF",), "v": ("FF",), "t": ("DD",), "d": ("DD",),
    "k": ("kk",), "g": ("kk",), "s": ("SS",), "n": ("nn",), "l": ("nn",), "r": ("DD",), "j": ("I",),
    "h": (NEXT,),
}  # fmt: skip
CATALAN: dict[str, tuple[str, ...]] = {
    "pau": ("sil",), "a": ("aa",), "ax": ("E",), "e": ("E",), "E": ("E",), "i": ("I",), "o": ("O",),
    "O": ("O",), "u": ("U",), "p": ("PP",), "b": ("PP",), "m": ("PP",), "f": ("FF",), "v": ("FF",),
    "t": ("DD",), "d": ("DD",), "k": ("kk",), "g": ("kk",), "s": ("SS",), "z": ("SS",), "S": ("CH",),
    "Z": ("CH",), "n": ("nn",), "J": ("nn",), "l": ("nn",), "L": ("nn",), "r": ("DD",), "rr": ("DD",),
    "j": ("I",), "w": ("U",),
}  # fmt: skip
RUSSIAN: dict[str, tuple[str, ...]] = {
    "pau": ("sil",), "aa": ("aa",), "a": ("aa",), "ee": ("E",), "e": ("E",), "ae": ("E",), "ay": ("E",),
    "ii": ("I",), "i": ("I",), "yy": ("I",), "y": ("I",), "oo": ("O",), "uu": ("U",), "u": ("U",),
    "ur": ("U",), "p": ("PP",), "pp": ("PP",), "b": ("PP",), "bb": ("PP",), "m": ("PP",), "mm": ("PP",),
    "f": ("FF",), "ff": ("FF",), "v": ("FF",), "vv": ("FF",), "t": ("DD",), "tt": ("DD",), "d": ("DD",),
    "dd": ("DD",), "k": ("kk",), "kk": ("kk",), "g": ("kk",), "gg": ("kk",), "h": ("kk",), "hh": ("kk",),
    "s": ("SS",), "ss": ("SS",), "z": ("SS",), "zz": ("SS",), "c": ("SS",), "ch": ("CH",), "sh": ("CH",),
    "sch": ("CH",), "zh": ("CH",), "n": ("nn",), "nn": ("nn",), "l": ("nn",), "ll": ("nn",), "r": ("DD",),
    "rr": ("DD",), "j": ("I",),
}  # fmt: skip
# festival's Hindi diphone voice (festvox-hi-nsk; its phone set, hindi_phones.scm): ``th dh tth ddh``
# are the dental stops (not English th), ``T D td`` the retroflex ones, ``R`` the retroflex flap,
# ``v`` the labiodental approximant; the short vowel ``a`` is the open schwa, as English ``ah``.
HINDI: dict[str, tuple[str, ...]] = {
    "pau": ("sil",), "a": ("aa",), "aa": ("aa",), "@": ("aa",), "ih": ("I",), "iy": ("I",), "uh": ("U",),
    "uw": ("U",), "eh": ("E",), "ee": ("E",), "ay": ("E",), "oh": ("O",), "oo": ("O",), "aw": ("O",),
    "w": ("U",), "p": ("PP",), "b": ("PP",), "bh": ("PP",), "m": ("PP",), "f": ("FF",), "v": ("FF",),
    "t": ("DD",), "th": ("DD",), "dh": ("DD",), "tth": ("DD",), "ddh": ("DD",), "T": ("DD",), "D": ("DD",),
    "td": ("DD",), "r": ("DD",), "R": ("DD",), "k": ("kk",), "g": ("kk",), "kh": ("kk",), "gh": ("kk",),
    "x": ("kk",), "ch": ("CH",), "j": ("CH",), "sh": ("CH",), "zh": ("CH",), "s": ("SS",), "n": ("nn",),
    "N": ("nn",), "l": ("nn",), "L": ("nn",), "y": ("I",), "h": (NEXT,), "ksh": ("kk", "CH"),
    "sri": ("CH", "DD"),
}  # fmt: skip
# espeak-ng's IPA for English (what the Kokoro voices are fed: ``neural.py``); stress marks stripped.
# The conventions follow the espeak table: r-coloured vowels keep their vowel (``ɛɹ`` E, ``ɑːɹ`` aa)
# except ``ɪɹ`` and ``ɜː``/``ɚ`` (RR), syllabic l is nn, the flap and glottal stop are DD.
IPA: dict[str, tuple[str, ...]] = {
    "_": ("sil",),
    "p": ("PP",), "b": ("PP",), "m": ("PP",),
    "f": ("FF",), "v": ("FF",),
    "θ": ("TH",), "ð": ("TH",),
    "t": ("DD",), "d": ("DD",), "ɾ": ("DD",), "ʔ": ("DD",),
    "k": ("kk",), "ɡ": ("kk",), "g": ("kk",), "x": ("kk",),
    "tʃ": ("CH",), "dʒ": ("CH",), "ʃ": ("CH",), "ʒ": ("CH",),
    "s": ("SS",), "z": ("SS",),
    "n": ("nn",), "ŋ": ("nn",), "l": ("nn",), "n̩": ("nn",), "l̩": ("nn",), "əl": ("nn",),
    "ɹ": ("RR",), "r": ("RR",), "ɚ": ("RR",), "ɜː": ("RR",), "ɜ": ("RR",), "ɪɹ": ("RR",),
    "w": ("U",), "j": ("I",), "h": (NEXT,),
    "æ": ("aa",), "a": ("aa",), "ɑː": ("aa",), "ɑ": ("aa",), "ʌ": ("aa",), "ɒ": ("aa",), "ɐ": ("aa",),
    "ɑːɹ": ("aa",),
    "ə": ("E",), "ɛ": ("E",), "e": ("E",), "eɪ": ("E",), "ɛɹ": ("E",),
    "ɪ": ("I",), "i": ("I",), "iː": ("I",), "ᵻ": ("I",), "iə": ("I",),
    "ɔː": ("O",), "ɔ": ("O",), "o": ("O",), "oʊ": ("O",), "ɔːɹ": ("O",), "oːɹ": ("O",),
    "ʊ": ("U",), "uː": ("U",), "u": ("U",), "ʊɹ": ("U",),
    "aɪ": ("aa", "I"), "aɪə": ("aa", "I"), "aɪɚ": ("aa", "I"), "aʊ": ("aa", "U"), "ɔɪ": ("O", "I"),
}  # fmt: skip

#: Tables by festival voice; voices not listed use FESTIVAL (US English, radio phone set).
VOICE_TABLES = {
    "lp": ITALIAN, "pc": ITALIAN, "dita": CZECH, "machac": CZECH, "ph": CZECH, "krb": CZECH,
    "lj": FINNISH, "mv": FINNISH, "ona": CATALAN, "nsh": RUSSIAN, "nsk": HINDI,
}  # fmt: skip


@dataclass(frozen=True)
class Phone:
    """One phone of an utterance: its symbol, its viseme(s), start and end in seconds."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """A stretch of one viseme in seconds; ``phone`` is the symbol it came from."""

    viseme: int
    start: float
    end: float
    phone: str


def strip_espeak(symbol: str) -> str:
    """An espeak phoneme mnemonic without stress and length marks."""
    return symbol.lstrip("',=%").rstrip(";")


def is_pause(symbol: str) -> bool:
    """Whether an espeak or festival symbol is a pause."""
    return symbol.startswith("_") or symbol in ("pau", "h#", "brth", "#")


def lookup(symbol: str, table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The viseme(s) of one phone; raises KeyError for a symbol the table does not know."""
    if table is ESPEAK:
        symbol = strip_espeak(symbol)
    elif table is IPA:
        symbol = symbol.lstrip("ˈˌ")
    if symbol == "" and table is ESPEAK:
        return (PREVIOUS,)
    if is_pause(symbol):
        return ("sil",)
    if symbol not in table and table is ESPEAK:
        symbol = symbol.rstrip("~#0123456789") or symbol  # nasalized or numbered allophones
    elif symbol not in table and table not in (FESTIVAL, IPA):
        symbol = symbol.rstrip("1:") or symbol  # stress digits, length marks
    return table[symbol]


def segments(phones: Sequence[Phone], table: dict[str, tuple[str, ...]]) -> list[Segment]:
    """Viseme segments of an utterance (diphthongs split, /h/ resolved to what follows it)."""
    mapped = [lookup(p.symbol, table) for p in phones]
    out: list[Segment] = []
    for i, (phone, vis) in enumerate(zip(phones, mapped, strict=True)):
        if vis == (PREVIOUS,):
            if out:
                last = out.pop()
                out.append(Segment(last.viseme, last.start, phone.end, last.phone))
                continue
            vis = ("sil",)
        if vis == (NEXT,):
            nxt = next((m for m in mapped[i + 1 :] if m not in ((NEXT,), (PREVIOUS,))), ("sil",))
            vis = (nxt[0],)
        if len(vis) == 2:
            mid = phone.start + DIPHTHONG_SPLIT * (phone.end - phone.start)
            out.append(Segment(VISEME_INDEX[vis[0]], phone.start, mid, phone.symbol))
            out.append(Segment(VISEME_INDEX[vis[1]], mid, phone.end, phone.symbol))
        else:
            out.append(Segment(VISEME_INDEX[vis[0]], phone.start, phone.end, phone.symbol))
    return out


def label_grid(
    segs: Sequence[Segment], duration: float, step: float, values: Sequence[int] | None = None
) -> npt.NDArray[np.int64]:
    """The viseme at the middle of each ``step``-second cell covering ``duration`` (sil, 0, outside).

    With ``values`` (one per segment), each segment's value instead of its viseme.
    """
    n = int(np.ceil(duration / step - 1e-9))
    labels = np.zeros(n, np.int64)
    for i, s in enumerate(segs):
        lo = int(np.ceil(s.start / step - 0.5))
        hi = int(np.ceil(s.end / step - 0.5))
        labels[max(lo, 0) : min(hi, n)] = s.viseme if values is None else values[i]
    return labels


#: Phone classes of the English alphabets (ESPEAK, FESTIVAL, IPA), finer than the visemes: voicing,
#: nasal against stop, glides against vowels, /h/, and the vowels of festival's radio set. Training
#: can use them as a second target beside the visemes (``scripts/train_lipsync.py --phones``).
PHONES = (
    "sil", "p", "b", "m", "f", "v", "th", "dh", "t", "d", "dx", "k", "g", "h", "ch", "jh", "sh", "zh",
    "s", "z", "n", "ng", "l", "r", "er", "w", "y",
    "aa", "ae", "ah", "ax", "eh", "ey", "ih", "iy", "ao", "ow", "uh", "uw",
)  # fmt: skip
PHONE_INDEX = {name: i for i, name in enumerate(PHONES)}
_RADIO = {name: name for name in PHONES if name not in ("sil", "y")} | {
    "pau": "sil", "h#": "sil", "brth": "sil", "#": "sil", "em": "m", "en": "n", "el": "l", "axr": "er",
    "hh": "h", "y": "y",
}  # fmt: skip
_ESPEAK_PHONES = {
    "p": "p", "b": "b", "m": "m", "m-": "m", "f": "f", "v": "v", "T": "th", "D": "dh",
    "t": "t", "d": "d", "t#": "t", "d#": "d", "t2": "t", "d2": "d", "t[": "t", "?": "dx",
    "k": "k", "g": "g", "x": "k", "tS": "ch", "dZ": "jh", "S": "sh", "Z": "zh", "s": "s", "z": "z",
    "n": "n", "n-": "n", "N": "ng", "l": "l", "l/": "l", "@L": "l", "L": "l",
    "r": "r", "r-": "r", "3": "er", "3:": "er", "@r": "er", "IR": "er", "VR": "er",
    "w": "w", "w#": "w", "hw": "w", "j": "y", "h": "h",
    "a": "ae", "a#": "ae", "A:": "aa", "A@": "aa", "aa": "aa", "A": "aa", "0": "aa", "V": "ah",
    "@": "ax", "@2": "ax", "@5": "ax", "@-": "ax", "a2": "ax", "E": "eh", "e": "eh", "e@": "eh",
    "E2": "eh", "E3": "eh", "eI": "ey", "I": "ih", "I2": "ih", "I#": "ih", "i": "iy", "i:": "iy",
    "i@": "iy", "i@3": "iy", "O:": "ao", "O": "ao", "O@": "ao", "o@": "ao", "0@": "ao", "O2": "ao",
    "oU": "ow", "oU#": "ow", "U": "uh", "U@": "uh", "u:": "uw", "u": "uw", "u@": "uw",
}  # fmt: skip
_IPA_PHONES = {
    "p": "p", "b": "b", "m": "m", "f": "f", "v": "v", "θ": "th", "ð": "dh", "t": "t", "d": "d",
    "ɾ": "dx", "ʔ": "dx", "k": "k", "ɡ": "g", "g": "g", "x": "k", "tʃ": "ch", "dʒ": "jh", "ʃ": "sh",
    "ʒ": "zh", "s": "s", "z": "z", "n": "n", "n̩": "n", "ŋ": "ng", "l": "l", "l̩": "l", "əl": "l",
    "ɹ": "r", "r": "r", "ɚ": "er", "ɜː": "er", "ɜ": "er", "ɪɹ": "er", "w": "w", "j": "y", "h": "h",
    "æ": "ae", "a": "ae", "ɑː": "aa", "ɑ": "aa", "ɒ": "aa", "ɑːɹ": "aa", "ʌ": "ah", "ɐ": "ah",
    "ə": "ax", "ɛ": "eh", "e": "eh", "ɛɹ": "eh", "eɪ": "ey", "ɪ": "ih", "ᵻ": "ih", "i": "iy",
    "iː": "iy", "iə": "iy", "ɔː": "ao", "ɔ": "ao", "ɔːɹ": "ao", "oːɹ": "ao", "o": "ow", "oʊ": "ow",
    "ʊ": "uh", "ʊɹ": "uh", "uː": "uw", "u": "uw",
}  # fmt: skip
# A diphthong's halves, and any symbol a table above lacks, take their viseme's typical phone.
_PHONE_OF_VISEME = {
    "sil": "sil", "PP": "p", "FF": "f", "TH": "th", "DD": "t", "kk": "k", "CH": "sh", "SS": "s",
    "nn": "n", "RR": "r", "aa": "aa", "E": "eh", "I": "ih", "O": "ao", "U": "uh",
}  # fmt: skip


def phone_of(segment: Segment, table: dict[str, tuple[str, ...]]) -> int:
    """The index in PHONES of a segment's phone, or -1 for an alphabet without phone classes.

    Only the English alphabets have them (``ESPEAK``, ``FESTIVAL``, ``IPA``); the other voices'
    segments get -1 (no phone target).
    """
    if table is ESPEAK:
        phones, symbol = _ESPEAK_PHONES, strip_espeak(segment.phone)
        symbol = symbol if symbol in phones else symbol.rstrip("~#0123456789")
    elif table is IPA:
        phones, symbol = _IPA_PHONES, segment.phone.lstrip("ˈˌ")
    elif table is FESTIVAL:
        phones, symbol = _RADIO, segment.phone
    else:
        return -1
    if is_pause(symbol) or segment.viseme == SIL:
        return PHONE_INDEX["sil"]
    if symbol in phones and len(lookup(segment.phone, table)) == 1:
        return PHONE_INDEX[phones[symbol]]
    return PHONE_INDEX[_PHONE_OF_VISEME[VISEMES[segment.viseme]]]


def phone_grid(
    segs: Sequence[Segment], table: dict[str, tuple[str, ...]], duration: float, step: float
) -> npt.NDArray[np.int64]:
    """Like ``label_grid``, the phone class (``phone_of``) at the middle of each cell: 0 (sil) outside
    the segments, -1 throughout for an alphabet without phone classes."""
    n = int(np.ceil(duration / step - 1e-9))
    if table not in (ESPEAK, FESTIVAL, IPA):
        return np.full(n, -1, np.int64)
    return label_grid(segs, duration, step, [phone_of(s, table) for s in segs])


def frame_truth(
    segs: Sequence[Segment], duration: float, fps: int = 25, sub: int = 8
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Per 1/fps frame: the viseme covering most of it, and its mean openness.

    Each frame is sampled at ``sub`` points; the majority viseme wins (a tie goes to a non-silent
    viseme, then to the lower index) and openness is the mean of the samples' openness.
    """
    fine = label_grid(segs, duration, 1.0 / (fps * sub))
    n = int(np.ceil(duration * fps - 1e-9))
    fine = np.concatenate([fine, np.zeros(n * sub - len(fine), np.int64)]).reshape(n, sub)
    counts = np.zeros((n, len(VISEMES)), np.int64)
    for j in range(sub):
        counts[np.arange(n), fine[:, j]] += 1
    counts *= 2
    counts[:, SIL] -= 1  # a tie with silence goes to the speech sound
    labels = counts.argmax(axis=1)
    openness = OPENNESS_TABLE[fine].mean(axis=1).astype(np.float32)
    return labels, openness
