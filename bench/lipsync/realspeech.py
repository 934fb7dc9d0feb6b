"""Approximate phone timing for the real recording, from pocketsphinx forced alignment.

The recording (``../shared/data/official-16000.json``, never copied into the repository) comes
without labels. pocketsphinx (optional: ``pip install pocketsphinx``; its wheel ships an English
acoustic model and dictionary) aligns it to :data:`TRANSCRIPT`, a transcript written for this
harness from listening through pocketsphinx's own word recognition and correcting it by sense.
The result is an *approximate* truth: HMM alignment boundaries are good to a frame or two,
phones last at least 30 ms, and pocketsphinx's dictionary has no stress marks, so its ``AH`` is
read as a schwa (``ax``) when it lasts 50 ms or less and as the strut vowel (``ah``) otherwise.
Scores against it say how the engine fares on real speech, not how it fares exactly.
"""

from __future__ import annotations

import base64
import json
import pathlib

import numpy as np

from .dataset import Labelled, label
from .synth import Utterance
from .visemes import Phone

TRANSCRIPT = (
    "once upon a time in a land full of wonders lived a kind little fox named finley "
    "one day while wandering through the sparkling forest finley discovered a hidden door "
    "beneath the glowing tree with a heart full of curiosity finley opened the door and stepped "
    "into a whole world of flying butterflies singing flowers and stars that twinkle like diamonds"
)


def available() -> bool:
    """Whether pocketsphinx is installed."""
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def load(path: pathlib.Path) -> tuple[np.ndarray, int]:
    """The recording's PCM16 samples and rate."""
    doc = json.loads(path.read_text())
    audio = np.frombuffer(base64.b64decode(doc["audio_base64"]), "<i2").astype(np.int16)
    return audio, int(doc["sample_rate"])


def align(audio: np.ndarray, transcript: str) -> list[Phone]:
    """pocketsphinx's two-pass forced alignment of 16 kHz PCM16 ``audio`` to ``transcript``.

    Phones carry pocketsphinx's ARPAbet names in lower case (``pau`` for silence, ``ax`` for a
    short ``ah``), in seconds.
    """
    from pocketsphinx import Decoder

    raw = audio.astype(np.int16).tobytes()
    decoder = Decoder(samprate=16000, bestpath=False, loglevel="FATAL")
    decoder.set_align_text(transcript)
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(raw, full_utt=True)
    decoder.end_utt()
    return [_phone(ph.name, ph.start, ph.duration) for word in decoder.get_alignment() for ph in word]


def recognize(audio: np.ndarray) -> list[Phone]:
    """pocketsphinx's all-phone recognition of 16 kHz PCM16 ``audio`` (no transcript, whole utterance).

    The phones pocketsphinx hears, under its English phone-trigram model, named as by :func:`align`;
    its noise and filler units count as silence.
    """
    from pocketsphinx import Decoder, get_model_path

    phone_lm = pathlib.Path(get_model_path()) / "en-us" / "en-us-phone.lm.bin"
    decoder = Decoder(samprate=16000, allphone=str(phone_lm), lm=None, lw=2.0, beam=1e-20, pbeam=1e-20,
                      bestpath=False, loglevel="FATAL")  # fmt: skip
    decoder.start_utt()
    decoder.process_raw(audio.astype(np.int16).tobytes(), full_utt=True)
    decoder.end_utt()
    return [_phone(seg.word, seg.start_frame, seg.end_frame - seg.start_frame + 1) for seg in decoder.seg()]


def _phone(name: str, start: int, frames: int) -> Phone:
    """A pocketsphinx unit (10 ms frames) as a phone in seconds: ``sil`` and fillers are ``pau``."""
    name = name.lower()
    if name == "sil" or name.startswith(("+", "<")):
        name = "pau"
    elif name == "ah" and frames <= 5:
        name = "ax"
    return Phone(name, start * 0.01, (start + frames) * 0.01)


def aligned(path: pathlib.Path, transcript: str = TRANSCRIPT) -> Labelled:
    """The recording with phones from pocketsphinx's two-pass forced alignment to ``transcript``."""
    audio, rate = load(path)
    if rate != 16000:
        raise ValueError("the alignment model wants 16 kHz")
    phones = align(audio, transcript)
    duration = len(audio) / rate
    if phones and phones[-1].end < duration:
        phones.append(Phone("pau", phones[-1].end, duration))
    utt = Utterance(audio, rate, phones, "festival", "real (pocketsphinx alignment)", transcript)
    return label(utt)
