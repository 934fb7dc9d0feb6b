"""OpenGL contexts for the renderer: headless EGL and glfw windows.

The C++ core never links libGL or libEGL: a context provider here hands it the address of a
``getProcAddress`` function (``eglGetProcAddress`` or ``glfwGetProcAddress``) and the core loads
every GL entry point through it, on the thread that owns the context.
"""

from .egl import EglContext, EglError

__all__ = ["EglContext", "EglError"]
