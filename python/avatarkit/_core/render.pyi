"""
OpenGL 3.3 core renderer (GL loaded from a proc address).
"""

from __future__ import annotations

import collections.abc
import typing

import numpy
import numpy.typing

class RenderError(RuntimeError):
    """
    A GL call failed or the renderer was used wrongly (closed, bad ids, bad sizes).
    """

class AlphaMode:
    """
    glTF alpha modes.

    Members:

      OPAQUE

      MASK

      BLEND
    """

    BLEND: typing.ClassVar[AlphaMode]
    MASK: typing.ClassVar[AlphaMode]
    OPAQUE: typing.ClassVar[AlphaMode]
    __members__: typing.ClassVar[dict[str, AlphaMode]]
    @typing.overload
    def __eq__(self, other: AlphaMode) -> bool: ...
    @typing.overload
    def __eq__(self, other: typing.Any) -> bool: ...
    def __getstate__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __index__(self) -> int: ...
    def __init__(self, value: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __int__(self) -> int: ...
    @typing.overload
    def __ne__(self, other: AlphaMode) -> bool: ...
    @typing.overload
    def __ne__(self, other: typing.Any) -> bool: ...
    def __repr__(self) -> str: ...
    def __setstate__(self, state: typing.SupportsInt | typing.SupportsIndex) -> None: ...
    def __str__(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class Renderer:
    """
    OpenGL 3.3 core renderer. Create, use and close it on the thread whose context is current.
    """
    def __init__(
        self,
        proc_address: typing.SupportsInt | typing.SupportsIndex,
        width: typing.SupportsInt | typing.SupportsIndex,
        height: typing.SupportsInt | typing.SupportsIndex,
        samples: typing.SupportsInt | typing.SupportsIndex = 4,
    ) -> None:
        """
        proc_address: address of eglGetProcAddress / glfwGetProcAddress (an int).
        """
    def add_material(
        self,
        base_color: typing.Annotated[
            collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(4)"
        ] = [1.0, 1.0, 1.0, 1.0],
        base_color_texture: typing.SupportsInt | typing.SupportsIndex = -1,
        normal_texture: typing.SupportsInt | typing.SupportsIndex = -1,
        normal_scale: typing.SupportsFloat | typing.SupportsIndex = 1.0,
        metallic_roughness_texture: typing.SupportsInt | typing.SupportsIndex = -1,
        occlusion_texture: typing.SupportsInt | typing.SupportsIndex = -1,
        occlusion_strength: typing.SupportsFloat | typing.SupportsIndex = 1.0,
        emissive_texture: typing.SupportsInt | typing.SupportsIndex = -1,
        emissive: typing.Annotated[
            collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"
        ] = [0.0, 0.0, 0.0],
        metallic: typing.SupportsFloat | typing.SupportsIndex = 0.0,
        roughness: typing.SupportsFloat | typing.SupportsIndex = 0.6000000238418579,
        alpha_mode: AlphaMode = AlphaMode.OPAQUE,
        alpha_cutoff: typing.SupportsFloat | typing.SupportsIndex = 0.5,
        double_sided: bool = False,
        unlit: bool = False,
    ) -> int:
        """
        Add a glTF metallic-roughness material (linear colours and factors, which multiply their textures; texture ids from add_texture: base colour and emissive sRGB, the others linear); returns its id.
        """
    def add_mesh(
        self,
        positions: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        normals: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        texcoords: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None,
        indices: typing.Annotated[numpy.typing.ArrayLike, numpy.uint32],
        material: typing.SupportsInt | typing.SupportsIndex,
    ) -> int:
        """
        Upload a triangle mesh; returns its id.
        """
    def add_texture(self, rgba: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], srgb: bool = True) -> int:
        """
        Upload an RGBA image (top row first); returns its id.
        """
    def close(self) -> None:
        """
        Delete every GL object (idempotent).
        """
    def finish_readback(self) -> numpy.typing.NDArray[numpy.uint8] | None:
        """
        The oldest frame start_readback() copied, or None.
        """
    def gl_error(self) -> int:
        """
        glGetError(); 0 means none.
        """
    def present(
        self, width: typing.SupportsInt | typing.SupportsIndex, height: typing.SupportsInt | typing.SupportsIndex
    ) -> None:
        """
        Copy the last frame to the window's default framebuffer.
        """
    def read_pixels(self) -> numpy.typing.NDArray[numpy.uint8]:
        """
        The last frame: uint8 (height, width, 4), top row first, straight alpha.
        """
    def render(self) -> None:
        """
        Draw a frame (without the GIL).
        """
    def resize(
        self, width: typing.SupportsInt | typing.SupportsIndex, height: typing.SupportsInt | typing.SupportsIndex
    ) -> None: ...
    def set_antialiasing(self, samples: typing.SupportsInt | typing.SupportsIndex, fxaa: bool) -> None:
        """
        MSAA with ``samples`` (0 turns it off) and/or the post-process edge filter (FXAA-like).
        """
    def set_background(
        self,
        r: typing.SupportsFloat | typing.SupportsIndex,
        g: typing.SupportsFloat | typing.SupportsIndex,
        b: typing.SupportsFloat | typing.SupportsIndex,
        a: typing.SupportsFloat | typing.SupportsIndex = 1.0,
    ) -> None:
        """
        Clear colour (sRGB 0..1); a = 0 for transparent.
        """
    def set_background_image(self, rgba: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8] | None) -> None:
        """
        An image behind the avatar (cover fit), or None.
        """
    def set_camera(
        self,
        view: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        projection: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        eye: typing.Annotated[collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex], "FixedSize(3)"],
    ) -> None:
        """
        View and projection matrices (4x4, M @ v), eye position.
        """
    def set_content_transform(
        self,
        x: typing.SupportsFloat | typing.SupportsIndex,
        y: typing.SupportsFloat | typing.SupportsIndex,
        scale: typing.SupportsFloat | typing.SupportsIndex,
    ) -> None:
        """
        Move (x, y in [-1, 1]) and scale (> 0) the avatar in the frame.
        """
    def set_mesh_transform(
        self,
        mesh: typing.SupportsInt | typing.SupportsIndex,
        matrix: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    ) -> None:
        """
        Model-to-world matrix (4x4, as in maths: M @ v).
        """
    def set_mesh_visible(self, mesh: typing.SupportsInt | typing.SupportsIndex, visible: bool) -> None: ...
    def start_readback(self) -> None:
        """
        Start copying the last frame into a pixel buffer object (no wait).
        """
    def stats(self) -> dict[str, int]:
        """
        Live GL objects this renderer created, by kind.
        """
    def update_mesh(
        self,
        mesh: typing.SupportsInt | typing.SupportsIndex,
        positions: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
        normals: typing.Annotated[numpy.typing.ArrayLike, numpy.float32],
    ) -> None:
        """
        Replace a mesh's vertices (same count).
        """
    @property
    def closed(self) -> bool:
        """
        Whether close() was called.
        """
    @property
    def filtered_pixels(self) -> int:
        """
        Pixels the edge filter covered in the last frame: the 8-pixel tiles that a silhouette or a mesh border crosses, and those under alpha-tested or blended meshes (0 without the filter).
        """
    @property
    def fxaa(self) -> bool:
        """
        Whether the post-process edge filter runs.
        """
    @property
    def gl_renderer(self) -> str:
        """
        GL_RENDERER of the context (llvmpipe, a GPU's name).
        """
    @property
    def gl_version(self) -> str:
        """
        GL_VERSION of the context.
        """
    @property
    def height(self) -> int:
        """
        Frame height in pixels.
        """
    @property
    def samples(self) -> int:
        """
        MSAA samples per pixel (1: none).
        """
    @property
    def software(self) -> bool:
        """
        Whether the GL renders in software (llvmpipe, softpipe, SwiftShader).
        """
    @property
    def width(self) -> int:
        """
        Frame width in pixels.
        """

def rgba_to_i420(
    rgba: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8],
    y: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
    u: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
    v: numpy.ndarray[typing.Any, numpy.dtype[typing.Any]],
) -> None:
    """
    Convert a straight-alpha RGBA frame (uint8 (height, width, 4)) to planar YUV 4:2:0 in place: BT.601 limited range, as swscale's yuv420p, each chroma sample the mean of its 2x2 pixels, pixels that are not opaque composited over black. ``y`` is (height, width); ``u`` and ``v`` are (ceil(height / 2), ceil(width / 2)); rows may be padded (PyAV's planes are). Without the GIL.
    """
