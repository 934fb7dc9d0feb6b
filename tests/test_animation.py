"""Motion over time: interpolation, idle life, and transitions without jumps."""

from __future__ import annotations

import time

import numpy as np
import pytest

from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, HeadlessSurface
from avatarkit.animation import ChannelTimeline, IdleLife, MotionLayer
from avatarkit.codec import CANONICAL_NAMES, StreamEncoder, canonical_schema

from render_helpers import require_gl, tiny_avatar_glb

COL = {n: i for i, n in enumerate(CANONICAL_NAMES)}


def test_timeline_interpolates_between_frames_and_maps_by_name() -> None:
    tl = ChannelTimeline(["a", "b"], fps=25, start=10.0)
    tl.append(np.array([[0.0, 1.0], [1.0, 0.0]], np.float32), np.array([0, 1]), names=["b", "a"])
    assert tl.sample(9.99) is None
    np.testing.assert_allclose(tl.sample(10.0), [1.0, 0.0])
    np.testing.assert_allclose(tl.sample(10.02), [0.5, 0.5], atol=1e-6)  # halfway between 25 fps frames
    np.testing.assert_allclose(tl.sample(10.04), [0.0, 1.0], atol=1e-6)
    assert tl.sample(10.05) is None
    tl.append(np.array([[0.5, 0.5]], np.float32), np.array([3]))  # frame 2 is missing: held
    np.testing.assert_allclose(tl.sample(10.08), [0.0, 1.0], atol=1e-6)
    tl.truncate(10.0)
    assert len(tl) == 2


def test_a_layer_holds_its_last_frame_at_every_clock_time_from_it_on() -> None:
    # The last frame's clock time, a rounding error past it in frame units: still shown, never idle.
    tl = ChannelTimeline(["jawOpen"], fps=25, start=1000.001)
    tl.append(np.ones((25, 1), np.float32), np.arange(25))
    assert (tl.end_time - tl.start) * tl.fps > 24  # the case that dropped one frame to idle
    layer = MotionLayer(tl)
    for t in (tl.end_time, np.nextafter(tl.end_time, 0.0), tl.end_time + 0.5):
        np.testing.assert_array_equal(layer.sample(t), [1.0])
    assert tl.sample(tl.end_time + 0.5) is None


def test_idle_life_blinks_irregularly_and_moves_the_eyes() -> None:
    idle = IdleLife(seed=7)
    t = np.arange(0, 60, 0.01)
    frames = np.array([idle.sample(x) for x in t])
    blink = frames[:, COL["eyeBlinkLeft"]]
    closed = t[1:][(blink[1:] > 0.9) & (blink[:-1] <= 0.9)]
    assert 8 <= len(closed) <= 30  # every 2 to 6 s
    gaps = np.diff(closed)
    assert gaps.std() > 0.3 and gaps.min() > 1.0  # not periodic
    gaze = frames[:, COL["eyeLookOutLeft"]] - frames[:, COL["eyeLookInLeft"]]
    assert len(np.unique(np.round(gaze, 3))) > 10  # saccades go somewhere
    assert np.abs(frames[:, COL["headPitch"]]).max() > 0.005  # breathing and sway
    assert np.abs(np.diff(frames[:, COL["headYaw"]])).max() < 0.01  # smoothly


@pytest.fixture
def controller(tmp_path):
    require_gl()
    AvatarSDK.initialize("demo", Configuration(driving_service_mode="host"))
    avatar = AvatarManager(cache_dir=tmp_path).derive(tiny_avatar_glb(tmp_path / "t.glb"))
    view = AvatarView(HeadlessSurface(16, 16), avatar)
    yield view.controller
    view.destroy()
    AvatarSDK.cleanup()


def speech_motion(seconds: float, level: float) -> bytes:
    values = np.zeros((round(seconds * 25), len(CANONICAL_NAMES)), np.float32)
    values[:, COL["jawOpen"]] = level
    return StreamEncoder(canonical_schema()).encode(values)


def envelope(payload: bytes, end: bool = True) -> bytes:
    from avatarkit.protocol import Message, MessageType

    m = Message(type=MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION)
    m.server_response_animation.animation = payload
    m.server_response_animation.end = end
    return m.SerializeToString()


def test_transitions_never_jump(controller) -> None:
    c = controller
    first = c.yield_audio_data(np.zeros(16000, np.int16), end=True)
    c.yield_frames_data([envelope(speech_motion(1.0, 1.0))], first)
    start = c.playback.current.start
    t = np.arange(start - 0.2, start + 1.6, 0.005)
    jaw = np.array([c.sample(x)[COL["jawOpen"]] for x in t])
    assert jaw[0] == 0.0 and jaw.max() == pytest.approx(1.0)
    # In over about 5 frames (0.2 s), out over about 15 (0.6 s); no step larger than a smooth ramp allows.
    assert np.abs(np.diff(jaw)).max() < 0.06
    rise = t[np.argmax(jaw > 0.99)] - start
    assert 0.1 < rise <= 0.21
    # A new conversation that starts during the fade-out rises from the pose on screen.
    end_fade = start + 1.0 + 0.05
    probe = np.arange(end_fade, end_fade + 0.2, 0.005)
    before = [c.sample(x)[COL["jawOpen"]] for x in probe[:10]]
    c.jitter_buffer = 0.0
    c.playback.pace.origin -= probe[10] - c.clock()  # move the clock to the middle of the fade-out
    second = c.yield_audio_data(np.zeros(8000, np.int16), end=True)
    c.yield_frames_data([envelope(speech_motion(0.5, 0.2))], second)
    after = [c.sample(x)[COL["jawOpen"]] for x in probe[10:]]
    sequence = np.array(before + after)
    assert np.abs(np.diff(sequence)).max() < 0.06


def test_automatic_jitter_buffer_covers_the_look_ahead_and_learns_from_late_motion(controller) -> None:
    c = controller
    margin = c.jitter_margin
    assert c.jitter_buffer is None
    assert c.current_jitter_buffer() == pytest.approx(0.12)  # Host mode: the service's look-ahead is unknown
    # Chunks sent as they are spoken: frame k needs audio up to its end plus the look-ahead, which
    # comes with the chunk that holds it.
    c.playback.lookahead = 0.08
    assert c.current_jitter_buffer(0.04) == pytest.approx(0.08 + margin)
    assert c.current_jitter_buffer(0.02) == pytest.approx(0.10 + margin)
    assert c.current_jitter_buffer(10.0) == pytest.approx(margin)  # a whole utterance at once
    c.playback.lookahead = 0.0
    assert c.current_jitter_buffer(0.04) == pytest.approx(margin)
    assert c.current_jitter_buffer(0.02) == pytest.approx(0.02 + margin)
    assert c.current_jitter_buffer(0.1) == pytest.approx(0.02 + margin)
    # Motion 0.25 s behind its audio: the next conversation waits that much longer.
    before = time.monotonic()
    first = c.yield_audio_data(np.zeros(16000, np.int16), end=True)
    assert c.playback.current.jitter == pytest.approx(margin)
    c.playback.pace.origin -= 0.25
    c.yield_frames_data([envelope(speech_motion(1.0, 1.0))], first)
    late = c.playback.current.lateness
    # 0.25 s late, plus however long these calls took on a busy machine
    assert 0.25 - margin - 0.02 <= late <= 0.25 - margin + 0.02 + (time.monotonic() - before)
    second = c.yield_audio_data(np.zeros(16000, np.int16), end=True)
    assert c.playback.current.jitter == pytest.approx(margin + late)
    c.yield_frames_data([envelope(speech_motion(1.0, 1.0))], second)  # on time this once
    # Timely motion lets the widening halve, never below the margin.
    c.yield_audio_data(np.zeros(16000, np.int16), end=True)
    assert c.playback.current.jitter == pytest.approx(margin + late / 2, abs=0.005)
    # Motion minutes late (an app that stalled) widens the buffer by half a second at most.
    c.playback.current.lateness = 120.0
    c.yield_audio_data(np.zeros(16000, np.int16), end=True)
    assert c.playback.current.jitter == pytest.approx(margin + 0.5)
    c.jitter_buffer = 0.05  # set by the app: used as it is
    assert c.current_jitter_buffer(0.04) == 0.05
