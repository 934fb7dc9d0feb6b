"""A headless OpenGL 3.3 core context through EGL, with ctypes (no PyOpenGL, nothing linked).

On Mesa this is the surfaceless platform (``EGL_MESA_platform_surfaceless``, llvmpipe when there is
no GPU); on machines with a GPU the device platform (``EGL_EXT_platform_device``) picks the GPU's
EGL device. Rendering goes to framebuffer objects: no window, no DISPLAY, no Xvfb.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)

EGL_SUCCESS = 0x3000
EGL_NONE = 0x3038
EGL_EXTENSIONS = 0x3055
EGL_VENDOR = 0x3053
EGL_VERSION = 0x3054
EGL_SURFACE_TYPE = 0x3033
EGL_PBUFFER_BIT = 0x0001
EGL_RENDERABLE_TYPE = 0x3040
EGL_OPENGL_BIT = 0x0008
EGL_RED_SIZE = 0x3024
EGL_GREEN_SIZE = 0x3023
EGL_BLUE_SIZE = 0x3022
EGL_ALPHA_SIZE = 0x3021
EGL_DEPTH_SIZE = 0x3025
EGL_OPENGL_API = 0x30A2
EGL_CONTEXT_MAJOR_VERSION = 0x3098
EGL_CONTEXT_MINOR_VERSION = 0x30FB
EGL_CONTEXT_OPENGL_PROFILE_MASK = 0x30FD
EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT = 0x0001
EGL_PLATFORM_SURFACELESS_MESA = 0x31DD
EGL_PLATFORM_DEVICE_EXT = 0x313F
EGL_DRM_DEVICE_FILE_EXT = 0x3233

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


class EglError(RuntimeError):
    """No headless OpenGL context could be made (no EGL library, no 3.3 core support, ...)."""


def _egl() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            names = [os.environ.get("AVATARKIT_LIBEGL"), "libEGL.so.1", ctypes.util.find_library("EGL")]
            errors = []
            for name in filter(None, names):
                try:
                    _lib = ctypes.CDLL(name)
                    break
                except OSError as err:
                    errors.append(str(err))
            else:
                raise EglError(
                    "libEGL is not available (on Debian: apt-get install libegl1 libegl-mesa0 "
                    "libgl1-mesa-dri): " + "; ".join(errors)
                )
            vp, i32 = ctypes.c_void_p, ctypes.c_int32
            _lib.eglGetProcAddress.restype = vp
            _lib.eglGetProcAddress.argtypes = [ctypes.c_char_p]
            _lib.eglGetError.restype = i32
            _lib.eglInitialize.argtypes = [vp, ctypes.POINTER(i32), ctypes.POINTER(i32)]
            _lib.eglTerminate.argtypes = [vp]
            _lib.eglQueryString.restype = ctypes.c_char_p
            _lib.eglQueryString.argtypes = [vp, i32]
            _lib.eglBindAPI.argtypes = [ctypes.c_uint32]
            _lib.eglChooseConfig.argtypes = [
                vp,
                ctypes.POINTER(i32),
                ctypes.POINTER(vp),
                i32,
                ctypes.POINTER(i32),
            ]
            _lib.eglCreateContext.restype = vp
            _lib.eglCreateContext.argtypes = [vp, vp, vp, ctypes.POINTER(i32)]
            _lib.eglMakeCurrent.argtypes = [vp, vp, vp, vp]
            _lib.eglDestroyContext.argtypes = [vp, vp]
            _lib.eglReleaseThread.argtypes = []
        return _lib


def _proc(lib: ctypes.CDLL, name: str, restype: Any, argtypes: list[Any]) -> Any:
    address = lib.eglGetProcAddress(name.encode())
    if not address:
        raise EglError(f"EGL has no {name}")
    return ctypes.CFUNCTYPE(restype, *argtypes)(address)


def _attribs(*pairs: int) -> ctypes.Array[ctypes.c_int32]:
    values = [*pairs, EGL_NONE]
    return (ctypes.c_int32 * len(values))(*values)


class EglContext:
    """A current-on-one-thread OpenGL 3.3 core context with no surface.

    Create, use and close it on the same thread (the view's render thread): EGL contexts are bound
    to the thread that makes them current.

    Args:
        device: ``"auto"`` (a GPU device when one is present, else Mesa's surfaceless platform),
            ``"surfaceless"`` or ``"device"``.
    """

    def __init__(self, device: str = "auto") -> None:
        lib = _egl()
        self._lib = lib
        self._display = self._open_display(lib, device)
        major, minor = ctypes.c_int32(), ctypes.c_int32()
        if not lib.eglInitialize(self._display, ctypes.byref(major), ctypes.byref(minor)):
            raise EglError(f"eglInitialize failed (0x{lib.eglGetError():x})")
        self.egl_version = (major.value, minor.value)
        if not lib.eglBindAPI(EGL_OPENGL_API):
            raise EglError("this EGL has no desktop OpenGL")
        config = ctypes.c_void_p()
        count = ctypes.c_int32()
        wanted = _attribs(
            EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT,
            EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_ALPHA_SIZE, 8, EGL_DEPTH_SIZE, 24,
        )  # fmt: skip
        if (
            not lib.eglChooseConfig(self._display, wanted, ctypes.byref(config), 1, ctypes.byref(count))
            or not count.value
        ):
            raise EglError("no EGL config with OpenGL, RGBA8 and a depth buffer")
        ctx_attribs = _attribs(
            EGL_CONTEXT_MAJOR_VERSION, 3, EGL_CONTEXT_MINOR_VERSION, 3,
            EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT,
        )  # fmt: skip
        self._context = lib.eglCreateContext(self._display, config, None, ctx_attribs)
        if not self._context:
            raise EglError(f"eglCreateContext (OpenGL 3.3 core) failed (0x{lib.eglGetError():x})")
        self.make_current()
        self._thread = threading.get_ident()
        self.vendor = (lib.eglQueryString(self._display, EGL_VENDOR) or b"").decode()

    @staticmethod
    def _open_display(lib: ctypes.CDLL, device: str) -> ctypes.c_void_p:
        client = (lib.eglQueryString(None, EGL_EXTENSIONS) or b"").decode().split()
        get_display = _proc(
            lib,
            "eglGetPlatformDisplayEXT",
            ctypes.c_void_p,
            [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_void_p],
        )
        if device in ("auto", "device") and "EGL_EXT_device_enumeration" in client:
            query = _proc(
                lib,
                "eglQueryDevicesEXT",
                ctypes.c_uint32,
                [ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int32)],
            )
            devices = (ctypes.c_void_p * 16)()
            n = ctypes.c_int32()
            if query(16, devices, ctypes.byref(n)) and n.value:
                query_string = _proc(lib, "eglQueryDeviceStringEXT", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int32])
                for i in range(n.value):
                    # A device with a DRM node is real hardware; Mesa's software device has none.
                    if device == "device" or query_string(devices[i], EGL_DRM_DEVICE_FILE_EXT):
                        display = get_display(EGL_PLATFORM_DEVICE_EXT, devices[i], None)
                        if display:
                            return ctypes.c_void_p(display)
            if device == "device":
                raise EglError("no EGL device")
        if "EGL_MESA_platform_surfaceless" in client:
            display = get_display(EGL_PLATFORM_SURFACELESS_MESA, None, None)
            if display:
                return ctypes.c_void_p(display)
        raise EglError("EGL has neither a GPU device nor Mesa's surfaceless platform")

    @property
    def proc_address(self) -> int:
        """Address of ``eglGetProcAddress``: what the C++ core loads GL entry points through."""
        address = ctypes.cast(self._lib.eglGetProcAddress, ctypes.c_void_p).value
        assert address is not None
        return address

    def make_current(self) -> None:
        """Bind the context to the calling thread (with no surface: rendering goes to FBOs)."""
        if not self._lib.eglMakeCurrent(self._display, None, None, self._context):
            raise EglError(f"eglMakeCurrent failed (0x{self._lib.eglGetError():x})")

    def close(self) -> None:
        """Destroy the context (idempotent); call it on the thread that made it."""
        if self._context:
            self._lib.eglMakeCurrent(self._display, None, None, None)
            self._lib.eglDestroyContext(self._display, self._context)
            self._context = None
            self._lib.eglReleaseThread()
