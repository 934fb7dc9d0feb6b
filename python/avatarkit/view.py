"""AvatarView: the rendering surface of an avatar, in a window or headless, and its controller.

Each view owns one OpenGL context and one render thread that owns it: every GL call of the view
happens there, in order. The asyncio side submits work and awaits futures; it never blocks on GL.
Headless views render on demand (:meth:`AvatarView.render_frame`, :meth:`AvatarView.frames`);
window views also draw continuously at the display's rate.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import io
import itertools
import logging
import math
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ._core import render as _render
from .assets.gltf import AlphaMode, Material
from .controller import AvatarController
from .errors import AvatarError, AvatarErrorCode
from .manager import Avatar
from .rig import AvatarRig

log = logging.getLogger(__name__)

T = TypeVar("T")
F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


#: The EGL platforms a :class:`HeadlessSurface` can ask for.
HEADLESS_DEVICES = ("auto", "surfaceless", "device")
#: What :meth:`AvatarView.frame` can point the camera at.
FRAMINGS = ("head_and_shoulders", "upper_body", "full_body")


@dataclasses.dataclass(frozen=True)
class HeadlessSurface:
    """Render off screen into frames of ``width`` x ``height`` pixels.

    ``device``: ``"auto"`` (the GPU's EGL device when there is one, else Mesa's software renderer),
    ``"surfaceless"`` or ``"device"``. ``samples``: MSAA samples (0 turns anti-aliasing off).
    ``antialias``: see :data:`ANTIALIAS_MODES`.
    """

    width: int = 512
    height: int = 512
    samples: int = 4
    device: str = "auto"
    antialias: str = "auto"


@dataclasses.dataclass(frozen=True)
class WindowSurface:
    """Render into a desktop window (glfw): one we open, or the app's own ``window`` handle."""

    width: int = 720
    height: int = 720
    title: str = "AvatarKit"
    window: Any = None
    samples: int = 4
    vsync: bool = True
    antialias: str = "auto"


#: How a surface smooths edges. ``"msaa"``: multisampling with ``samples`` samples. ``"fxaa"``: a
#: post-process edge filter, run only on the tiles that a silhouette or a mesh border crosses, a
#: small fraction of MSAA's cost on a software rasterizer (Mesa's llvmpipe renders 4x MSAA about
#: 2.3 times slower than no AA; the filter adds about a fifth).
#: ``"none"``. ``"auto"`` (the default): MSAA on a GPU, the filter in software; either only when
#: ``samples`` > 1, so ``samples=0`` still turns anti-aliasing off.
ANTIALIAS_MODES = ("auto", "msaa", "fxaa", "none")


def _antialiasing(surface: HeadlessSurface | WindowSurface, software: bool) -> tuple[int, bool]:
    """The (MSAA samples, post filter) a surface asks for on this GL."""
    mode = surface.antialias
    if mode not in ANTIALIAS_MODES:
        raise AvatarError(
            AvatarErrorCode.INVALID_ARGUMENT, f"antialias must be one of {', '.join(ANTIALIAS_MODES)}, not {mode!r}"
        )
    if mode == "auto":
        mode = "none" if surface.samples <= 1 else "fxaa" if software else "msaa"
    return (surface.samples if mode == "msaa" else 0), mode == "fxaa"


@dataclasses.dataclass(frozen=True)
class VideoFrame:
    """One rendered frame: ``image`` is ``uint8 (height, width, 4)`` RGBA, ``timestamp`` in seconds."""

    image: U8
    timestamp: float

    def to_png(self) -> bytes:
        """The frame as PNG bytes."""
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(self.image, "RGBA").save(buf, format="PNG")
        return buf.getvalue()


Background = tuple[float, float, float] | tuple[float, float, float, float] | str | os.PathLike[str] | U8 | None


class _RenderThread:
    """A thread that owns a GL context and runs submitted callables in order."""

    def __init__(self, name: str, make_context: Callable[[], Any]) -> None:
        self._tasks: queue.Queue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None] = queue.Queue()
        self._make_context = make_context
        self.context: Any = None
        self.idle_hook: Callable[[], float | None] | None = None  # returns seconds to wait, None = block
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = concurrent.futures.Future[None]()
        self._thread.start()
        self._started.result()

    def _run(self) -> None:
        try:
            self.context = self._make_context()
        except BaseException as err:
            self._started.set_exception(err)
            return
        self._started.set_result(None)
        while True:
            timeout = self.idle_hook() if self.idle_hook is not None else None
            try:
                item = self._tasks.get(timeout=timeout) if timeout is None or timeout > 0 else self._tasks.get_nowait()
            except queue.Empty:
                continue
            if item is None:
                break
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as err:
                future.set_exception(err)
        try:
            self.context.close()
        except Exception:
            log.exception("closing the GL context failed")

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if not self._thread.is_alive():
            future.set_exception(AvatarError(AvatarErrorCode.DESTROYED, "this AvatarView was destroyed"))
            return future
        self._tasks.put((fn, future))
        return future

    def stop(self) -> None:
        if self._thread.is_alive():
            self._tasks.put(None)
            if threading.current_thread() is not self._thread:
                self._thread.join()


def _look_at(eye: npt.ArrayLike, target: npt.ArrayLike, up: npt.ArrayLike = (0.0, 1.0, 0.0)) -> F32:
    e, t, u = (np.asarray(v, np.float64) for v in (eye, target, up))
    f = t - e
    f /= np.linalg.norm(f)
    s = np.cross(f, u)
    s /= np.linalg.norm(s)
    u2 = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = s, u2, -f
    m[:3, 3] = -m[:3, :3] @ e
    return m.astype(np.float32)


def _perspective(fov_y_deg: float, aspect: float, near: float, far: float) -> F32:
    f = 1.0 / math.tan(math.radians(fov_y_deg) / 2.0)
    m = np.zeros((4, 4), np.float32)
    m[0, 0], m[1, 1] = f / aspect, f
    m[2, 2], m[2, 3] = (far + near) / (near - far), 2 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


@dataclasses.dataclass
class Camera:
    """Where the view looks from: ``target`` (metres), ``distance``, angles in degrees, vertical fov."""

    target: tuple[float, float, float] = (0.0, 1.6, 0.0)
    distance: float = 0.65
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    fov_y_deg: float = 30.0

    def eye(self) -> npt.NDArray[np.float64]:
        """The camera position (the avatar faces +Z: yaw 0 looks at its face)."""
        yaw, pitch = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        offset = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        return np.asarray(self.target, np.float64) + self.distance * offset


class _Scene:
    """The avatar in GL: built, posed and drawn on the render thread only."""

    def __init__(self, avatar: Avatar, renderer: Any, surface: HeadlessSurface | WindowSurface) -> None:
        self.renderer = renderer
        model = avatar.model()
        self.rig = AvatarRig(model, avatar.manifest.rig)
        textures: dict[tuple[int, bool], int] = {}

        def texture(image: int | None, srgb: bool) -> int:
            if image is None:
                return -1
            key = (image, srgb)
            if key not in textures:
                try:
                    textures[key] = renderer.add_texture(model.images[image].rgba(), srgb)
                except AvatarError as err:
                    log.warning("skipping texture %d: %s", image, err)
                    textures[key] = -1
            return textures[key]

        materials: dict[int | None, int] = {}

        def material(index: int | None) -> int:
            if index in materials:
                return materials[index]
            mat = model.materials[index] if index is not None else Material(metallic_factor=0.0, roughness_factor=0.6)
            base = mat.base_color_factor
            emissive = tuple(c * mat.emissive_strength for c in mat.emissive_factor)
            base_tex = texture(mat.base_color_texture.image if mat.base_color_texture else None, True)
            materials[index] = renderer.add_material(
                base_color=base,
                base_color_texture=base_tex,
                normal_texture=texture(mat.normal_texture.image if mat.normal_texture else None, False),
                normal_scale=mat.normal_texture.scale if mat.normal_texture else 1.0,
                metallic_roughness_texture=texture(
                    mat.metallic_roughness_texture.image if mat.metallic_roughness_texture else None, False
                ),
                occlusion_texture=texture(mat.occlusion_texture.image if mat.occlusion_texture else None, False),
                occlusion_strength=mat.occlusion_texture.scale if mat.occlusion_texture else 1.0,
                emissive_texture=texture(mat.emissive_texture.image if mat.emissive_texture else None, True),
                emissive=emissive,
                metallic=mat.metallic_factor,
                roughness=mat.roughness_factor,
                alpha_mode={
                    AlphaMode.OPAQUE: _render.AlphaMode.OPAQUE,
                    AlphaMode.MASK: _render.AlphaMode.MASK,
                    AlphaMode.BLEND: _render.AlphaMode.BLEND,
                }[mat.alpha_mode],
                alpha_cutoff=mat.alpha_cutoff,
                double_sided=mat.double_sided,
                unlit=mat.unlit,
            )
            return materials[index]

        self.mesh_ids: list[int] = []
        for prim in self.rig.primitives:
            self.mesh_ids.append(
                renderer.add_mesh(
                    prim.positions,
                    prim.normals,
                    prim.data.texcoords,
                    prim.data.indices,
                    material(prim.data.material),
                )
            )
        self.dynamic = [p.morph is not None or p.skinned for p in self.rig.primitives]
        self.avatar = avatar
        self.camera = self.default_camera()
        self.aspect = surface.width / surface.height

    def default_camera(self) -> Camera:
        """The bundle's framing, or head and shoulders."""
        cam = dict(self.avatar.manifest.camera)
        if "target" in cam and "distance" in cam:
            return Camera(
                target=tuple(float(v) for v in cam["target"]),  # type: ignore[arg-type]
                distance=float(cam["distance"]),
                fov_y_deg=float(cam.get("fov_y_deg", 30.0)),
            )
        # No framing in the bundle: head and shoulders, from the head joint or the top of the model.
        lo, hi = self.rig.bounds()
        head = self.rig.head_position()
        if head is not None:
            target = (float(head[0]), float(head[1]) + 0.02, float(head[2]))
        else:
            target = (float(lo[0] + hi[0]) / 2, float(hi[1]) - 0.12, float(lo[2] + hi[2]) / 2)
        return Camera(target=target, distance=0.95, fov_y_deg=30.0)

    def submit(self, stages: dict[str, float] | None = None) -> None:
        """Upload the posed vertices and draw them (the GL may still be drawing when this returns)."""
        for mesh_id, prim, dynamic in zip(self.mesh_ids, self.rig.primitives, self.dynamic, strict=True):
            if dynamic:
                self.renderer.update_mesh(mesh_id, prim.positions, prim.normals)
            self.renderer.set_mesh_transform(mesh_id, self.rig.model_matrix(prim))
        cam = self.camera
        eye = cam.eye()
        near = max(0.01, cam.distance * 0.05)
        self.renderer.set_camera(
            _look_at(eye, cam.target),
            _perspective(cam.fov_y_deg, self.aspect, near, cam.distance * 20),
            eye.tolist(),
        )
        t0 = time.perf_counter()
        self.renderer.render()
        if stages is not None:
            stages["render"] += time.perf_counter() - t0


@dataclasses.dataclass
class _Lane:
    """A scene on one GL context: the view's own, or an extra one that draws every other frame of a batch."""

    scene: _Scene
    #: Seconds per stage spent on this lane (the view's ``stage_seconds`` for its own lane).
    stages: dict[str, float]
    #: The time the rig is posed for, ahead of its draw.
    posed_at: float | None = None


def _background_image(source: str | os.PathLike[str] | U8) -> U8:
    if isinstance(source, np.ndarray):
        image = np.asarray(source, np.uint8)
        if image.ndim == 3 and image.shape[2] == 3:
            image = np.concatenate([image, np.full((*image.shape[:2], 1), 255, np.uint8)], axis=2)
        if image.ndim != 3 or image.shape[2] != 4:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "a background image must be (height, width, 3 or 4)")
        return np.ascontiguousarray(image)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as img:
            return np.asarray(img.convert("RGBA"), np.uint8)
    except (OSError, UnidentifiedImageError) as err:
        raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"cannot read background image {source}: {err}") from err


class AvatarView:
    """Where an avatar is drawn, and its :class:`AvatarController` (``view.avatar_controller``).

    Args:
        container: a :class:`HeadlessSurface` (off screen) or a :class:`WindowSurface` (desktop window).
        avatar: a loaded :class:`~avatarkit.manager.Avatar` (several views may share one).
        background: an RGB or RGBA colour (0..1; alpha 0 for a transparent frame), an image file or
            array, or None for transparent.
        fps: the rate of :meth:`frames` and of window drawing when there is no vsync.

    Raises:
        AvatarError: ``renderFailed`` when no OpenGL context can be made (no EGL display or no
            OpenGL 3.3 core for a headless surface; no window system, as without ``DISPLAY``, for
            a window); the GL layer's error (``avatarkit.gl.egl.EglError``,
            ``avatarkit.gl.window.WindowError``) is its ``__cause__``. ``invalidArgument`` for a
            bad container, size, fps, device or background.
    """

    def __init__(
        self,
        container: HeadlessSurface | WindowSurface,
        avatar: Avatar,
        *,
        background: Background = (0.93, 0.94, 0.96),
        fps: float = 30.0,
    ) -> None:
        if not isinstance(container, HeadlessSurface | WindowSurface):
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "container must be a HeadlessSurface or WindowSurface")
        if not 1 <= container.width <= 8192 or not 1 <= container.height <= 8192:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "the view's size must be 1..8192 pixels")
        if not 1.0 <= fps <= 240.0:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "fps must be within 1..240")
        self.container = container
        self.avatar = avatar
        self.fps = float(fps)
        self.on_first_rendering: Callable[[], object] | None = None
        self._first_rendered = False
        self._paused = False
        self._destroyed = False
        self._last_frame: VideoFrame | None = None
        self._frame_times: list[float] = []
        self._background = background
        self._transform = (0.0, 0.0, 1.0)
        #: The second render lane of batches (render_frames_sync(lanes=2)), made on first use.
        self._extra: tuple[_RenderThread, _Lane] | None = None
        self._extra_state: tuple[Background, tuple[float, float, float]] = (background, self._transform)
        self._rate_reported = time.monotonic()
        #: Seconds spent per stage since the view was made: ``pose`` (channels, rig and deformation,
        #: upload), ``render`` (issuing the GL draw), ``readback`` (waiting for the frame, copying it).
        self.stage_seconds: dict[str, float] = {"pose": 0.0, "render": 0.0, "readback": 0.0}

        window = isinstance(container, WindowSurface)
        if isinstance(container, HeadlessSurface) and container.device not in HEADLESS_DEVICES:
            raise AvatarError(
                AvatarErrorCode.INVALID_ARGUMENT,
                f"HeadlessSurface.device must be one of {', '.join(HEADLESS_DEVICES)}, not {container.device!r}",
            )

        def make_context() -> Any:
            # No GL context (no EGL display, no window system): the public contract is renderFailed,
            # with the GL layer's own error as the cause.
            from .gl.egl import EglContext, EglError
            from .gl.window import WindowError

            failures: tuple[type[Exception], ...] = (EglError, WindowError)
            try:
                if window:
                    from .gl.window import GlfwWindow

                    with contextlib.suppress(ImportError):
                        import glfw

                        failures += (glfw.GLFWError,)  # glfw raises it when its errors are set to raise
                    assert isinstance(container, WindowSurface)
                    return GlfwWindow(
                        container.width, container.height, container.title, container.window, container.vsync
                    )
                assert isinstance(container, HeadlessSurface)
                return EglContext(container.device)
            except failures as err:
                what = "window" if window else "headless OpenGL context"
                detail = " ".join(str(err).split()) or type(err).__name__
                message = f"cannot open a {what} for the view: {detail}"
                raise AvatarError(AvatarErrorCode.RENDER_FAILED, message) from err

        self._make_context = make_context
        self._thread = _RenderThread(f"avatarkit-render-{id(self):x}", make_context)
        self.avatar_controller = AvatarController(self)
        try:
            scene = self._thread.submit(lambda: self._build(self._thread, background)).result()
        except BaseException:
            self._thread.stop()
            raise
        self._lane = _Lane(scene, self.stage_seconds)
        try:
            # The sound device Configuration.audio_output asks for (a window's default: one if there is one).
            self.avatar_controller.configure_audio_output(window)
        except BaseException:
            self.destroy()
            raise
        if window:
            self._thread.idle_hook = self._window_tick
            self._thread.submit(lambda: None)  # wake the thread so it starts drawing

    @property
    def controller(self) -> AvatarController:
        """Alias of :attr:`avatar_controller`."""
        return self.avatar_controller

    # -- render thread ------------------------------------------------------------------------------

    @property
    def _scene(self) -> _Scene:
        return self._lane.scene

    def _build(self, thread: _RenderThread, background: Background) -> _Scene:
        ctx = thread.context
        renderer = _render.Renderer(ctx.proc_address, self.container.width, self.container.height, 0)
        try:
            renderer.set_antialiasing(*_antialiasing(self.container, renderer.software))
            scene = _Scene(self.avatar, renderer, self.container)
            self._apply_background(renderer, background)
        except BaseException:
            renderer.close()
            raise
        return scene

    @staticmethod
    def _apply_background(renderer: Any, background: Background) -> None:
        if background is None:
            renderer.set_background(0.0, 0.0, 0.0, 0.0)
            renderer.set_background_image(None)
        elif isinstance(background, tuple):
            rgba = (*background, 1.0) if len(background) == 3 else background
            renderer.set_background(*(float(c) for c in rgba))
            renderer.set_background_image(None)
        else:
            renderer.set_background(0.0, 0.0, 0.0, 1.0)
            renderer.set_background_image(_background_image(background))

    def _pose(self, t: float, lane: _Lane | None = None) -> None:
        lane = lane or self._lane
        t0 = time.perf_counter()
        lane.scene.rig.pose(self.avatar_controller.sample(t), t)
        lane.posed_at = t
        lane.stages["pose"] += time.perf_counter() - t0

    def _draw(self, t: float, lane: _Lane | None = None) -> None:
        lane = lane or self._lane
        if lane.posed_at != t:
            self._pose(t, lane)
        lane.posed_at = None
        lane.scene.submit(lane.stages)
        self._frame_times.append(time.monotonic())
        del self._frame_times[:-120]

    def _check_gl(self, lane: _Lane | None = None) -> None:
        error = (lane or self._lane).scene.renderer.gl_error()
        if error:
            raise AvatarError(AvatarErrorCode.RENDER_FAILED, f"OpenGL error 0x{error:04x}")

    def _render_read(self, t: float, next_t: float | None = None, lane: _Lane | None = None) -> VideoFrame:
        lane = lane or self._lane
        self._draw(t, lane)
        if next_t is not None:
            # Pose the next frame on the CPU while the GL (a software rasterizer's threads) draws this one.
            self._pose(next_t, lane)
        t0 = time.perf_counter()
        frame = VideoFrame(lane.scene.renderer.read_pixels(), t)
        lane.stages["readback"] += time.perf_counter() - t0
        self._check_gl(lane)
        return frame

    def _window_tick(self) -> float | None:
        ctx = self._thread.context
        if self._destroyed or ctx is None:
            return None
        if ctx.should_close():
            return 0.1
        if not self._paused:
            self._draw(self.avatar_controller.clock())
            w, h = ctx.framebuffer_size()
            self._scene.renderer.present(w, h)
            self._notify_first()
            self._report_rate()
        ctx.swap()
        return 0.0 if self.container.vsync else 1.0 / self.fps  # type: ignore[union-attr]

    def _notify_first(self) -> None:
        if not self._first_rendered:
            self._first_rendered = True
            if self.on_first_rendering is not None:
                try:
                    self.on_first_rendering()
                except Exception:
                    log.exception("on_first_rendering callback failed")

    # -- public -------------------------------------------------------------------------------------

    def _live(self) -> None:
        if self._destroyed:
            raise AvatarError(AvatarErrorCode.DESTROYED, "this AvatarView was destroyed")

    def _call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        self._live()
        return self._thread.submit(fn)

    def run_on_render_thread(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run ``fn`` on the view's render thread, the one that owns its GL context (and window).

        For what must happen there: glfw input callbacks and window calls on the view's own window.

        Raises:
            AvatarError: ``destroyed`` after :meth:`destroy`.
        """
        return self._call(fn)

    @property
    def window(self) -> Any:
        """The glfw window of a :class:`WindowSurface` view (use it on the render thread), else None."""
        return getattr(self._thread.context, "window", None)

    @property
    def close_requested(self) -> bool:
        """Whether the user asked the view's window to close (always False off screen)."""
        should_close = getattr(self._thread.context, "should_close", None)
        return bool(should_close()) if should_close is not None else False

    def render_frame_sync(self, t: float | None = None) -> VideoFrame:
        """Render and read back the frame for playback time ``t`` (now by default), blocking."""
        when = self.avatar_controller.clock() if t is None else float(t)
        frame = self._call(lambda: self._render_read(when)).result()
        self._after_frame(frame)
        return frame

    def render_frames_sync(self, times: Iterable[float], *, lanes: int = 1) -> Iterator[VideoFrame]:
        """Render and read back a frame for each playback time in ``times``, in order, working ahead.

        While the caller handles a frame (encodes it, writes it), the render thread already draws
        the next, so rendering and the caller's work overlap. Stopping the iteration early waits
        for the frames in flight.

        Args:
            times: playback times, one per frame.
            lanes: 1, or 2 to draw on two GL contexts side by side: a second context with its own
                copy of the scene (same camera, background and transform) draws every other frame.
                It is made on first use (about 80 ms on llvmpipe) and kept until :meth:`destroy`.
                On a software rasterizer the contexts overlap each other's single-threaded work
                (posing, vertex work, binning, readback): 10-30 % more frames per second on two
                cores. The frames are the same either way.
        """
        if lanes not in (1, 2):
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "lanes must be 1 or 2")
        self._live()
        workers: list[tuple[_RenderThread, _Lane]] = [(self._thread, self._lane)]
        if lanes == 2:
            workers.append(self._second_lane())
        try:
            yield from self._render_lanes(iter(times), workers)
        finally:
            for _thread, lane in workers:
                lane.posed_at = None  # a pose made ahead for a frame never drawn is stale by the next call
            for _thread, lane in workers[1:]:
                for name in lane.stages:
                    self.stage_seconds[name] += lane.stages[name]
                    lane.stages[name] = 0.0

    def _render_lanes(self, times: Iterator[float], workers: list[tuple[_RenderThread, _Lane]]) -> Iterator[VideoFrame]:
        n = len(workers)
        ahead: collections.deque[float] = collections.deque(float(t) for t in itertools.islice(times, n))
        pending: collections.deque[concurrent.futures.Future[VideoFrame]] = collections.deque()
        index = 0
        try:
            while ahead:
                when = ahead.popleft()
                following = next(times, None)
                if following is not None:
                    ahead.append(float(following))
                # The lane's next frame is n frames on: it is posed while this one is drawn.
                after = ahead[n - 1] if len(ahead) >= n else None
                thread, lane = workers[index % n]
                self._live()
                pending.append(
                    thread.submit(lambda when=when, after=after, lane=lane: self._render_read(when, after, lane))  # type: ignore[misc]
                )
                index += 1
                if len(pending) > 2 * n - 1:  # two frames per extra lane in flight, so none idles
                    frame = pending.popleft().result()
                    self._after_frame(frame)
                    yield frame
            while pending:
                frame = pending.popleft().result()
                self._after_frame(frame)
                yield frame
        finally:
            for future in pending:
                future.cancel() or future.exception()

    def _second_lane(self) -> tuple[_RenderThread, _Lane]:
        """The second render thread and context of batches (see :meth:`render_frames_sync`).

        Made on first use; brought up to date with the view's background and transform each time.
        """
        if self._extra is None:
            thread = _RenderThread(f"avatarkit-render-{id(self):x}-2", self._make_context)
            try:
                scene = thread.submit(lambda: self._build(thread, self._background)).result()
            except BaseException:
                thread.stop()
                raise
            scene.camera = self._scene.camera  # the same object: moving the camera moves both
            self._extra = (thread, _Lane(scene, {"pose": 0.0, "render": 0.0, "readback": 0.0}))
            self._extra_state = (self._background, (0.0, 0.0, 1.0))
        thread, lane = self._extra
        background, transform = self._extra_state
        if background is not self._background:
            thread.submit(lambda: self._apply_background(lane.scene.renderer, self._background)).result()
        if transform != self._transform:
            thread.submit(lambda: lane.scene.renderer.set_content_transform(*self._transform)).result()
        self._extra_state = (self._background, self._transform)
        return self._extra

    async def render_frame(self, t: float | None = None) -> VideoFrame:
        """Render and read back the frame for playback time ``t`` (now by default)."""
        when = self.avatar_controller.clock() if t is None else float(t)
        frame = await asyncio.wrap_future(self._call(lambda: self._render_read(when)))
        self._after_frame(frame)
        return frame

    def _after_frame(self, frame: VideoFrame) -> None:
        self._last_frame = frame
        self._notify_first()
        self._report_rate()

    def _report_rate(self) -> None:
        """About once a second, tell the controller's ``on_frame_rate_info`` the measured rate."""
        now = time.monotonic()
        if now - self._rate_reported >= 1.0 and self.frame_rate > 0.0:
            self._rate_reported = now
            self.avatar_controller.report_frame_rate(self.frame_rate)

    async def frames(self, fps: float | None = None, *, realtime: bool = True) -> AsyncIterator[VideoFrame]:
        """Rendered frames for video pipelines, at ``fps`` (the view's rate by default).

        With ``realtime`` the frames follow the playback clock (the iterator sleeps between them);
        without, they come as fast as they render, timestamps stepping by ``1 / fps`` from the current
        clock. Frames are skipped while rendering is paused.
        """
        step = 1.0 / (fps or self.fps)
        t = self.avatar_controller.clock()
        while not self._destroyed:
            if self._paused:
                await asyncio.sleep(step)
                t = self.avatar_controller.clock()
                continue
            if realtime:
                delay = t - self.avatar_controller.clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield await self.render_frame(t)
            t += step

    def export_bitmap(self) -> bytes:
        """PNG bytes of the current frame (rendered now when none was rendered yet)."""
        frame = self._last_frame or self.render_frame_sync()
        return frame.to_png()

    def pause_rendering(self) -> None:
        """Stop drawing (windows keep their last frame; :meth:`frames` waits)."""
        self._live()
        self._paused = True

    def resume_rendering(self) -> None:
        """Draw again after :meth:`pause_rendering`."""
        self._live()
        self._paused = False

    @property
    def is_rendering_paused(self) -> bool:
        """Whether rendering is paused."""
        return self._paused

    @property
    def frame_rate(self) -> float:
        """Frames drawn per second over the last couple of seconds (0 before two frames)."""
        times = [t for t in self._frame_times if t > time.monotonic() - 2.0]
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0]) if times[-1] > times[0] else 0.0

    @property
    def camera(self) -> Camera:
        """The camera; change its fields to orbit or zoom (takes effect on the next frame)."""
        return self._scene.camera

    def frame(self, framing: str = "head_and_shoulders") -> Camera:
        """Point the camera at part of the avatar (keeps its yaw and pitch); returns the camera.

        ``framing``: ``"head_and_shoulders"`` (the default framing of an avatar whose bundle names
        none), ``"upper_body"`` (head to waist) or ``"full_body"`` (the whole avatar, fitted to the
        view's aspect). Measured on the avatar as posed at rest (arms relaxed for T-posed rigs).

        Raises:
            AvatarError: ``invalidArgument`` for another framing.
        """
        if framing not in FRAMINGS:
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, f"framing must be one of {FRAMINGS}, not {framing!r}")

        def measure() -> None:
            # On the render thread: the rig's posed vertices are rewritten there every frame.
            scene = self._scene
            camera = scene.camera
            lo, hi = scene.rig.bounds()
            half = math.tan(math.radians(camera.fov_y_deg) / 2)
            head = scene.rig.head_position()
            top = float(hi[1])
            face_y = float(head[1]) if head is not None else top - 0.12
            cx, cz = float(lo[0] + hi[0]) / 2, float(lo[2] + hi[2]) / 2
            if framing == "head_and_shoulders":
                fresh = scene.default_camera()
                camera.target, camera.distance = fresh.target, fresh.distance
            elif framing == "upper_body":
                span = max(0.3, min(top - float(lo[1]), (top - face_y) + 0.75))  # top of the head to the waist
                camera.target = (cx, top - span / 2, cz)
                camera.distance = 0.55 * span / half
            else:
                height, width = top - float(lo[1]), float(hi[0] - lo[0])
                camera.target = (cx, float(lo[1]) + height / 2, cz)
                camera.distance = max(0.55 * height / half, 0.55 * width / (half * scene.aspect))

        self._call(measure).result()
        camera = self._scene.camera
        return camera

    def set_transform(self, x: float = 0.0, y: float = 0.0, scale: float = 1.0) -> None:
        """The commercial SDK's content transform: move (x, y in [-1, 1]) and scale (> 0) the avatar."""
        if not (-1.0 <= x <= 1.0 and -1.0 <= y <= 1.0 and scale > 0.0 and math.isfinite(scale)):
            raise AvatarError(AvatarErrorCode.INVALID_ARGUMENT, "transform needs x, y in [-1, 1] and scale > 0")
        self._call(lambda: self._scene.renderer.set_content_transform(x, y, scale)).result()
        self._transform = (x, y, scale)

    def set_background(self, background: Background) -> None:
        """Change the background: a colour, an image (file or array), or None for transparent."""
        self._call(lambda: self._apply_background(self._scene.renderer, background)).result()
        self._background = background

    def gl_stats(self) -> dict[str, int]:
        """Live GL objects of this view, by kind (for leak checks)."""
        return self._call(lambda: dict(self._scene.renderer.stats())).result()

    def gl_info(self) -> dict[str, str]:
        """The GL renderer and version strings of this view's context, and its anti-aliasing."""
        r = self._scene.renderer

        def info() -> dict[str, str]:
            aa = f"msaa {r.samples}x" if r.samples > 1 else "fxaa" if r.fxaa else "none"
            return {"renderer": r.gl_renderer, "version": r.gl_version, "antialiasing": aa}

        return self._call(info).result()

    def check_gl_errors(self) -> None:
        """Raise if OpenGL reported an error since the last check."""
        self._call(self._check_gl).result()

    def destroy(self) -> None:
        """Free every GL object, the context and the render thread (idempotent)."""
        if self._destroyed:
            return
        self.avatar_controller.stop_audio_output()
        self._thread.idle_hook = None
        try:
            if self._extra is not None:
                thread, lane = self._extra
                self._extra = None
                try:
                    thread.submit(lane.scene.renderer.close).result()
                finally:
                    thread.stop()
            self._thread.submit(self._scene.renderer.close).result()
        finally:
            self._destroyed = True
            self._thread.stop()

    @property
    def destroyed(self) -> bool:
        """Whether :meth:`destroy` was called."""
        return self._destroyed

    def __enter__(self) -> AvatarView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
