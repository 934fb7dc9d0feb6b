"""The commercial service's FlameAnimation payload."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from avatarkit import codec
from avatarkit.protocol import FlameAnimation, MessageType, parse_message


def test_official_recording_decodes_to_507_keyframes(official_messages: list[bytes]) -> None:
    messages = [parse_message(raw) for raw in official_messages]
    assert len(messages) == 6
    assert all(m.type == MessageType.MESSAGE_SERVER_RESPONSE_ANIMATION for m in messages)
    assert [m.server_response_animation.end for m in messages] == [False] * 5 + [True]
    chunks = [codec.decode_flame(m.server_response_animation.animation) for m in messages]
    assert [len(c) for c in chunks] == [50, 100, 100, 100, 100, 57]
    frames = np.concatenate(chunks)
    assert frames.shape == (507, 120) and frames.dtype == np.float32
    names = codec.flame_channel_names()
    col = {n: i for i, n in enumerate(names)}
    # What the reference says of this recording: rotation zeros, neck moves, eye pose constant.
    assert (frames[:, col["flame_rotation_0"] : col["flame_rotation_2"] + 1] == 0).all()
    neck = frames[:, col["flame_neck_pose_0"] : col["flame_neck_pose_2"] + 1]
    assert neck.std(axis=0).max() > 1e-3 and neck.min() > -0.1 and neck.max() < 0.3
    eyes = frames[:, col["flame_eye_pose_0"] : col["flame_eye_pose_5"] + 1]
    assert (eyes == eyes[0]).all()
    expression = frames[:, col["flame_expression_0"] :]
    assert -4 < expression.min() < -1 and 1 < expression.max() < 4


def test_matches_the_protobuf_runtime(official_messages: list[bytes]) -> None:
    animation = parse_message(official_messages[1]).server_response_animation.animation
    ours = codec.decode_flame(animation)
    ref = FlameAnimation()
    ref.ParseFromString(animation)
    for i, kf in enumerate(ref.keyframes):
        row = np.zeros(120, np.float32)
        offset = 0
        for field, size in (
            ("translation", 3),
            ("rotation", 3),
            ("neck_pose", 3),
            ("jaw_pose", 3),
            ("eye_pose", 6),
            ("eye_lid", 2),
            ("expression", 100),
        ):
            got = list(getattr(kf, field))
            row[offset : offset + len(got)] = got
            offset += size
        np.testing.assert_array_equal(ours[i], row)


def test_round_trip_and_unpacked_fields() -> None:
    rng = np.random.default_rng(1)
    values = rng.normal(size=(7, 120)).astype(np.float32)
    values[:, 3:6] = 0  # an all-zero field is omitted on the wire and zero-filled on the way back
    np.testing.assert_array_equal(codec.decode_flame(codec.encode_flame(values)), values)
    # The same through the protobuf runtime, which writes what any proto3 sender would.
    msg = FlameAnimation()
    kf = msg.keyframes.add()
    kf.jaw_pose.extend([0.1, 0.2])
    kf.expression.extend([1.5] * 100)
    got = codec.decode_flame(msg.SerializeToString())
    assert got.shape == (1, 120)
    np.testing.assert_allclose(got[0, 9:12], [0.1, 0.2, 0.0], rtol=1e-6)
    # Unpacked (one float per tag) encoding of jaw_pose, field 4, wire type 5.
    unpacked = b"\x0a\x0a" + b"\x25" + np.float32(0.5).tobytes() + b"\x25" + np.float32(0.25).tobytes()
    np.testing.assert_array_equal(codec.decode_flame(unpacked)[0, 9:12], [0.5, 0.25, 0.0])
    # Unknown fields are skipped.
    with_unknown = b"\x0a\x07" + b"\x40\x01" + b"\x4d" + np.float32(1).tobytes() + b"\x10\x05"
    assert codec.decode_flame(with_unknown).shape == (1, 120)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x0a",  # keyframe length missing
        b"\x0a\x05\x01",  # keyframe longer than the payload
        b"\x0a\x03\x22\x02\x00",  # packed floats not a multiple of 4
        b"\x0a\x02\x22\x08",  # packed length past the keyframe
        b"\x0a\x06\x22\x04\x00\x00\x00\x00" + b"",  # ok length but truncated outer? (valid: see below)
        b"\x08\x01\x0b",  # group wire type
        b"\x0a\x02\x20\x01",  # jaw_pose as a varint
        b"\x00",  # field 0
    ],
)
def test_malformed_flame(payload: bytes) -> None:
    if payload == b"\x0a\x06\x22\x04\x00\x00\x00\x00":
        assert codec.decode_flame(payload).shape == (1, 120)
        return
    with pytest.raises(codec.CodecError) as info:
        codec.decode_flame(payload)
    assert info.value.code in {"bad_protobuf", "truncated", "bad_frame"}


def test_too_many_values_in_a_field() -> None:
    msg = FlameAnimation()
    msg.keyframes.add().jaw_pose.extend([0.0] * 4)
    with pytest.raises(codec.CodecError, match="jaw_pose"):
        codec.decode_flame(msg.SerializeToString())


def test_the_shipped_mouth_map_is_what_the_fitting_script_makes(official_recording: dict[str, object]) -> None:
    """scripts/fit_flame_retarget.py refits the shipped map from the shared recording (deterministic)."""
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "fit_flame_retarget.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "held out" in result.stdout and "shipped map: matches" in result.stdout


def test_the_mouth_map_moves_the_lips_the_jaw_alone_does_not(official_messages: list[bytes]) -> None:
    from avatarkit.codec import CANONICAL_NAMES
    from avatarkit.retarget import flame_to_canonical

    payloads = [parse_message(m).server_response_animation.animation for m in official_messages]
    frames = np.concatenate([codec.decode_flame(a) for a in payloads if a])
    out = flame_to_canonical(frames)
    lips = out[:, [CANONICAL_NAMES.index(n) for n in CANONICAL_NAMES if n.startswith(("mouth", "viseme_"))]]
    assert lips.min() >= 0.0 and lips.max() <= 1.0
    funnel = out[:, CANONICAL_NAMES.index("mouthFunnel")]
    jaw = out[:, CANONICAL_NAMES.index("jawOpen")]
    assert funnel.std() > 0.03 and abs(np.corrcoef(funnel, jaw)[0, 1]) < 0.8
    # A neutral FLAME frame (all zeros) maps to a mouth near rest.
    rest = flame_to_canonical(np.zeros((1, 120), np.float32))[0]
    assert rest[CANONICAL_NAMES.index("mouthFunnel")] < 0.3 and rest[CANONICAL_NAMES.index("jawOpen")] == 0.0
