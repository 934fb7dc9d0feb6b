"""Sound devices through PortAudio for real: ALSA ``file`` devices stand in for a sound card.

Each test runs in a child process whose ``~/.asoundrc`` (HOME points into the test's folder) defines
an output that records what it is given to a file and a microphone that plays a file, so PortAudio,
sounddevice and our stream callbacks all run as they would on a desktop. Needs Debian's
``libportaudio2`` and the ``sounddevice`` package (``scripts/setup.sh --test``).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from speech_audio import speech_like

from render_helpers import require_gl

TESTS = pathlib.Path(__file__).resolve().parent

ASOUNDRC = """\
pcm.avatarkit_sink {{
    type file
    slave.pcm "null"
    file "{out}"
    format "raw"
    hint {{ show on description "AvatarKit test output: records to a file" }}
}}
pcm.avatarkit_mic {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{mic}"
    format "raw"
    hint {{ show on description "AvatarKit test microphone: plays a file" }}
}}
"""


@pytest.fixture
def alsa_home(tmp_path: pathlib.Path) -> pathlib.Path:
    sd = pytest.importorskip("sounddevice", reason="sounddevice is in the test dependency group")
    del sd
    from avatarkit.audio import sounddevice_module

    if sounddevice_module() is None:
        pytest.skip("PortAudio is not installed (Debian: libportaudio2)")
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(out=tmp_path / "out.raw", mic=tmp_path / "mic.raw"))
    return tmp_path


def run_child(home: pathlib.Path, code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    env = dict(env or os.environ, HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_the_device_gets_the_speech_at_the_volume_set(alsa_home: pathlib.Path) -> None:
    """What reaches the device is the controller's speech, at the volume set, intact, in order.

    The ALSA ``file`` device consumes as fast as it is fed (it has no clock), so the output re-aligns
    to the controller's clock again and again: the recording holds stretches of the speech, each a
    faithful copy of where the clock was. Every sample must come from the speech, and the
    stretches must cover it.
    """
    require_gl()
    speech = speech_like(1.0)
    speech.tofile(alsa_home / "speech.raw")
    report = run_child(
        alsa_home,
        f"""
        import json, pathlib, time
        import numpy as np
        from avatarkit import AvatarManager, AvatarSDK, AvatarView, Configuration, HeadlessSurface
        from render_helpers import tiny_avatar_glb

        home = pathlib.Path({str(alsa_home)!r})
        AvatarSDK.initialize("local", Configuration())
        avatar = AvatarManager(cache_dir=home / "cache").derive(tiny_avatar_glb(home / "tiny.glb"))
        view = AvatarView(HeadlessSurface(32, 32), avatar)
        controller = view.avatar_controller
        controller.volume = 0.5
        output = controller.start_audio_output("avatarkit_sink")
        controller.play(np.fromfile(home / "speech.raw", np.int16), sample_rate=16000)
        while controller.conversation_state.value != "idle":
            time.sleep(0.01)
        info = dict(written=output.samples_written, resyncs=output.resyncs, name=output.device_name)
        view.destroy()  # closes the output too
        info["closed"] = controller.audio_output is None
        print(json.dumps(info))
        """,
    )
    assert report["closed"] is True
    assert report["name"] == "avatarkit_sink"
    heard = np.fromfile(alsa_home / "out.raw", "<i2")
    assert len(heard) >= len(speech)
    expected = (speech.astype(np.float32) * 0.5).astype(np.int16)
    # Index every 16-sample window of the expected speech; every loud window heard must be one of them.
    where: dict[bytes, int] = {expected[i : i + 16].tobytes(): i for i in range(len(expected) - 15)}
    covered = np.zeros(len(expected), bool)
    loud = 0
    for i in range(0, len(heard) - 16, 16):
        window = heard[i : i + 16]
        if np.abs(window).max() < 64 or not window.all():
            continue  # silence, quiet edges of syllables (which repeat), and the speech's start and end
        loud += 1
        assert window.tobytes() in where, f"samples {i}..{i + 16} are not from the speech at half volume"
        covered[where[window.tobytes()] : where[window.tobytes()] + 16] = True
    assert loud > 100
    speaking = np.abs(expected) >= 64
    assert covered[speaking].mean() > 0.9


def test_the_microphone_delivers_what_the_device_records(alsa_home: pathlib.Path) -> None:
    recorded = speech_like(1.0, seed=3)
    recorded.tofile(alsa_home / "mic.raw")
    report = run_child(
        alsa_home,
        """
        import asyncio, json
        import numpy as np
        from avatarkit.audio import MicrophoneInput

        async def main():
            mic = MicrophoneInput(16000, chunk_ms=40, device="avatarkit_mic")
            chunks = []
            async for chunk in mic.chunks():
                chunks.append(chunk)
                if len(chunks) == 20:
                    mic.stop()
            data = np.concatenate(chunks)
            data[:12800].tofile("got.raw")
            return dict(sizes=sorted({len(c) for c in chunks}), overflows=mic.overflows)

        print(json.dumps(asyncio.run(main())))
        """.replace('"got.raw"', repr(str(alsa_home / "got.raw"))),
    )
    assert report["sizes"] == [640]  # 40 ms chunks at 16 kHz
    got = np.fromfile(alsa_home / "got.raw", np.int16)
    np.testing.assert_array_equal(got, recorded[:12800])


def test_missing_devices_give_clear_errors(alsa_home: pathlib.Path) -> None:
    report = run_child(
        alsa_home,
        """
        import json
        from avatarkit.audio import DeviceAudioOutput, MicrophoneInput
        from avatarkit.errors import AvatarError

        class Controller:  # only what the output needs before it opens the device
            _paused_at = None
            def _sample_rate(self):
                return 16000

        messages = []
        try:
            DeviceAudioOutput(Controller(), device="no such device")
        except AvatarError as err:
            messages.append([err.code.value, err.message])
        print(json.dumps(dict(messages=messages)))
        """,
    )
    ((code, message),) = report["messages"]
    assert code == "invalidArgument"
    assert message.startswith("cannot open the sound output")


def test_view_speaks_through_the_microphone(alsa_home: pathlib.Path, display: str) -> None:
    """``avatarkit view --mic``: the default ALSA input plays a speech file into the microphone."""
    require_gl()
    speech_like(3.0, seed=5).tofile(alsa_home / "mic.raw")
    rc = alsa_home / ".asoundrc"
    rc.write_text(rc.read_text() + "pcm.!default avatarkit_mic\n")
    env = dict(os.environ, HOME=str(alsa_home), DISPLAY=display)
    result = subprocess.run(
        [sys.executable, "-m", "avatarkit", "view", "--mic", "--no-sound", "--seconds", "2.5", "--size", "160x160"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "listening to the microphone" in result.stdout
    line = next(x for x in result.stdout.splitlines() if x.startswith("avatarkit: microphone:"))
    sent, conversations, frames = (int(w) for w in line.split() if w.isdigit())
    assert sent > 25  # chunks went to the service (this ALSA device delivers faster than real time)
    assert conversations == 1
    assert frames > 20  # and the service's motion came back for them
