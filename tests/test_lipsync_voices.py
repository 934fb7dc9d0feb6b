"""The lip-sync harness's phone tables cover what festival's non-English training voices say.

A phone a table does not know drops its whole training utterance (``dataset.festival_train``
prints it and goes on), so a gap would silently thin a voice out. These tests speak the
pseudo-words each voice is trained on and check every phone maps to a viseme. They need the
festival voices (Debian packages, docs/lipsync.md) and skip where a voice is not installed.
"""

from __future__ import annotations

import pathlib
import re
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO / "bench") not in sys.path:
    sys.path.insert(0, str(REPO / "bench"))

from lipsync import corpus, dataset, synth, visemes  # noqa: E402

FOREIGN = (*dataset.FESTIVAL_FOREIGN_VOICES, "nsk")


@pytest.mark.parametrize("voice", FOREIGN)
def test_pseudo_words_map_to_visemes(voice: str) -> None:
    if not synth.festival_available(voice):
        pytest.skip(f"festival voice {voice} ({synth.FESTIVAL_VOICES[voice][1]}) not installed")
    lang = synth.FESTIVAL_VOICES[voice][2]
    utts = synth.festival_batch(corpus.foreign_texts(lang, 4, seed=11), voice)
    seen: set[str] = set()
    for utt in utts:
        assert utt.phones, utt.text
        for phone in utt.phones:
            vis = visemes.lookup(phone.symbol, utt.table)  # raises KeyError on a phone it does not know
            seen.update(v for v in vis if v in visemes.VISEME_INDEX)
        segs = visemes.segments(utt.phones, utt.table)
        assert segs[-1].end == pytest.approx(utt.phones[-1].end)
    # Pseudo-words of 4-10 words give lip closures, open vowels and pauses in every language.
    assert {"sil", "PP", "aa"} <= seen, sorted(seen)


def test_a_voice_counts_as_installed_only_when_its_directory_is_there(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(synth.FESTIVAL_VOICES, "none", ("voice_no_such_voice_diphone", "no-such-package", "en"))
    assert not synth.festival_available("none")  # with festival installed or not
    kal = pathlib.Path("/usr/share/festival/voices/english/kal_diphone")
    assert synth.festival_available("kal") == (kal.is_dir() and synth.shutil.which("festival") is not None)


def test_hindi_table_covers_the_phone_set() -> None:
    phones = pathlib.Path("/usr/share/festival/hindi_scm/hindi_phones.scm")
    if not phones.is_file():
        pytest.skip("festival-hi (festvox-hi-nsk) not installed")
    body = phones.read_text().split("(defPhoneSet", 1)[1].split("PhoneSet.silences", 1)[0]
    # A phone: a name, then its eight features, the first + or - (vowel or not): "(a  + s 3 3 - 0 0 0 )".
    names = re.findall(r"^\s*\(([^\s()]+)\s+[+-](?:\s+[^\s()]+){7}\s*\)", body, re.MULTILINE)
    assert len(names) > 40
    missing = [n for n in names if n not in visemes.HINDI]
    assert not missing
