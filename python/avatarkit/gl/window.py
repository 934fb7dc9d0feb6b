"""A desktop window with an OpenGL 3.3 core context, through glfw (the optional ``window`` extra)."""

from __future__ import annotations

import ctypes
import warnings
from typing import Any


class WindowError(RuntimeError):
    """No window could be opened (glfw missing, no display, no OpenGL 3.3 core)."""


def _glfw() -> Any:
    try:
        import glfw
    except ImportError as err:  # pragma: no cover - depends on the optional extra
        raise WindowError("windows need glfw: pip install 'pyavatarkit[window]'") from err
    return glfw


def _glfw_message(message: Warning | str) -> str:
    """glfw's own words: ``(65550) b'X11: The DISPLAY environment variable is missing'`` -> the text."""
    text = str(message)
    start = text.find("b'")
    return text[start + 2 : -1] if start >= 0 and text.endswith("'") else text


class GlfwWindow:
    """A glfw window whose context is current on the thread that created it.

    Args:
        width, height: the window's size in screen coordinates.
        title: the window title.
        window: an existing glfw window (``GLFWwindow*`` handle from the app) to render into instead
            of opening one; its context must be OpenGL 3.3 core or newer.
        vsync: swap at the display's refresh rate.
    """

    def __init__(
        self, width: int, height: int, title: str = "AvatarKit", window: Any = None, vsync: bool = True
    ) -> None:
        glfw = _glfw()
        self._glfw = glfw
        self._owned = window is None
        if self._owned:
            # glfw reports why it failed as a warning (or an exception, as the app configured it):
            # that reason goes into our error instead of onto stderr.
            reasons: list[str] = []
            window = None
            with warnings.catch_warnings(record=True) as told:
                warnings.simplefilter("always")
                try:
                    ok = bool(glfw.init())
                except Exception as err:
                    ok = False
                    reasons.append(str(err))
                if ok:
                    glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
                    glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
                    glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
                    glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
                    try:
                        window = glfw.create_window(width, height, title, None, None)
                    except Exception as err:
                        reasons.append(str(err))
            reason = "; ".join([_glfw_message(w.message) for w in told] + [_glfw_message(r) for r in reasons])
            if not ok:
                raise WindowError("glfw could not initialise (is there a display?)" + (f": {reason}" if reason else ""))
            if not window:
                glfw.terminate()
                raise WindowError("glfw could not open an OpenGL 3.3 core window" + (f": {reason}" if reason else ""))
        self.window = window
        glfw.make_context_current(window)
        glfw.swap_interval(1 if vsync else 0)

    @property
    def proc_address(self) -> int:
        """Address of ``glfwGetProcAddress``, for the C++ core's GL loader."""
        from glfw.library import glfw as library  # the loaded GLFW shared library (ctypes)

        assert library is not None  # the window exists, so the library loaded
        address = ctypes.cast(library.glfwGetProcAddress, ctypes.c_void_p).value
        assert address is not None
        return int(address)

    def framebuffer_size(self) -> tuple[int, int]:
        """The drawable size in pixels (differs from the window size on high-DPI screens)."""
        w, h = self._glfw.get_framebuffer_size(self.window)
        return int(w), int(h)

    def should_close(self) -> bool:
        """Whether the user asked to close the window."""
        return bool(self._glfw.window_should_close(self.window))

    def swap(self) -> None:
        """Show the frame drawn; in a window we opened, also handle its events.

        An app's own window is left to the app's event loop: glfw wants events polled on the thread
        that created the window.
        """
        self._glfw.swap_buffers(self.window)
        if self._owned:
            self._glfw.poll_events()

    def make_current(self) -> None:
        """Bind the context to the calling thread."""
        self._glfw.make_context_current(self.window)

    def close(self) -> None:
        """Close the window if this object opened it (idempotent)."""
        if self.window is not None:
            self._glfw.make_context_current(None)
            if self._owned:
                self._glfw.destroy_window(self.window)
                self._glfw.terminate()
            self.window = None
