"""Sound devices through PortAudio for real: ALSA ``file`` devices stand in for a sound card.

Each test runs in a child process whose ``~/.asoundrc`` (HOME points into the test's folder) defines
an output that records what it is given to a file and a microphone that plays a file, so PortAudio,
sounddevice and our stream callbacks all run as they would on a desktop. Needs Debian's
``libportaudio2`` and the ``sounddevice`` package (``scripts/setup.sh --test``).

ALSA's ``file`` device over ``null`` has no clock of its own: it takes samples as fast as the
callback gives them (thousands of times real time), so a two-second utterance would be gone before a
test could pause it. The children pace their output streams like a sound card (a callback returns
once the samples it was handed are due, a tenth of a second of buffer ahead). The controller's clock
follows the device, as it follows any device; the tests check relations between what the device
took and what the clock says, never wall time. The last test plays on PulseAudio's null sink, which
consumes in real time, when PulseAudio and ALSA's pulse plugin are installed.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import wave

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

#: Run in every child: a controller without a view (the device needs none), and waiting for a state.
PRELUDE = """\
import json, pathlib, sys, time, types
import numpy as np
import avatarkit.audio
from avatarkit.controller import AvatarController

home = pathlib.Path(sys.argv[1])

import sounddevice

class PacedOutputStream(sounddevice.OutputStream):
    # Takes samples at its rate, as a sound card does (ALSA's file device takes them at once).

    def __init__(self, *args, callback, **kwargs):
        rate, due = float(kwargs["samplerate"]), [None, 0]

        def paced(outdata, frames, time_info, status):
            callback(outdata, frames, time_info, status)
            due[0] = due[0] or time.monotonic()
            due[1] += frames
            delay = due[0] + due[1] / rate - 0.1 - time.monotonic()
            if delay > 0:
                time.sleep(delay)

        super().__init__(*args, callback=paced, **kwargs)

sounddevice.OutputStream = PacedOutputStream

def controller():
    return AvatarController(types.SimpleNamespace(avatar=types.SimpleNamespace(idle_clip=lambda: b"")))

def wait(condition, what):
    give_up = time.monotonic() + 60
    while not condition():
        if time.monotonic() > give_up:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.001)
"""


def _skip_without_portaudio() -> None:
    pytest.importorskip("sounddevice", reason="sounddevice is in the test dependency group")
    from avatarkit.audio import sounddevice_module

    if sounddevice_module() is None:
        pytest.skip("PortAudio is not installed (Debian: libportaudio2)")


@pytest.fixture
def alsa_home(tmp_path: pathlib.Path) -> pathlib.Path:
    _skip_without_portaudio()
    (tmp_path / ".asoundrc").write_text(ASOUNDRC.format(out=tmp_path / "out.raw", mic=tmp_path / "mic.raw"))
    return tmp_path


def run_child(home: pathlib.Path, code: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``PRELUDE + code`` with HOME at ``home``; its last line of output is a JSON report."""
    env = dict(env or os.environ, HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    script = PRELUDE + textwrap.dedent(code)
    result = subprocess.run(
        [sys.executable, "-c", script, str(home)], capture_output=True, text=True, timeout=180, env=env
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def recording(home: pathlib.Path) -> np.ndarray:
    return np.fromfile(home / "out.raw", "<i2")


def split_on_silence(heard: np.ndarray) -> tuple[int, np.ndarray]:
    """Where the first sound starts, and the sound from there to the last non-zero sample."""
    loud = np.flatnonzero(heard)
    assert len(loud), "the device heard only silence"
    return int(loud[0]), heard[loud[0] : loud[-1] + 1]


def test_the_device_gets_the_speech_whole_at_the_volume_set_and_the_clock_follows_it(alsa_home: pathlib.Path) -> None:
    """Every sample of the speech reaches the device once, in order, at the volume set, nothing else;
    it lands as far from a mark played earlier as the clock says; and the clock is what the device took."""
    speech = speech_like(1.0)
    speech.tofile(alsa_home / "speech.raw")
    report = run_child(
        alsa_home,
        """
        avatarkit.audio.STALL_SECONDS = 30.0  # a busy test machine must not count as a stalled device
        c = controller()
        c.volume = 0.5
        mark_at = c.clock() + 0.5
        c.play(np.full(160, 20000, np.int16), start=mark_at)  # on the clock before the device opens
        out = c.start_audio_output("avatarkit_sink")
        rate = out.sample_rate
        wait(lambda: out.samples_written > (mark_at - out.start_time + 0.1) * rate, "the mark to be played")
        speech = np.fromfile(home / "speech.raw", np.int16)
        c.play(speech, sample_rate=16000)
        start = c.playback.current.start
        end_sample = round((start - out.start_time) * rate) + len(speech)
        pairs = []  # (samples the device had, clock, samples it had after reading the clock)
        while out.samples_written < end_sample + 8000:
            before = out.samples_written
            now = c.clock()
            pairs.append((before, now, out.samples_written))
        c.sample(c.clock())  # the view would: playback ends when the clock is past the speech
        state = c.conversation_state.value
        c.stop_audio_output()
        print(json.dumps(dict(
            mark_at=mark_at, start=start, begin=out.start_time, rate=rate, name=out.device_name,
            pairs=pairs[:: max(1, len(pairs) // 2000)], state=state, detached=c.audio_output is None,
            clock_after=c.clock(), last_clock=pairs[-1][1], stalls=out.stalls,
        )))
        """,
    )
    assert report["name"] == "avatarkit_sink"
    assert report["rate"] == 16000
    assert report["stalls"] == 0
    begin, rate = float(report["begin"]), 16000
    _, sound = split_on_silence(recording(alsa_home))
    assert np.all(sound[:160] == 10000)  # the mark, at half volume
    first, sound = split_on_silence(sound[160:])
    expected = (speech.astype(np.float32) * 0.5).astype(np.int16)
    e_first, e_sound = split_on_silence(expected)
    np.testing.assert_array_equal(sound, e_sound)  # whole, in order, at half volume, and only once
    # Where the speech lands: as many samples after the mark as the clock has between them. (The
    # device's own index would include the silence PortAudio's ALSA host writes before the first
    # callback's samples: 960 here.)
    assert 160 + first - e_first == round((float(report["start"]) - float(report["mark_at"])) * rate)
    # The clock is the device's: never ahead of what it took, at most a block or two behind.
    pairs = np.array(report["pairs"])
    assert len(pairs) > 10
    clock_samples = (pairs[:, 1] - begin) * rate
    assert np.all(clock_samples <= pairs[:, 2] + 1e-3)
    assert np.all(clock_samples >= pairs[:, 0] - 2 * rate // 50)
    assert np.all(np.diff(pairs[:, 1]) >= 0)
    assert report["state"] == "idle"
    assert report["detached"] is True
    assert float(report["clock_after"]) >= float(report["last_clock"])  # the pace clock carries on from it


def test_pause_plays_silence_and_stops_the_clock_resume_goes_on_where_the_sound_stopped(
    alsa_home: pathlib.Path,
) -> None:
    speech = speech_like(2.0, seed=1)
    speech.tofile(alsa_home / "speech.raw")
    report = run_child(
        alsa_home,
        """
        avatarkit.audio.STALL_SECONDS = 30.0
        c = controller()
        out = c.start_audio_output("avatarkit_sink")
        speech = np.fromfile(home / "speech.raw", np.int16)
        c.play(speech, sample_rate=16000)
        start = c.playback.current.start
        wait(lambda: c.clock() > start + 0.5, "half a second of speech")
        c.pause()
        states = [c.conversation_state.value]
        at = out.samples_written
        wait(lambda: out.samples_written > at + 32000, "two seconds of silence")
        stood = c.clock()
        at = out.samples_written
        wait(lambda: out.samples_written > at + 16000, "another second")
        still = c.clock()
        c.resume()
        states.append(c.conversation_state.value)
        wait(lambda: c.clock() > start + 2.1, "the rest of the speech")
        c.sample(c.clock())
        states.append(c.conversation_state.value)
        c.stop_audio_output()
        print(json.dumps(dict(start=start, stood=stood, still=still, states=states)))
        """,
    )
    assert report["states"] == ["paused", "playing", "idle"]
    start, stood = float(report["start"]), float(report["stood"])
    assert report["still"] == stood  # the clock stands while paused
    assert stood > start + 0.5
    _, sound = split_on_silence(recording(alsa_home))
    e_first, e_sound = split_on_silence(speech)
    # The sound is the speech with one long silence put in: nothing repeated, nothing skipped.
    gap = len(sound) - len(e_sound)
    assert gap >= 48000  # three seconds of silence or more were handed over
    cut = int(np.argmax(sound[: len(e_sound)] != e_sound))  # where the sound first leaves the speech
    np.testing.assert_array_equal(sound[:cut], e_sound[:cut])
    assert not sound[cut : cut + gap].any()
    np.testing.assert_array_equal(sound[cut + gap :], e_sound[cut:])
    # The clock stood at the time of the last sample played before the silence (or a few samples
    # earlier, where the speech itself has zeros just before the cut).
    played = (e_first + cut) / 16000
    assert start + played - 0.05 <= stood <= start + played + 1e-6


def test_interrupt_drops_what_the_device_has_not_taken(alsa_home: pathlib.Path) -> None:
    speech = speech_like(2.0, seed=2)
    speech.tofile(alsa_home / "speech.raw")
    report = run_child(
        alsa_home,
        """
        avatarkit.audio.STALL_SECONDS = 30.0
        c = controller()
        out = c.start_audio_output("avatarkit_sink")
        speech = np.fromfile(home / "speech.raw", np.int16)
        c.play(speech, sample_rate=16000)
        start = c.playback.current.start
        wait(lambda: c.clock() > start + 0.5, "half a second of speech")
        c.interrupt()
        state = c.conversation_state.value
        at = out.samples_written
        wait(lambda: out.samples_written > at + 32000, "two more seconds")
        c.stop_audio_output()
        print(json.dumps(dict(state=state)))
        """,
    )
    assert report["state"] == "idle"
    _, sound = split_on_silence(recording(alsa_home))
    e_first = int(np.flatnonzero(speech)[0])
    assert 0.5 * 16000 < len(sound) < 1.5 * 16000  # the speech was cut, soon after half a second
    np.testing.assert_array_equal(sound, speech[e_first : e_first + len(sound)])


def test_a_device_at_another_rate_gets_the_speech_resampled(alsa_home: pathlib.Path) -> None:
    """A 48 kHz device: 16 kHz speech (here a 440 Hz tone) arrives three times as long, same pitch."""
    report = run_child(
        alsa_home,
        """
        avatarkit.audio.STALL_SECONDS = 30.0
        c = controller()
        out = c.start_audio_output("avatarkit_sink", sample_rate=48000)
        tone = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 10000).astype(np.int16)
        c.play(tone, sample_rate=16000)
        start = c.playback.current.start
        wait(lambda: out.samples_written > ((start - out.start_time) + 1.5) * 48000, "the tone to be played")
        c.stop_audio_output()
        print(json.dumps(dict(rate=out.sample_rate)))
        """,
    )
    assert report["rate"] == 48000
    _, sound = split_on_silence(recording(alsa_home))
    assert abs(len(sound) - 48000) <= 3
    spectrum = np.abs(np.fft.rfft(sound[3000:45000].astype(np.float64)))
    assert abs(np.argmax(spectrum) * 48000 / 42000 - 440) < 2


def test_a_device_that_stops_calling_back_no_longer_holds_the_clock(alsa_home: pathlib.Path) -> None:
    report = run_child(
        alsa_home,
        """
        c = controller()
        out = c.start_audio_output("avatarkit_sink")
        wait(lambda: out.samples_written > 16000, "the device to play")
        out._stream.stop()  # PortAudio stops calling back, as when a device goes away
        stopped = c.clock()
        time.sleep(4 * avatarkit.audio.STALL_SECONDS)
        ran_to = c.clock()
        out._stream.start()
        at = out.samples_written
        wait(lambda: out.samples_written > at + 3200, "the device to play again")
        print(json.dumps(dict(stopped=stopped, ran_to=ran_to, stalls=out.stalls, next=out.earliest_start())))
        c.stop_audio_output()
        """,
    )
    assert float(report["ran_to"]) > float(report["stopped"])  # the clock ran on by itself
    assert report["stalls"] == 1
    assert float(report["next"]) >= float(report["ran_to"])  # and the sound rejoined it


def test_a_window_plays_on_the_default_device_as_configured(alsa_home: pathlib.Path, display: str) -> None:
    """``Configuration.audio_output``: auto gives windows the default device, not off-screen views;
    none gives no one a device; device gives every view one."""
    require_gl()
    rc = alsa_home / ".asoundrc"
    rc.write_text(rc.read_text() + "pcm.!default avatarkit_sink\n")
    report = run_child(
        alsa_home,
        """
        from avatarkit import AudioOutputMode, AvatarManager, AvatarSDK, AvatarView, Configuration
        from avatarkit import HeadlessSurface, WindowSurface
        from render_helpers import tiny_avatar_glb

        avatar = AvatarManager(cache_dir=home / "cache").derive(tiny_avatar_glb(home / "tiny.glb"))
        found = {}
        for mode in ("auto", "none", "device"):
            AvatarSDK.initialize("local", Configuration(audio_output=mode))
            assert AvatarSDK.configuration.audio_output is AudioOutputMode(mode)
            for kind, surface in (("window", WindowSurface(64, 64, "t")), ("headless", HeadlessSurface(32, 32))):
                view = AvatarView(surface, avatar)
                output = view.avatar_controller.audio_output
                found[f"{mode} {kind}"] = output.device_name if output else None
                if output is not None:
                    at = output.samples_written
                    wait(lambda: output.samples_written > at + 1600, "the view's device to play")
                view.destroy()
                assert view.avatar_controller.audio_output is None
        print(json.dumps(found))
        """,
        env=dict(os.environ, DISPLAY=display),
    )
    assert report == {
        "auto window": "default",
        "auto headless": None,
        "none window": None,
        "none headless": None,
        "device window": "default",
        "device headless": "default",
    }


def test_without_a_device_auto_says_so_once_and_device_fails(tmp_path: pathlib.Path) -> None:
    """No output device (HOME without ALSA devices, no sound server): the pace clock, one info line."""
    _skip_without_portaudio()
    report = run_child(
        tmp_path,
        """
        import logging
        import sounddevice
        if len(sounddevice.query_devices()):
            print(json.dumps(dict(skip=str(sounddevice.query_devices()))))
            raise SystemExit
        lines = []
        handler = logging.Handler()
        handler.emit = lambda record: lines.append((record.levelname, record.getMessage()))
        logging.getLogger("avatarkit").addHandler(handler)
        logging.getLogger("avatarkit").setLevel(logging.INFO)
        from avatarkit import AvatarError, AvatarSDK, Configuration
        c = controller()
        c.configure_audio_output(True)
        c.configure_audio_output(True)
        AvatarSDK.initialize("local", Configuration(audio_output="device"))
        try:
            c.configure_audio_output(False)
            failed = None
        except AvatarError as err:
            failed = [err.code.value, err.message]
        print(json.dumps(dict(output=c.audio_output is not None, lines=lines, failed=failed)))
        """,
        env=dict(os.environ, PULSE_SERVER="unix:/nonexistent", JACK_NO_START_SERVER="1"),
    )
    if "skip" in report:
        pytest.skip(f"this machine has sound devices: {report['skip']}")
    assert report["output"] is False
    (line,) = report["lines"]
    assert line[0] == "INFO" and line[1].startswith("no sound output device")
    code, message = report["failed"]
    assert code == "invalidArgument"
    assert message.startswith("cannot open the sound output")


def test_without_sounddevice_auto_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The ``audio`` extra missing: views run on the pace clock; asking for a device fails clearly."""
    import avatarkit.audio as audio
    from avatarkit import AudioOutputMode, AvatarError
    from avatarkit.controller import AvatarController

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import sounddevice raises ImportError
    monkeypatch.setattr(audio, "_told", set())
    stub = type("View", (), {"avatar": type("Avatar", (), {"idle_clip": staticmethod(lambda: b"")})()})()
    controller = AvatarController(stub)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger="avatarkit")
    controller.configure_audio_output(True)
    controller.configure_audio_output(True)
    assert controller.audio_output is None
    told = [r.getMessage() for r in caplog.records if r.name == "avatarkit.audio"]
    assert told == ["no sound output (sounddevice or PortAudio is not installed): the clock runs at the audio's pace"]
    with pytest.raises(AvatarError, match="sound output needs sounddevice"):
        controller.start_audio_output()
    assert AudioOutputMode("none") is AudioOutputMode.NONE


def test_the_microphone_delivers_what_the_device_records(alsa_home: pathlib.Path) -> None:
    recorded = speech_like(1.0, seed=3)
    recorded.tofile(alsa_home / "mic.raw")
    report = run_child(
        alsa_home,
        """
        import asyncio
        from avatarkit.audio import MicrophoneInput

        async def main():
            mic = MicrophoneInput(16000, chunk_ms=40, device="avatarkit_mic")
            chunks = []
            async for chunk in mic.chunks():
                chunks.append(chunk)
                if len(chunks) == 20:
                    mic.stop()
            data = np.concatenate(chunks)
            data[:12800].tofile(home / "got.raw")
            return dict(sizes=sorted({len(c) for c in chunks}), overflows=mic.overflows, rate=mic.device_rate)

        print(json.dumps(asyncio.run(main())))
        """,
    )
    assert report["sizes"] == [640]  # 40 ms chunks at 16 kHz
    assert report["rate"] == 16000
    got = np.fromfile(alsa_home / "got.raw", np.int16)
    np.testing.assert_array_equal(got, recorded[:12800])


def test_a_microphone_at_another_rate_is_resampled() -> None:
    """Chunks recorded at 48 kHz come out at 16 kHz, continuous across chunks (FFmpeg's resampler)."""
    from avatarkit.audio import StreamResampler

    t = np.arange(48000) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    resample = StreamResampler(48000, 16000)
    out = np.concatenate([resample(tone[i : i + 1920]) for i in range(0, len(tone), 1920)])
    assert 16000 - 64 <= len(out) <= 16000
    spectrum = np.abs(np.fft.rfft(out[1000:15000].astype(np.float64)))
    assert abs(np.argmax(spectrum) * 16000 / 14000 - 440) < 2


class PacedMicrophone:
    """A microphone that speaks in real time: a FIFO that ALSA's ``file`` device reads as its input,
    fed 40 ms of ``pcm`` at a time, then silence. (A plain file would be read as fast as the reader
    asks; the pace only keeps the amount of audio sensible, nothing is timed.)"""

    def __init__(self, path: pathlib.Path, pcm: np.ndarray) -> None:
        self.path = path
        os.mkfifo(path)
        self._pcm = pcm
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        chunk = 640
        index = 0
        while not self._stop.is_set():
            fd = os.open(self.path, os.O_WRONLY)  # waits for the device to open it
            try:
                while not self._stop.is_set():
                    part = self._pcm[index * chunk : (index + 1) * chunk]
                    os.write(fd, np.pad(part, (0, chunk - len(part))).tobytes())
                    index += 1
                    self._stop.wait(0.04)
            except BrokenPipeError:
                pass  # PortAudio opened the device only to look at it, or the stream stopped
            finally:
                os.close(fd)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # let a writer waiting for a reader go
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
        self._thread.join(10)


def test_view_speaks_through_the_microphone_and_m_toggles_it(alsa_home: pathlib.Path, display: str) -> None:
    """``avatarkit view --mic``: the default input is a microphone speaking; its chunks go to the
    built-in service and its motion comes back; M (pressed with xdotool when it is installed) ends
    the conversation and starts another, and the window's title says when it listens."""
    require_gl()
    mic = PacedMicrophone(alsa_home / "mic.fifo", speech_like(6.0, seed=5))
    (alsa_home / ".asoundrc").write_text(
        f'pcm.!default {{ type file slave.pcm "null" file "/dev/null" infile "{mic.path}" format "raw" }}\n'
    )
    xdotool = shutil.which("xdotool")
    env = dict(os.environ, HOME=str(alsa_home), DISPLAY=display)
    seconds = "6" if xdotool else "2.5"
    command = [sys.executable, "-m", "avatarkit", "view", "--mic", "--no-sound", "--seconds", seconds]
    errors = alsa_home / "stderr.txt"
    with errors.open("w") as err:
        proc = subprocess.Popen([*command, "--size", "160x160"], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    out: list[str] = []
    reader = threading.Thread(target=lambda: [lines.put(x.rstrip()) for x in proc.stdout or []], daemon=True)
    reader.start()

    def expect(wanted: str) -> None:
        while wanted not in out:
            try:
                out.append(lines.get(timeout=120))
            except queue.Empty:
                proc.kill()
                raise AssertionError(f"no {wanted!r} from avatarkit view; it said {out}") from None

    def x(*args: str) -> str:
        assert xdotool is not None
        return subprocess.run([xdotool, *args], capture_output=True, text=True, env=env, check=True).stdout.strip()

    titles = []
    try:
        expect("avatarkit: listening to the microphone; M toggles it")
        if xdotool:
            window = x("search", "--name", "^AvatarKit - ").split()[0]
            titles.append(x("getwindowname", window))
            x("mousemove", "--window", window, "40", "40")
            x("key", "m")
            expect("avatarkit: microphone off")
            titles.append(x("getwindowname", window))
            x("key", "m")
            expect("avatarkit: microphone on")
            titles.append(x("getwindowname", window))
        proc.wait(timeout=300)
    finally:
        proc.kill()
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
        mic.close()
    while not lines.empty():
        out.append(lines.get())
    assert proc.returncode == 0, errors.read_text()
    assert "avatarkit: no sound device" in out
    line = next(x for x in out if x.startswith("avatarkit: microphone:"))
    sent, conversations, frames = (int(w) for w in line.split() if w.isdigit())
    assert sent > 25  # chunks went to the service
    assert frames > 20  # and the service's motion came back for them
    if xdotool:
        title = titles[1]  # "AvatarKit - " and the avatar's name
        assert titles == [f"{title} - listening", title, f"{title} - listening"]
        assert conversations == 2
    else:
        assert conversations == 1


def test_view_plays_a_speech_file_on_the_default_device(alsa_home: pathlib.Path, display: str) -> None:
    """``avatarkit view --speech``: the window's speech reaches the default output device, whole."""
    require_gl()
    speech = speech_like(1.0, seed=6)
    with wave.open(str(alsa_home / "speech.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(speech.tobytes())
    # This device takes samples as fast as they come for as long as the window is open: gzip keeps
    # the silence small.
    (alsa_home / ".asoundrc").write_text(
        f'pcm.!default {{ type file slave.pcm "null" file "| gzip -1 > {alsa_home / "out.raw.gz"}" format "raw" }}\n'
    )
    env = dict(os.environ, HOME=str(alsa_home), DISPLAY=display)
    command = [sys.executable, "-m", "avatarkit", "view", "--speech", str(alsa_home / "speech.wav")]
    result = subprocess.run(
        [*command, "--seconds", "1", "--size", "160x160"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "avatarkit: sound on default" in result.stdout
    with gzip.open(alsa_home / "out.raw.gz") as heard:
        _, sound = split_on_silence(np.frombuffer(heard.read(), "<i2"))
    _, e_sound = split_on_silence(speech)
    np.testing.assert_array_equal(sound, e_sound)


PULSE_PLUGIN = pathlib.Path("/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so")


@pytest.fixture
def pulse_home(alsa_home: pathlib.Path):  # type: ignore[no-untyped-def]
    """A PulseAudio server of the test's own with a null sink (it plays in real time), reached through
    ALSA's pulse plugin under a ``file`` device that records what passes."""
    server = shutil.which("pulseaudio")
    if server is None or not PULSE_PLUGIN.exists():
        pytest.skip("PulseAudio and ALSA's pulse plugin are not installed (pulseaudio, libasound2-plugins)")
    runtime = alsa_home / "pulse"
    runtime.mkdir()
    env = dict(os.environ, HOME=str(alsa_home), PULSE_RUNTIME_PATH=str(runtime), XDG_RUNTIME_DIR=str(runtime))
    env.pop("PULSE_SERVER", None)
    proc = subprocess.Popen(
        [server, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--log-target=stderr",
         "--load=module-native-protocol-unix", "--load=module-null-sink sink_name=avatarkit rate=16000 channels=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    give_up = time.monotonic() + 20
    while not (runtime / "native").exists():
        if proc.poll() is not None or time.monotonic() > give_up:
            proc.kill()
            pytest.skip("PulseAudio did not start here")
        time.sleep(0.05)
    rc = alsa_home / ".asoundrc"
    rc.write_text(
        rc.read_text()
        + f'pcm.avatarkit_paced {{ type file slave.pcm "pulse" file "{alsa_home / "out.raw"}" format "raw" }}\n'
    )
    try:
        yield alsa_home, env
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_device_with_its_own_clock_paces_the_speech(pulse_home) -> None:  # type: ignore[no-untyped-def]
    """On a device that plays in real time, the device reports how much it holds, and the clock is
    the sample at its output: the speech arrives whole, and the device took no more than the speech
    and its buffer while it played (a clockless device takes thousands of times more)."""
    home, env = pulse_home
    speech = speech_like(1.5, seed=4)
    speech.tofile(home / "speech.raw")
    report = run_child(
        home,
        """
        c = controller()
        out = c.start_audio_output("avatarkit_paced")
        speech = np.fromfile(home / "speech.raw", np.int16)
        c.play(speech, sample_rate=16000)
        start = c.playback.current.start
        at_start = round((start - out.start_time) * out.sample_rate)
        wait(lambda: c.clock() >= start + len(speech) / 16000, "the speech to be heard")
        taken = out.samples_written - at_start
        ahead = out.earliest_start() - c.clock()
        c.stop_audio_output()
        print(json.dumps(dict(taken=taken, ahead=ahead, stalls=out.stalls, latency=out.latency)))
        """,
        env=env,
    )
    _, sound = split_on_silence(recording(home))
    _, e_sound = split_on_silence(speech)
    if report["stalls"] == 0:
        np.testing.assert_array_equal(sound, e_sound)
    # When the last sample is heard, the device holds at most its buffer beyond it.
    assert len(speech) <= int(report["taken"]) < len(speech) + 16000 * 0.5
    assert 0.0 <= float(report["ahead"]) < 0.5
