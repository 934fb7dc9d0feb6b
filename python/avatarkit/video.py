"""Speech to a talking-avatar video, faster than real time: the engine of ``avatarkit render`` and ``demo``.

The motion comes from the engine in this process, or from a driving service (``motion`` given);
then each video frame is rendered at its exact time on the conversation's clock and written with
the audio that plays during it, so picture and sound are in sync to the frame.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from .engine import EngineSession
from .media import VideoWriter
from .view import AvatarView

F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]

#: Idle time before and after the speech in a rendered clip (seconds).
LEAD_IN = 0.3
TAIL = 0.6


@dataclasses.dataclass
class RenderReport:
    """What a render did and where the time went (seconds per stage)."""

    frames: int
    seconds_of_video: float
    stages: dict[str, float]
    output: pathlib.Path | None = None
    #: Wall time from decode to the closed file. Less than the sum of the stages: the render thread
    #: draws the next frame while this one is encoded.
    wall: float | None = None

    @property
    def total(self) -> float:
        """Wall time of the whole render (the sum of the stages when it was not measured)."""
        return self.wall if self.wall is not None else sum(self.stages.values())

    @property
    def speed(self) -> float:
        """Seconds of video per second of work (above 1: faster than real time)."""
        return self.seconds_of_video / self.total if self.total else float("inf")

    def table(self) -> str:
        """The stage times as a small text table."""
        lines = [f"{name:<9} {secs:7.2f} s" for name, secs in self.stages.items()]
        if self.wall is not None:
            lines.append(f"{'(sum)':<9} {sum(self.stages.values()):7.2f} s  (render and encode overlap)")
        lines.append(f"{'wall':<9} {self.total:7.2f} s  ({self.speed:.1f}x real time, {self.frames} frames)")
        return "\n".join(lines)


def local_motion(pcm: I16, sample_rate: int) -> F32:
    """Run the engine in this process over the whole utterance: ``frames x 73`` canonical channels."""
    session = EngineSession(sample_rate)
    frames = [session.push(pcm), session.flush()]
    return np.concatenate([f for f in frames if len(f)])


def render_video(
    view: AvatarView,
    pcm: I16,
    sample_rate: int,
    output: str | pathlib.Path | None,
    *,
    fps: float = 30.0,
    motion: F32 | None = None,
    png_dir: str | pathlib.Path | None = None,
    stages: dict[str, float] | None = None,
    on_frame: Callable[[int, int], object] | None = None,
    lanes: int = 2,
) -> RenderReport:
    """Render ``pcm`` spoken by ``view``'s avatar to ``output`` (a video file) and/or PNG files.

    Args:
        view: a headless view; its size is the video's size.
        pcm: mono int16 speech at ``sample_rate``.
        output: ``.mp4`` (H.264 + AAC), ``.mov`` (ProRes 4444 with alpha), ``.webm`` (VP9 with alpha), or None.
        motion: canonical channel frames at 25 fps; by default the engine runs here.
        png_dir: also (or only) write ``frame_00000.png`` ... there (RGBA).
        stages: stage times measured before (decode), merged into the report.
        on_frame: progress callback ``(done, total)``.
        lanes: GL contexts drawing frames side by side (see :meth:`AvatarView.render_frames_sync`).
    """
    times = dict(stages or {})
    t0 = time.perf_counter()
    if motion is None:
        motion = local_motion(pcm, sample_rate)
    times["engine"] = times.get("engine", 0.0) + time.perf_counter() - t0

    controller = view.avatar_controller
    start = controller.clock() + 1000.0  # a stretch of clock nothing else uses
    controller.play(pcm, motion, sample_rate=sample_rate, start=start)
    duration = LEAD_IN + len(pcm) / sample_rate + TAIL
    count = round(duration * fps)
    before = dict(view.stage_seconds)
    writer = VideoWriter(output, view.container.width, view.container.height, fps, sample_rate) if output else None
    png_path = pathlib.Path(png_dir) if png_dir is not None else None
    if png_path is not None:
        png_path.mkdir(parents=True, exist_ok=True)
    encode = 0.0
    # Audio by sample counts so rounding never drifts: frame k carries samples [k*sr/fps, (k+1)*sr/fps).
    padded = np.concatenate([np.zeros(round(LEAD_IN * sample_rate), np.int16), pcm])
    try:
        # Working ahead on two GL contexts: they draw the next frames while this thread encodes.
        frames = view.render_frames_sync((start - LEAD_IN + k / fps for k in range(count)), lanes=lanes)
        for k, frame in enumerate(frames):
            e0 = time.perf_counter()
            a, b = round(k * sample_rate / fps), round((k + 1) * sample_rate / fps)
            chunk = padded[a:b]
            if len(chunk) < b - a:
                chunk = np.concatenate([chunk, np.zeros(b - a - len(chunk), np.int16)])
            if writer is not None:
                writer.write(frame.image, chunk)
            if png_path is not None:
                (png_path / f"frame_{k:05d}.png").write_bytes(frame.to_png())
            encode += time.perf_counter() - e0
            if on_frame is not None:
                on_frame(k + 1, count)
    finally:
        if writer is not None:
            e0 = time.perf_counter()
            writer.close()
            encode += time.perf_counter() - e0
    controller.interrupt()
    for name in ("pose", "render", "readback"):
        times[name] = view.stage_seconds[name] - before[name]
    times["encode"] = encode
    order = ["decode", "engine", "pose", "render", "readback", "encode"]
    ordered = {k: times[k] for k in order if k in times}
    wall = times.get("decode", 0.0) + time.perf_counter() - t0
    return RenderReport(count, count / fps, ordered, pathlib.Path(output) if output else None, wall)
