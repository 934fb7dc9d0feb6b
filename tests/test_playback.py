"""Playback and the mixer alone: a fake clock and a fake scheduler, no GL, no network, no sleeping."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import numpy as np
import pytest

from avatarkit.animation import ChannelTimeline, MotionLayer
from avatarkit.audio import PaceClock
from avatarkit.codec import CANONICAL_NAMES
from avatarkit.errors import AvatarError
from avatarkit.events import ConversationState, StateReason
from avatarkit.mixer import Mixer
from avatarkit.playback import Playback, pcm16

RATE = 16000
JAW = CANONICAL_NAMES.index("jawOpen")


class FakeTime:
    """A clock that moves only when told, and a scheduler that runs what falls due as it moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def __call__(self) -> float:
        return self.now

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._due, (self.now + delay, next(self._order), fn))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._due and self._due[0][0] <= end:
            when, _, fn = heapq.heappop(self._due)
            self.now = max(self.now, when)
            fn()
        self.now = end


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def playback(fake: FakeTime) -> tuple[Playback, list[tuple[ConversationState, StateReason, str | None]]]:
    states: list[tuple[ConversationState, StateReason, str | None]] = []
    mixer = Mixer(CANONICAL_NAMES, seed=1)
    p = Playback(
        mixer,
        lambda s, r, c: states.append((s, r, c)),
        scheduler=fake,
        pace=PaceClock(now=fake),
        default_rate=lambda: RATE,
    )
    return p, states


def tone(seconds: float, level: int = 8000) -> np.ndarray:
    n = round(seconds * RATE)
    return (level * np.sin(2 * np.pi * 220 * np.arange(n) / RATE)).astype(np.int16)


def jaw_motion(frames: int, value: float = 0.8) -> np.ndarray:
    values = np.zeros((frames, len(CANONICAL_NAMES)), np.float32)
    values[:, JAW] = value
    return values


def test_a_conversation_starts_after_the_jitter_buffer_and_ends_when_its_audio_has_played(
    fake: FakeTime, playback: tuple[Playback, list]
) -> None:
    p, states = playback
    p.jitter_buffer = 0.1
    conv = p.begin(RATE)
    p.add_audio(conv, tone(0.5), False)
    assert conv.start == pytest.approx(p.clock() + 0.1)
    assert states == [(ConversationState.PLAYING, StateReason.STARTED, conv.id)]
    p.add_motion(conv, jaw_motion(13), np.arange(13), CANONICAL_NAMES, 25.0, True)
    p.add_audio(conv, tone(0.5), True)
    # Nothing plays before the start; the speech plays from it on.
    assert not p.audio_between(conv.start - 0.1, conv.start).any()
    assert p.audio_between(conv.start, conv.start + 0.1).any()
    fake.advance(1.05)  # the audio's end: 0.1 + 1.0 s
    assert states[-1] == (ConversationState.PLAYING, StateReason.STARTED, conv.id)
    fake.advance(0.1)
    assert states[-1] == (ConversationState.IDLE, StateReason.PLAYBACK_END, conv.id)
    assert conv.ended_at == pytest.approx(conv.start + 1.0) and not conv.interrupted


def test_the_mouth_follows_the_motion_on_the_clock_and_fades_back_to_idle(
    fake: FakeTime, playback: tuple[Playback, list]
) -> None:
    p, _ = playback
    p.jitter_buffer = 0.0
    conv = p.begin(RATE)
    p.add_audio(conv, tone(1.0), True)
    p.add_motion(conv, jaw_motion(25), np.arange(25), CANONICAL_NAMES, 25.0, True)
    assert conv.start is not None
    mid = p.mixer.sample(conv.start + 0.5)
    assert mid[JAW] == pytest.approx(0.8, abs=0.01)
    late = p.mixer.sample(conv.start + 3.0)  # long after the fade out
    assert late[JAW] < 0.1


def test_pause_stops_the_clock_and_the_end(fake: FakeTime, playback: tuple[Playback, list]) -> None:
    p, states = playback
    p.jitter_buffer = 0.0
    conv = p.begin(RATE)
    p.add_audio(conv, tone(0.4), True)
    fake.advance(0.2)
    assert p.pause()
    assert not p.pause()  # already paused
    assert states[-1][:2] == (ConversationState.PAUSED, StateReason.USER_ACTION)
    at = p.clock()
    fake.advance(5.0)
    assert p.clock() == pytest.approx(at)
    assert p.state is ConversationState.PAUSED
    assert p.resume()
    assert states[-1][:2] == (ConversationState.PLAYING, StateReason.USER_ACTION)
    fake.advance(0.15)
    assert p.state is ConversationState.PLAYING
    fake.advance(0.2)
    assert states[-1][:2] == (ConversationState.IDLE, StateReason.PLAYBACK_END)


def test_drop_cuts_the_conversation_and_keeps_only_what_played(fake: FakeTime, playback: tuple[Playback, list]) -> None:
    p, states = playback
    p.jitter_buffer = 0.0
    conv = p.begin(RATE)
    p.add_audio(conv, tone(2.0), False)
    fake.advance(0.5)
    p.drop(StateReason.USER_ACTION)
    assert states[-1][:2] == (ConversationState.IDLE, StateReason.USER_ACTION)
    assert conv.interrupted and conv.ended_at == pytest.approx(p.clock())
    assert conv.duration == pytest.approx(0.5, abs=1e-3)
    assert not p.audio_between(p.clock(), p.clock() + 1.0).any()


def test_a_new_conversation_interrupts_the_one_playing(fake: FakeTime, playback: tuple[Playback, list]) -> None:
    p, states = playback
    p.jitter_buffer = 0.0
    first = p.begin(RATE)
    p.add_audio(first, tone(1.0), True)
    fake.advance(0.3)
    second = p.begin(RATE)
    p.add_audio(second, tone(0.2), True)
    assert first.interrupted and first.ended_at == pytest.approx(p.clock())
    assert states[-1] == (ConversationState.PLAYING, StateReason.STARTED, second.id)
    fake.advance(0.3)
    assert states[-1] == (ConversationState.IDLE, StateReason.PLAYBACK_END, second.id)
    assert [c.id for c in p.recent()] == [first.id, second.id]
    assert p.find(first.id) is first


def test_fallback_keeps_the_audio_and_reports_why_at_the_end(fake: FakeTime, playback: tuple[Playback, list]) -> None:
    p, states = playback
    p.jitter_buffer = 0.0
    conv = p.begin(RATE)
    p.add_audio(conv, tone(1.0), False)
    p.add_motion(conv, jaw_motion(10), np.arange(10), CANONICAL_NAMES, 25.0, False)
    fake.advance(0.2)
    assert p.fall_back(StateReason.NETWORK_ERROR) is conv
    assert p.fall_back(StateReason.NETWORK_ERROR) is None  # once
    assert states[-1][:2] == (ConversationState.PLAYING, StateReason.FALLBACK)
    p.add_audio(conv, tone(0.2), True)
    assert p.audio_between(p.clock(), p.clock() + 0.1).any()
    fake.advance(2.0)
    assert states[-1][:2] == (ConversationState.IDLE, StateReason.NETWORK_ERROR)


def test_the_automatic_jitter_buffer_covers_the_lookahead_in_whole_chunks(playback: tuple[Playback, list]) -> None:
    p, _ = playback
    assert p.current_jitter_buffer() == pytest.approx(0.12)  # look-ahead unknown
    p.lookahead = 0.08
    # 40 ms chunks, 80 ms look-ahead: frame 0 needs audio to 120 ms, two chunks after the first.
    assert p.current_jitter_buffer(0.04) == pytest.approx(0.08 + p.jitter_margin)
    p.lookahead = 0.0
    assert p.current_jitter_buffer(0.04) == pytest.approx(p.jitter_margin)


def test_late_motion_widens_the_next_buffer(fake: FakeTime, playback: tuple[Playback, list]) -> None:
    p, _ = playback
    p.lookahead = 0.0
    conv = p.begin(RATE)
    p.add_audio(conv, tone(1.0), True)
    fake.advance(0.3)
    p.add_motion(conv, jaw_motion(1), np.arange(1), CANONICAL_NAMES, 25.0, False)  # frame 0, 0.28 s late
    assert conv.lateness == pytest.approx(0.3 - conv.jitter, abs=1e-6)
    on_time = p.current_jitter_buffer(0.1)
    nxt = p.begin(RATE)
    p.add_audio(nxt, tone(0.1), True)
    assert nxt.widened == pytest.approx(conv.lateness, abs=1e-6)
    assert nxt.jitter == pytest.approx(on_time + conv.lateness, abs=1e-6)


def test_volume_scales_the_speech(fake: FakeTime, playback: tuple[Playback, list]) -> None:
    p, _ = playback
    p.jitter_buffer = 0.0
    conv = p.begin(RATE)
    p.add_audio(conv, tone(0.5), True)
    full = p.audio_between(p.clock(), p.clock() + 0.1)
    p.volume = 0.5
    half = p.audio_between(p.clock(), p.clock() + 0.1)
    assert np.abs(half).max() == pytest.approx(np.abs(full).max() / 2, abs=2)


def test_mixer_layers_blend_and_pinned_channels_win() -> None:
    mixer = Mixer(CANONICAL_NAMES, seed=3)
    timeline = ChannelTimeline(CANONICAL_NAMES, 25.0, start=10.0)
    timeline.append(jaw_motion(50, 0.6), np.arange(50))
    layer = MotionLayer(timeline, 25.0)
    mixer.add(layer)
    assert mixer.sample(9.0)[JAW] < 0.1  # before the layer: idle life
    assert mixer.sample(11.0)[JAW] == pytest.approx(0.6, abs=0.01)
    mixer.set_channels({"jawOpen": 0.25, "notAChannel": 1.0})
    assert mixer.pinned == {"jawOpen": 0.25}
    assert mixer.sample(11.0)[JAW] == pytest.approx(0.25)
    mixer.set_channels(None)
    mixer.play_motion(jaw_motion(25, 0.1), None, None, fps=25.0, begin=11.0, restart=True)
    assert mixer.sample(11.5)[JAW] == pytest.approx(0.1, abs=0.02)  # app motion on top
    mixer.stop_motion(11.5)
    assert mixer.sample(13.0)[JAW] == pytest.approx(0.6, abs=0.01)  # faded out: the layer under it again


def test_pcm16_refuses_what_it_would_misread() -> None:
    assert pcm16(b"\x01\x00\x02\x00").tolist() == [1, 2]
    assert pcm16(np.array([0.5, -1.0])).tolist() == [16383, -32767]
    for bad in (b"\x01", np.zeros((2, 2), np.int16), np.zeros(3, np.int32)):
        with pytest.raises(AvatarError):
            pcm16(bad)


def test_an_emotion_fades_in_moves_no_lip_shape_and_gives_way_to_speech() -> None:
    from avatarkit.emotions import EMOTIONS, LIP_CORNER_CHANNELS

    mixer = Mixer(CANONICAL_NAMES, seed=5)
    mixer.idle.sample = lambda t: np.zeros(len(CANONICAL_NAMES), np.float32)  # type: ignore[method-assign]
    happy = np.zeros(len(CANONICAL_NAMES), np.float32)
    for name, value in EMOTIONS["happy"].items():
        happy[CANONICAL_NAMES.index(name)] = value
    smile = CANONICAL_NAMES.index("mouthSmileLeft")
    cheek = CANONICAL_NAMES.index("cheekSquintLeft")
    mixer.set_expression(happy, at=10.0, fade=0.5)
    assert mixer.sample(9.9)[smile] == 0.0
    assert 0.0 < mixer.sample(10.25)[smile] < happy[smile]
    assert mixer.sample(10.6)[smile] == pytest.approx(happy[smile])
    # Speech: the lips are the layer's, untouched; the corners are halved, the cheeks are not.
    timeline = ChannelTimeline(CANONICAL_NAMES, 25.0, start=20.0)
    speech = jaw_motion(50, 0.7)
    speech[:, CANONICAL_NAMES.index("viseme_PP")] = 0.9
    timeline.append(speech, np.arange(50))
    mixer.add(MotionLayer(timeline, 25.0))
    during = mixer.sample(21.0)
    lips = [i for i, n in enumerate(CANONICAL_NAMES) if n.startswith("viseme_") or n in ("jawOpen", "mouthClose")]
    np.testing.assert_allclose(during[lips], speech[0, lips], atol=1e-6)
    assert during[smile] == pytest.approx(happy[smile] / 2)
    assert during[cheek] == pytest.approx(happy[cheek])
    assert not set(EMOTIONS["happy"]) & {"jawOpen", "mouthClose", "mouthFunnel", "mouthPucker"}
    assert {"mouthSmileLeft", "mouthFrownRight"} <= LIP_CORNER_CHANNELS
    # Back to neutral: it fades out the same way.
    mixer.set_expression(np.zeros(len(CANONICAL_NAMES), np.float32), at=30.0, fade=0.2)
    assert mixer.sample(30.3)[cheek] == 0.0
    with pytest.raises(ValueError):
        mixer.set_expression(np.zeros(3, np.float32), at=0.0, fade=0.0)


def test_speech_that_comes_slower_than_it_plays_is_never_lost(fake: FakeTime, playback: tuple[Playback, list]) -> None:
    p, states = playback
    p.jitter_buffer = 0.05
    conv = p.begin(RATE)
    first, second = tone(0.3, 4000), tone(0.3, 12000)
    p.add_audio(conv, first, False)
    p.add_motion(conv, jaw_motion(8, 0.2), np.arange(8), CANONICAL_NAMES, 25.0, False)
    start = conv.start
    assert start is not None
    fake.advance(0.8)  # the first 0.3 s played out 0.45 s ago: the speech ran dry
    p.add_audio(conv, second, True)
    p.add_motion(conv, jaw_motion(7, 0.9), np.arange(8, 15), CANONICAL_NAMES, 25.0, True)
    assert conv.underruns == 1 and conv.stalled == pytest.approx(0.45, abs=1e-6)
    # The second chunk plays from now, whole: nothing of it fell into the past.
    now = p.clock()
    heard = p.audio_between(now, now + 0.3)
    np.testing.assert_array_equal(heard, second)
    # Its motion moved with it: the second chunk's frames (8 on, at 0.32 s) show as it plays.
    shown = conv.timeline.sample(now + 0.05)
    assert shown is not None and shown[CANONICAL_NAMES.index("jawOpen")] == pytest.approx(0.9, abs=1e-5)
    # The face does not fade in a second time.
    assert conv.layer.weight(now + 0.01) == pytest.approx(1.0)
    fake.advance(0.35)
    assert states[-1][:2] == (ConversationState.IDLE, StateReason.PLAYBACK_END)


def test_idle_life_has_its_own_time() -> None:
    mixer = Mixer(CANONICAL_NAMES, seed=9)
    t = 12.0
    moved = [np.abs(mixer.sample(t, life=t + dt) - mixer.sample(t)).max() for dt in (0.5, 1.5, 3.0)]
    assert max(moved) > 0.01  # breathing, gaze or a blink moved on while t stood still
    np.testing.assert_array_equal(mixer.sample(t, life=t), mixer.sample(t))


def test_an_llms_emotion_call_is_carried_out_or_answered_with_what_was_wrong() -> None:
    from avatarkit.emotions import apply_emotion_call

    class Face:
        def __init__(self) -> None:
            self.calls: list[tuple[str, float]] = []

        def set_emotion(self, name: str, intensity: float = 1.0, fade: float = 0.5) -> None:
            from avatarkit.emotions import EMOTIONS
            from avatarkit.errors import AvatarErrorCode

            if name not in EMOTIONS:
                raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"unknown emotion {name!r}")
            self.calls.append((name, intensity))

    face = Face()
    assert apply_emotion_call(face, {"emotion": "sad"}) == "showing sad at 0.6"
    assert apply_emotion_call(face, {"emotion": "angry", "intensity": 3}) == "showing angry at 3.0"
    assert face.calls == [("sad", 0.6), ("angry", 1.0)]  # clipped to 1
    assert "unknown emotion" in apply_emotion_call(face, {"emotion": "smug"})
    assert "must be one of" in apply_emotion_call(face, {})
    assert "number" in apply_emotion_call(face, {"emotion": "sad", "intensity": "lots"})
