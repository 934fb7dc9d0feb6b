"""A glTF 2.0 loader (.glb and .gltf) that yields numpy arrays, validated before anything is allocated.

The loader reads what a talking avatar needs: meshes with their primitives (positions, normals,
texture coordinates, colours, joints and weights, triangle indices), morph targets with their names,
the node hierarchy, skins, materials with their textures, and the images (decoded with Pillow on
first use). Every offset, length and count in the file is checked against the bytes that are really
there *before* an array is made, and counts are capped, so a malformed or hostile file raises
:class:`~avatarkit.errors.AvatarError` (``incompatibleAvatarAsset``) with a message that says which
field is wrong, instead of crashing or allocating gigabytes.

Conventions of the output:

- Matrices are float32 ``4x4`` for column vectors (``world @ [x, y, z, 1]``); glTF stores them
  column-major, the loader transposes them once.
- Morph targets are **sparse**: each :class:`MorphTarget` holds the ``uint32`` indices of the
  vertices it moves and their position (and normal) deltas, whether the file stored the target
  dense or sparse. A face target moves part of a mesh (in the Ready Player Me sample, a third of
  the head's vertices on average, a few percent of the eyes' and teeth's), and the deformer only
  has to visit those rows; :meth:`MorphTarget.dense_positions` gives the dense form when wanted.
- Names of morph targets come from ``mesh.extras.targetNames``; :meth:`GltfModel.morph_target_index`
  maps a lower-cased name to every ``(mesh, target)`` that carries it (head, teeth and eyes often
  carry the same names, and each gets the weight).

Supported extensions: ``KHR_mesh_quantization``, ``KHR_texture_transform``,
``KHR_materials_emissive_strength``, ``KHR_materials_unlit``, ``EXT_texture_webp`` and
``EXT_meshopt_compression`` (attribute and index codecs, and the octahedral, quaternion and
exponential filters). Any other extension listed in ``extensionsRequired`` makes the load fail with
an error that names it; optional unknown extensions are ignored.

Example:
    >>> from avatarkit.assets.gltf import load_gltf
    >>> model = load_gltf("avatar.glb")  # doctest: +SKIP
    >>> model.morph_target_index()["jawopen"]  # doctest: +SKIP
    [(2, 17), (3, 17)]
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import io
import json
import math
import os
import pathlib
import re
import struct
import urllib.parse
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, NoReturn

import numpy as np
import numpy.typing as npt

from ..errors import AvatarError, AvatarErrorCode

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_COUNTS",
    "DEFAULT_MAX_ELEMENTS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_VERTICES",
    "DEFAULT_MIN_DECODED_BYTES",
    "SUPPORTED_EXTENSIONS",
    "VRM_VISEME_ALIASES",
    "AlphaMode",
    "GltfModel",
    "Image",
    "Material",
    "Mesh",
    "MorphTarget",
    "Node",
    "Primitive",
    "Skin",
    "TextureRef",
    "TextureTransform",
    "load_gltf",
]

F32 = npt.NDArray[np.float32]
U32 = npt.NDArray[np.uint32]
U16 = npt.NDArray[np.uint16]
U8 = npt.NDArray[np.uint8]

#: The largest file (or sum of a .gltf and its external buffers) the loader reads.
DEFAULT_MAX_BYTES: Final = 1 << 30
#: The largest ``count`` of one accessor: ten million elements.
DEFAULT_MAX_ELEMENTS: Final = 10_000_000
#: The most vertices one primitive may have.
DEFAULT_MAX_VERTICES: Final = 10_000_000
#: What decoding the accessors may allocate in all (approximately), when ``max_decoded_bytes`` is not
#: given: 64 bytes for each byte of input, and at least this. Real avatars need a few times their size
#: (quantized or compressed ones more); a tiny file that asks for gigabytes of zeros is refused.
DEFAULT_MIN_DECODED_BYTES: Final = 64 << 20
#: The most objects of each kind one asset may have (an avatar has a few hundred at most): a small file
#: of a million empty nodes would otherwise take gigabytes and seconds to load.
DEFAULT_MAX_COUNTS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "nodes": 100_000,
        "meshes": 10_000,
        "accessors": 100_000,
        "bufferViews": 100_000,
        "buffers": 1_000,
        "images": 1_000,
        "textures": 1_000,
        "samplers": 1_000,
        "materials": 10_000,
        "skins": 1_000,
        "animations": 1_000,
        "scenes": 1_000,
    }
)
#: The largest image (width times height) that :meth:`Image.rgba` decodes: 8192 x 8192, 256 MiB as RGBA.
DEFAULT_MAX_IMAGE_PIXELS: Final = 1 << 26

#: Extensions this loader implements, so a file may list them in ``extensionsRequired``.
SUPPORTED_EXTENSIONS: Final = frozenset(
    {
        "KHR_mesh_quantization",
        "KHR_texture_transform",
        "KHR_materials_emissive_strength",
        "KHR_materials_unlit",
        "EXT_texture_webp",
        "EXT_meshopt_compression",
    }
)

#: VRoid/VRM mouth shapes and the Oculus visemes they stand for. Used by
#: :meth:`GltfModel.morph_target_index` only when a model lacks the viseme name itself.
VRM_VISEME_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "viseme_aa": ("Fcl_MTH_A", "vrc.v_aa", "aa"),
    "viseme_I": ("Fcl_MTH_I", "vrc.v_ih", "ih"),
    "viseme_U": ("Fcl_MTH_U", "vrc.v_ou", "ou"),
    "viseme_E": ("Fcl_MTH_E", "vrc.v_e", "ee"),
    "viseme_O": ("Fcl_MTH_O", "vrc.v_oh", "oh"),
}

_GLB_MAGIC: Final = 0x46546C67  # b"glTF" little-endian
_CHUNK_JSON: Final = 0x4E4F534A
_CHUNK_BIN: Final = 0x004E4942

_COMPONENT_DTYPES: Final[dict[int, np.dtype[Any]]] = {
    5120: np.dtype("<i1"),
    5121: np.dtype("<u1"),
    5122: np.dtype("<i2"),
    5123: np.dtype("<u2"),
    5125: np.dtype("<u4"),
    5126: np.dtype("<f4"),
}
_COMPONENT_NAMES: Final = {
    5120: "BYTE",
    5121: "UNSIGNED_BYTE",
    5122: "SHORT",
    5123: "UNSIGNED_SHORT",
    5125: "UNSIGNED_INT",
    5126: "FLOAT",
}
_TYPE_SIZES: Final = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}

# Component types whose values can become floats (every one but UNSIGNED_INT, which the spec never
# allows for float-valued attributes). KHR_mesh_quantization widens the core set to all of these;
# accepting them always costs nothing and lets slightly non-conforming exporters through.
_FLOATISH: Final = frozenset({5120, 5121, 5122, 5123, 5126})


def _fail(message: str) -> NoReturn:
    raise AvatarError(AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET, message)


# --------------------------------------------------------------------------------------------------
# The output model


class AlphaMode(enum.Enum):
    """How a material's alpha is used (``material.alphaMode``)."""

    OPAQUE = "OPAQUE"
    MASK = "MASK"
    BLEND = "BLEND"


@dataclasses.dataclass(frozen=True)
class TextureTransform:
    """``KHR_texture_transform``: ``uv' = translate(offset) @ rotate(rotation) @ scale(scale) @ uv``."""

    offset: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)

    def matrix(self) -> F32:
        """The 3x3 matrix that maps ``[u, v, 1]`` to transformed coordinates."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        t = np.array([[1, 0, self.offset[0]], [0, 1, self.offset[1]], [0, 0, 1]], np.float64)
        r = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], np.float64)
        k = np.array([[self.scale[0], 0, 0], [0, self.scale[1], 0], [0, 0, 1]], np.float64)
        return (t @ r @ k).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class TextureRef:
    """A material's use of a texture: which image, which UV set, and how it is sampled."""

    image: int
    texcoord: int = 0
    #: ``normalTexture.scale`` or ``occlusionTexture.strength``; 1 for the others.
    scale: float = 1.0
    transform: TextureTransform | None = None
    mag_filter: int | None = None
    min_filter: int | None = None
    wrap_s: int = 10497  # REPEAT
    wrap_t: int = 10497


@dataclasses.dataclass
class Material:
    """A metallic-roughness material (``materials[i]``), with the glTF defaults filled in."""

    name: str = ""
    base_color_factor: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    base_color_texture: TextureRef | None = None
    metallic_factor: float = 1.0
    roughness_factor: float = 1.0
    metallic_roughness_texture: TextureRef | None = None
    normal_texture: TextureRef | None = None
    occlusion_texture: TextureRef | None = None
    emissive_factor: tuple[float, float, float] = (0.0, 0.0, 0.0)
    #: ``KHR_materials_emissive_strength``; multiplies :attr:`emissive_factor`.
    emissive_strength: float = 1.0
    emissive_texture: TextureRef | None = None
    alpha_mode: AlphaMode = AlphaMode.OPAQUE
    alpha_cutoff: float = 0.5
    double_sided: bool = False
    #: ``KHR_materials_unlit``.
    unlit: bool = False


@dataclasses.dataclass(eq=False)
class Image:
    """An image of the file, kept encoded until :meth:`rgba` is first called."""

    name: str
    mime_type: str
    data: bytes = dataclasses.field(repr=False)
    _rgba: U8 | None = dataclasses.field(default=None, init=False, repr=False)

    def rgba(self, *, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> U8:
        """The decoded image, ``uint8 (height, width, 4)``, top row first; cached after the first call.

        Raises:
            AvatarError: ``incompatibleAvatarAsset`` when the bytes are not a PNG, JPEG or WebP image
                that decodes, or when it has more than ``max_pixels`` pixels.
        """
        if self._rgba is None:
            self._rgba = _decode_image(self.data, self.name, max_pixels)
        return self._rgba


@dataclasses.dataclass(eq=False)
class MorphTarget:
    """One morph target of a primitive, sparse: only the vertices it moves.

    ``positions[k]`` (and ``normals[k]``) is the delta of vertex ``indices[k]``; ``indices`` is
    strictly increasing. A vertex is kept when any of its deltas is larger in magnitude than the
    load's ``morph_epsilon`` (0: exactly the nonzero rows, so nothing is lost).
    """

    name: str
    indices: U32
    positions: F32
    normals: F32 | None = None

    def dense_positions(self, vertex_count: int) -> F32:
        """The position deltas of every vertex, ``float32 (vertex_count, 3)``."""
        out = np.zeros((vertex_count, 3), np.float32)
        out[self.indices] = self.positions
        return out

    def dense_normals(self, vertex_count: int) -> F32:
        """The normal deltas of every vertex (zeros when the target has none)."""
        out = np.zeros((vertex_count, 3), np.float32)
        if self.normals is not None:
            out[self.indices] = self.normals
        return out


@dataclasses.dataclass(eq=False)
class Primitive:
    """A triangle list with its vertex attributes; strips and fans are converted to lists."""

    positions: F32
    indices: U32
    normals: F32 | None = None
    #: True when the file had no normals and the loader computed smooth, area-weighted ones.
    normals_generated: bool = False
    tangents: F32 | None = None
    texcoords: F32 | None = None
    texcoords1: F32 | None = None
    #: ``COLOR_0`` as RGBA float32 (alpha 1 when the file stores RGB).
    colors: F32 | None = None
    joints: U16 | None = None
    weights: F32 | None = None
    material: int | None = None
    targets: list[MorphTarget] = dataclasses.field(default_factory=list)

    @property
    def vertex_count(self) -> int:
        """How many vertices the primitive has."""
        return int(self.positions.shape[0])

    @property
    def triangle_count(self) -> int:
        """How many triangles ``indices`` holds."""
        return int(self.indices.shape[0]) // 3


@dataclasses.dataclass(eq=False)
class Mesh:
    """A mesh: its primitives share the morph target list (same count, same order, same names)."""

    name: str
    primitives: list[Primitive]
    target_names: list[str]
    default_weights: F32
    #: ``mesh.extras`` as in the file (an object, else empty).
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class Node:
    """A node of the hierarchy; ``matrix`` is its local transform (``parent_world @ matrix``)."""

    name: str
    parent: int | None
    children: list[int]
    matrix: F32
    #: The node's TRS, when it has one (glTF nodes have TRS or a matrix); rotation is ``x, y, z, w``.
    translation: tuple[float, float, float] | None = None
    rotation: tuple[float, float, float, float] | None = None
    scale: tuple[float, float, float] | None = None
    mesh: int | None = None
    skin: int | None = None
    #: ``node.weights``: overrides the mesh's default morph weights for this instance.
    weights: F32 | None = None
    #: ``node.extras`` as in the file (an object, else empty): application data such as rig hints.
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class Skin:
    """A skin: joint nodes and their inverse bind matrices, ``float32 (len(joints), 4, 4)``."""

    name: str
    joints: list[int]
    inverse_bind_matrices: F32
    skeleton: int | None = None


@dataclasses.dataclass(eq=False)
class GltfModel:
    """Everything the loader read from one glTF asset."""

    meshes: list[Mesh]
    nodes: list[Node]
    skins: list[Skin]
    materials: list[Material]
    images: list[Image]
    #: The root nodes of the default scene (``scene``, else the first scene, else every parentless node).
    scene_roots: list[int]
    extensions_used: list[str] = dataclasses.field(default_factory=list)
    generator: str = ""
    #: Things that were skipped rather than refused (point and line primitives, unnamed targets ...).
    warnings: list[str] = dataclasses.field(default_factory=list)
    #: Whether the avatar faces -Z: VRM 0.x files (a top-level ``VRM`` extension) do; glTF and VRM 1.0
    #: face +Z. The rig turns such a model half a turn about +Y so that it faces +Z like the rest.
    faces_minus_z: bool = False
    #: VRM humanoid bones (``leftUpperArm`` ... ) to node indices, from a VRM 0.x ``VRM`` or VRM 1.0
    #: ``VRMC_vrm`` extension; empty for other files (the rig then goes by bone names).
    humanoid_bones: dict[str, int] = dataclasses.field(default_factory=dict)

    def node_world_matrices(self) -> F32:
        """The world matrix of every node, ``float32 (len(nodes), 4, 4)``, from the rest pose."""
        world = np.zeros((len(self.nodes), 4, 4), np.float64)
        # The loader guarantees a forest (no cycles, one parent at most), so a walk from the
        # parentless nodes reaches every node exactly once, parents before children.
        stack = [i for i, n in enumerate(self.nodes) if n.parent is None]
        for i in stack:
            world[i] = self.nodes[i].matrix
        # The loader checked that the rest pose is finite in float32; after edits to the matrices
        # that may no longer hold, and overflow then gives inf rather than a warning.
        with np.errstate(over="ignore", invalid="ignore"):
            while stack:
                i = stack.pop()
                for c in self.nodes[i].children:
                    world[c] = world[i] @ self.nodes[c].matrix.astype(np.float64)
                    stack.append(c)
            return world.astype(np.float32)

    def morph_target_index(self, *, aliases: bool = True) -> dict[str, list[tuple[int, int]]]:
        """Map each lower-cased morph target name to every ``(mesh index, target index)`` carrying it.

        With ``aliases``, a viseme name the model lacks (``viseme_aa`` ...) also maps to the targets
        of its VRoid/VRM counterpart (:data:`VRM_VISEME_ALIASES`), so such avatars lip-sync too.
        """
        index: dict[str, list[tuple[int, int]]] = {}
        for m, mesh in enumerate(self.meshes):
            for t, name in enumerate(mesh.target_names):
                index.setdefault(name.lower(), []).append((m, t))
        if aliases:
            for viseme, candidates in VRM_VISEME_ALIASES.items():
                if viseme.lower() in index:
                    continue
                for candidate in candidates:
                    found = index.get(candidate.lower())
                    if found:
                        index[viseme.lower()] = list(found)
                        break
        return index

    def find_node(self, name: str) -> int | None:
        """The index of the first node called ``name`` (case-insensitive), or None."""
        lowered = name.lower()
        return next((i for i, n in enumerate(self.nodes) if n.name.lower() == lowered), None)

    def mesh_nodes(self, mesh: int) -> list[int]:
        """The nodes that instance mesh ``mesh``."""
        return [i for i, n in enumerate(self.nodes) if n.mesh == mesh]


# --------------------------------------------------------------------------------------------------
# Typed access to the JSON: every value is checked for type and range where it is read, so the rest
# of the loader never meets a string where it wanted a count.


def _where(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _obj(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        _fail(f"{where} must be a JSON object")
    return value


def _opt_obj(parent: dict[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return None if value is None else _obj(value, _where(where, key))


def _list(parent: dict[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key, [])
    if not isinstance(value, list):
        _fail(f"{_where(where, key)} must be a JSON array")
    return value


def _objects(parent: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    return [_obj(v, f"{_where(where, key)}[{i}]") for i, v in enumerate(_list(parent, key, where))]


def _opt_int(parent: dict[str, Any], key: str, where: str, lo: int = 0, hi: int | None = None) -> int | None:
    value = parent.get(key)
    if value is None:
        return None
    # bool is an int to Python, never to JSON.
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(f"{_where(where, key)} must be an integer, not {value!r:.40}")
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        _fail(f"{_where(where, key)} = {value} must be {bound}")
    return value


def _int(parent: dict[str, Any], key: str, where: str, lo: int = 0, hi: int | None = None) -> int:
    value = _opt_int(parent, key, where, lo, hi)
    if value is None:
        _fail(f"{_where(where, key)} is required")
    return value


def _ref(parent: dict[str, Any], key: str, where: str, length: int, what: str) -> int | None:
    """An optional index into a top-level array of ``length`` items."""
    value = _opt_int(parent, key, where)
    if value is not None and value >= length:
        _fail(f"{_where(where, key)} = {value} but there are only {length} {what}")
    return value


# Numbers from the JSON end up in float32 arrays; anything beyond float32's range would become inf.
_F32_MAX: Final = float(np.finfo(np.float32).max)


def _number(
    parent: dict[str, Any], key: str, where: str, default: float, lo: float = -_F32_MAX, hi: float = _F32_MAX
) -> float:
    value = parent.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        _fail(f"{_where(where, key)} must be a finite number, not {value!r:.40}")
    if not lo <= value <= hi:
        _fail(f"{_where(where, key)} = {value} must be in [{lo}, {hi}]")
    return float(value)


def _numbers(
    parent: dict[str, Any], key: str, where: str, n: int, lo: float = -_F32_MAX, hi: float = _F32_MAX
) -> tuple[float, ...] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != n:
        _fail(f"{_where(where, key)} must be an array of {n} numbers")
    holder = {str(i): v for i, v in enumerate(value)}
    return tuple(_number(holder, str(i), _where(where, key), 0.0, lo, hi) for i in range(n))


def _str(parent: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = parent.get(key, default)
    if not isinstance(value, str):
        _fail(f"{_where(where, key)} must be a string")
    return value


def _bool(parent: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = parent.get(key, default)
    if not isinstance(value, bool):
        _fail(f"{_where(where, key)} must be true or false")
    return value


# --------------------------------------------------------------------------------------------------
# Container: GLB chunks, or .gltf JSON, and the buffers


def _parse_json(raw: bytes | memoryview, what: str) -> dict[str, Any]:
    def no_constants(name: str) -> NoReturn:
        _fail(f"{what} contains {name}, which JSON does not allow")

    try:
        text = bytes(raw).decode("utf-8")
        doc = json.loads(text, parse_constant=no_constants)
    except UnicodeDecodeError as err:
        _fail(f"{what} is not UTF-8: {err}")
    except RecursionError:
        _fail(f"{what} is nested too deeply")
    except ValueError as err:  # json.JSONDecodeError, and int() of absurdly long digit strings
        _fail(f"{what} is not valid JSON: {err}")
    return _obj(doc, what)


def _split_glb(data: memoryview) -> tuple[dict[str, Any], memoryview | None]:
    """The JSON document and the BIN chunk (if any) of a GLB container."""
    size = len(data)
    if size < 20:
        _fail(f"GLB is truncated: {size} bytes is shorter than the 12-byte header and a chunk header")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC:
        _fail("not a GLB file (bad magic)")
    if version != 2:
        _fail(f"GLB container version {version} is not supported (only glTF 2.0)")
    if length != size:
        what = "is truncated" if length > size else "has trailing bytes"
        _fail(f"GLB {what}: its header says {length} bytes, the file has {size}")
    doc: dict[str, Any] | None = None
    bin_chunk: memoryview | None = None
    offset = 12
    index = 0
    while offset < size:
        if size - offset < 8:
            _fail(f"GLB chunk {index} at byte {offset} is truncated (no room for its 8-byte header)")
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        start = offset + 8
        if chunk_length > size - start:
            _fail(f"GLB chunk {index} says it has {chunk_length} bytes, only {size - start} remain")
        chunk = data[start : start + chunk_length]
        if index == 0:
            if chunk_type != _CHUNK_JSON:
                _fail(f"the first GLB chunk must be JSON, found type 0x{chunk_type:08x}")
            doc = _parse_json(chunk, "the GLB JSON chunk")
        elif chunk_type == _CHUNK_BIN:
            if bin_chunk is not None:
                _fail("GLB has more than one BIN chunk")
            bin_chunk = chunk
        # Unknown chunk types must be ignored (glTF 2.0, 4.4.3.1).
        # Chunks should end 4-byte aligned; files with unpadded chunks are read anyway, since the
        # lengths alone say where each chunk ends.
        offset = start + chunk_length
        index += 1
    if doc is None:
        _fail("GLB has no JSON chunk")
    return doc, bin_chunk


_DATA_URI = re.compile(r"data:([^,;]*)((?:;[^,;]*)*?)(;base64)?,", re.ASCII)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class _Source:
    """Where external files come from, and how many bytes may still be read."""

    def __init__(self, base_dir: pathlib.Path | None, budget: int) -> None:
        self.base_dir = base_dir
        self.budget = budget

    def charge(self, n: int, what: str) -> None:
        if n > self.budget:
            _fail(f"{what} would take the input past max_bytes")
        self.budget -= n

    def resolve(self, uri: str, what: str) -> bytes:
        """The bytes of a ``data:`` URI, or of a file beside the .gltf; nothing else."""
        if uri.startswith("data:"):
            match = _DATA_URI.match(uri)
            if match is None:
                _fail(f"{what}: malformed data: URI")
            payload = uri[match.end() :]
            try:
                if match.group(3):
                    return base64.b64decode(payload, validate=True)
                return urllib.parse.unquote_to_bytes(payload)
            except (binascii.Error, ValueError) as err:
                _fail(f"{what}: bad base64 in data: URI ({err})")
        if _SCHEME.match(uri):
            scheme = uri.split(":", 1)[0]
            _fail(f"{what}: URI scheme {scheme!r} is not allowed (only data: URIs and relative files)")
        if self.base_dir is None:
            _fail(f"{what} refers to the file {uri!r}; load the asset from a path to resolve it")
        relative = urllib.parse.unquote(uri)
        if "\x00" in relative or relative.startswith(("/", "\\")) or "\\" in relative:
            _fail(f"{what}: {uri!r} is not a plain relative path")
        try:
            base = self.base_dir.resolve()
            path = (base / relative).resolve()
            if not path.is_relative_to(base):
                _fail(f"{what}: {uri!r} points outside the folder of the asset")
            size = path.stat().st_size
            self.charge(size, what)
            return path.read_bytes()
        except OSError as err:
            raise AvatarError(AvatarErrorCode.AVATAR_ASSETS_MISSING, f"{what}: cannot read {uri!r}: {err}") from err


# --------------------------------------------------------------------------------------------------
# Accessors


@dataclasses.dataclass(frozen=True)
class _AccessorInfo:
    component_type: int
    type: str
    count: int
    normalized: bool


class _Reader:
    """Reads buffer views and accessors of one document, checking every range before it is used."""

    def __init__(self, doc: dict[str, Any], buffers: list[memoryview | None], limits: _Limits) -> None:
        self.buffers = buffers
        self.limits = limits
        self.views = _objects(doc, "bufferViews", "")
        self.accessors = _objects(doc, "accessors", "")
        self.buffer_lengths: list[int] = []
        for i, b in enumerate(_objects(doc, "buffers", "")):
            self.buffer_lengths.append(_int(b, "byteLength", f"buffers[{i}]", lo=1))
        self.decoded_budget = limits.max_decoded_bytes
        self._view_cache: dict[int, tuple[memoryview, int | None]] = {}
        self._accessor_cache: dict[int, tuple[_AccessorInfo, npt.NDArray[Any]]] = {}
        self.meshopt = False  # set when EXT_meshopt_compression may be decoded

    def charge(self, n: int, what: str) -> None:
        if n > self.decoded_budget:
            _fail(f"{what} would take the decoded data past max_decoded_bytes")
        self.decoded_budget -= n

    def view(self, index: int) -> tuple[memoryview, int | None]:
        """The bytes of ``bufferViews[index]`` and its byteStride."""
        cached = self._view_cache.get(index)
        if cached is not None:
            return cached
        where = f"bufferViews[{index}]"
        if not 0 <= index < len(self.views):
            _fail(f"{where} does not exist (there are {len(self.views)} buffer views)")
        view = self.views[index]
        buffer = _ref(view, "buffer", where, len(self.buffer_lengths), "buffers")
        if buffer is None:
            _fail(f"{where}.buffer is required")
        offset = _int(view, "byteOffset", where) if "byteOffset" in view else 0
        length = _int(view, "byteLength", where, lo=1)
        stride = _opt_int(view, "byteStride", where, lo=4, hi=252)
        if stride is not None and stride % 4:
            _fail(f"{where}.byteStride = {stride} must be a multiple of 4")
        if offset + length > self.buffer_lengths[buffer]:
            _fail(
                f"{where} (bytes {offset}..{offset + length}) runs past the end of buffer {buffer} "
                f"({self.buffer_lengths[buffer]} bytes)"
            )
        extensions = _opt_obj(view, "extensions", where) or {}
        compressed = extensions.get("EXT_meshopt_compression")
        data: memoryview
        if compressed is not None and self.meshopt:
            data = self._meshopt_view(_obj(compressed, f"{where}.extensions.EXT_meshopt_compression"), where, length)
        else:
            source = self.buffers[buffer]
            if source is None:
                _fail(f"{where} reads buffer {buffer}, which has no data (a compressed-only fallback?)")
            data = source[offset : offset + length]
        self._view_cache[index] = (data, stride)
        return data, stride

    def _meshopt_view(self, ext: dict[str, Any], where: str, length: int) -> memoryview:
        where = f"{where}.extensions.EXT_meshopt_compression"
        buffer = _ref(ext, "buffer", where, len(self.buffer_lengths), "buffers")
        if buffer is None:
            _fail(f"{where}.buffer is required")
        offset = _int(ext, "byteOffset", where) if "byteOffset" in ext else 0
        src_length = _int(ext, "byteLength", where, lo=1)
        stride = _int(ext, "byteStride", where, lo=1, hi=256)
        count = _int(ext, "count", where, lo=1, hi=self.limits.max_elements)
        mode = _str(ext, "mode", where)
        filt = _str(ext, "filter", where, "NONE")
        source = self.buffers[buffer]
        if source is None or offset + src_length > len(source):
            _fail(f"{where} reads bytes {offset}..{offset + src_length} of buffer {buffer}, which is not there")
        if stride * count > length:
            _fail(f"{where}: {count} x {stride} bytes do not fit the view's byteLength {length}")
        self.charge(stride * count, where)
        return memoryview(
            _meshopt_decode(bytes(source[offset : offset + src_length]), mode, filt, count, stride, where)
        )

    def accessor(self, index: int) -> tuple[_AccessorInfo, npt.NDArray[Any]]:
        """The raw elements of ``accessors[index]``, shape ``(count, components)``, read-only."""
        cached = self._accessor_cache.get(index)
        if cached is not None:
            return cached
        where = f"accessors[{index}]"
        if not 0 <= index < len(self.accessors):
            _fail(f"{where} does not exist (there are {len(self.accessors)} accessors)")
        acc = self.accessors[index]
        ctype = _int(acc, "componentType", where)
        dtype = _COMPONENT_DTYPES.get(ctype)
        if dtype is None:
            _fail(f"{where}.componentType {ctype} is not a glTF component type")
        type_name = _str(acc, "type", where)
        ncomp = _TYPE_SIZES.get(type_name)
        if ncomp is None:
            _fail(f"{where}.type {type_name!r} is not a glTF accessor type")
        normalized = _bool(acc, "normalized", where, False)
        if normalized and ctype in (5125, 5126):
            _fail(f"{where} is normalized but its componentType is {_COMPONENT_NAMES[ctype]}")
        if type_name.startswith("MAT") and dtype.itemsize < 4:
            # Byte and short matrices pad each column to 4 bytes; nothing an avatar uses needs them.
            _fail(f"{where}: {type_name} of {_COMPONENT_NAMES[ctype]} is not supported")
        # The cap comes before anything is allocated: a count of 2**40 fails here, at no cost.
        count = _int(acc, "count", where, lo=1, hi=self.limits.max_elements)
        info = _AccessorInfo(ctype, type_name, count, normalized)
        elem = dtype.itemsize * ncomp

        # The sparse part is read and checked first, so that a bufferless accessor whose sparse data
        # is not there fails before its zeros are allocated.
        sparse = _opt_obj(acc, "sparse", where)
        scatter = None if sparse is None else self._sparse(sparse, f"{where}.sparse", count, dtype, ncomp)
        view_index = _opt_int(acc, "bufferView", where)
        offset = _opt_int(acc, "byteOffset", where) or 0
        if view_index is None:
            if offset:
                _fail(f"{where} has a byteOffset but no bufferView")
            self.charge(count * elem, where)
            out: npt.NDArray[Any] = np.zeros((count, ncomp), dtype)
        else:
            data, stride = self.view(view_index)
            if offset % dtype.itemsize:
                _fail(f"{where}.byteOffset = {offset} is not a multiple of its component size {dtype.itemsize}")
            step = elem if stride is None else stride
            if step < elem:
                _fail(
                    f"{where}: bufferViews[{view_index}].byteStride {step} is smaller than one "
                    f"{type_name} of {_COMPONENT_NAMES[ctype]} ({elem} bytes)"
                )
            needed = offset + step * (count - 1) + elem
            if needed > len(data):
                _fail(f"{where} needs {needed} bytes of bufferViews[{view_index}], which has {len(data)}")
            self.charge(count * elem, where)
            strided: npt.NDArray[Any] = np.ndarray(
                (count, ncomp), dtype, buffer=data, offset=offset, strides=(step, dtype.itemsize)
            )
            out = strided.copy()
        if scatter is not None:
            out[scatter[0]] = scatter[1]
        if ctype == 5126 and not np.isfinite(out).all():
            _fail(f"{where} contains NaN or infinite values")
        out.flags.writeable = False
        self._accessor_cache[index] = (info, out)
        return info, out

    def _sparse(
        self, sparse: dict[str, Any], where: str, count: int, dtype: np.dtype[Any], ncomp: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
        """The checked indices (strictly increasing, below ``count``) and values of a sparse part."""
        n = _int(sparse, "count", where, lo=1, hi=count)
        indices = _obj(sparse.get("indices"), f"{where}.indices")
        values = _obj(sparse.get("values"), f"{where}.values")
        itype = _int(indices, "componentType", f"{where}.indices")
        if itype not in (5121, 5123, 5125):
            _fail(f"{where}.indices.componentType {itype} must be UNSIGNED_BYTE, UNSIGNED_SHORT or UNSIGNED_INT")
        idx = self._packed(indices, f"{where}.indices", _COMPONENT_DTYPES[itype], n, 1).reshape(n)
        vals = self._packed(values, f"{where}.values", dtype, n, ncomp)
        idx64 = idx.astype(np.int64)
        if n > 1 and not bool((np.diff(idx64) > 0).all()):
            _fail(f"{where}.indices are not strictly increasing")
        if int(idx64[-1]) >= count:
            _fail(f"{where}.indices reach {int(idx64[-1])}, but the accessor has {count} elements")
        return idx64, vals

    def _packed(self, ref: dict[str, Any], where: str, dtype: np.dtype[Any], n: int, ncomp: int) -> npt.NDArray[Any]:
        """Tightly packed elements for sparse indices and values (they never have a byteStride)."""
        view_index = _opt_int(ref, "bufferView", where)
        if view_index is None:
            _fail(f"{where}.bufferView is required")
        offset = _opt_int(ref, "byteOffset", where) or 0
        data, _ = self.view(view_index)
        if offset % dtype.itemsize:
            _fail(f"{where}.byteOffset = {offset} is not a multiple of {dtype.itemsize}")
        needed = offset + n * ncomp * dtype.itemsize
        if needed > len(data):
            _fail(f"{where} needs {needed} bytes of bufferViews[{view_index}], which has {len(data)}")
        return np.frombuffer(data, dtype, n * ncomp, offset).reshape(n, ncomp)

    def floats(self, index: int, where: str, types: tuple[str, ...], ctypes: frozenset[int] = _FLOATISH) -> F32:
        """An accessor as float32, applying the spec's normalized-integer formulas."""
        info, raw = self.accessor(index)
        self._check_type(info, index, where, types, ctypes)
        return _to_float(raw, info)

    def ints(self, index: int, where: str, types: tuple[str, ...], ctypes: frozenset[int]) -> npt.NDArray[Any]:
        """An accessor of (non-normalized) integers, as stored."""
        info, raw = self.accessor(index)
        self._check_type(info, index, where, types, ctypes)
        if info.normalized:
            _fail(f"{where} (accessors[{index}]) must not be normalized")
        return raw

    @staticmethod
    def _check_type(
        info: _AccessorInfo, index: int, where: str, types: tuple[str, ...], ctypes: frozenset[int]
    ) -> None:
        if info.type not in types:
            _fail(f"{where} (accessors[{index}]) is {info.type}, expected {' or '.join(types)}")
        if info.component_type not in ctypes:
            allowed = ", ".join(_COMPONENT_NAMES[c] for c in sorted(ctypes))
            _fail(
                f"{where} (accessors[{index}]) has components {_COMPONENT_NAMES[info.component_type]}, "
                f"expected {allowed}"
            )


def _to_float(raw: npt.NDArray[Any], info: _AccessorInfo) -> F32:
    if info.component_type == 5126:
        return np.array(raw, np.float32)
    if not info.normalized:
        return raw.astype(np.float32)
    # glTF 2.0, 3.11 (animation) and 3.7.2.1: unsigned c / (2^n - 1); signed max(c / (2^(n-1) - 1), -1).
    scale = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}[info.component_type]
    out = raw.astype(np.float32) / np.float32(scale)
    if info.component_type in (5120, 5122):
        np.maximum(out, np.float32(-1.0), out=out)
    return out


# --------------------------------------------------------------------------------------------------
# EXT_meshopt_compression: the attribute and index codecs and the filters, written from the
# extension's specification (KhronosGroup/glTF, extensions/2.0/Vendor/EXT_meshopt_compression).


def _meshopt_decode(src: bytes, mode: str, filt: str, count: int, stride: int, where: str) -> bytes:
    """Decode one compressed buffer view into ``count * stride`` bytes."""
    if mode == "ATTRIBUTES":
        if stride % 4 or stride > 256:
            _fail(f"{where}: ATTRIBUTES byteStride {stride} must be a multiple of 4, at most 256")
        out = _meshopt_attributes(src, count, stride, where)
    elif mode in ("TRIANGLES", "INDICES"):
        if stride not in (2, 4):
            _fail(f"{where}: {mode} needs byteStride 2 or 4")
        if filt != "NONE":
            _fail(f"{where}: filter {filt} is only defined for ATTRIBUTES")
        if mode == "TRIANGLES":
            if count % 3:
                _fail(f"{where}: TRIANGLES needs a count divisible by 3")
            indices = _meshopt_triangles(src, count, where)
        else:
            indices = _meshopt_indices(src, count, where)
        # Like the reference decoder, 16-bit output keeps the low 16 bits; range checks come later.
        dtype = "<u2" if stride == 2 else "<u4"
        return (np.array(indices, np.uint64) & (0xFFFF if stride == 2 else 0xFFFFFFFF)).astype(dtype).tobytes()
    else:
        _fail(f"{where}: unknown mode {mode!r}")
    if filt == "NONE":
        return out.tobytes()
    return _meshopt_filter(out, filt, count, stride, where)


def _sentinel_prefix(arr: U8, bits: int) -> list[int]:
    """``prefix[i]``: how many ``bits``-wide fields equal to the sentinel (all ones) bytes 0..i-1 hold.

    A group's size in the stream depends on how many sentinels its packed deltas contain; this
    table answers that for any byte range in O(1), so the serial walk over groups stays cheap.
    """
    b = arr.astype(np.int64)
    mask = (1 << bits) - 1
    per_byte = sum(((b >> shift) & mask) == mask for shift in range(0, 8, bits))
    prefix = np.zeros(arr.size + 1, np.int64)
    np.cumsum(per_byte, out=prefix[1:])
    out: list[int] = prefix.tolist()
    return out


def _meshopt_attributes(src: bytes, count: int, stride: int, where: str) -> U8:
    """The attribute codec (version 0), as ``uint8 (count, stride)``.

    Elements are split into blocks; within a block each byte lane is stored separately, in groups
    of 16 deltas (zero, 2-bit, 4-bit or raw, with sentinels escaping to a full byte). The deltas are
    zigzag-coded differences from the previous element, the first one from a baseline element at
    the very end of the stream. The walk that finds where each group starts is serial (a group's
    size depends on its content); decoding the groups and the running sums is then vectorized.
    """
    if len(src) < 1 or src[0] != 0xA0:
        version = f" (version byte 0x{src[0]:02x})" if src else ""
        _fail(f"{where}: not a version-0 meshopt attribute stream{version}")
    tail = max(stride, 32)  # the baseline element, zero-padded in front to 32 bytes
    if len(src) < 1 + tail:
        _fail(f"{where}: meshopt attribute stream is truncated")
    end = len(src) - tail
    arr = np.frombuffer(src, np.uint8)
    prefix2 = _sentinel_prefix(arr, 2)
    prefix4 = _sentinel_prefix(arr, 4)
    block_max = min((8192 // stride) & ~15, 256)

    modes: list[int] = []
    starts: list[int] = []
    blocks: list[tuple[int, int, int]] = []  # (first element, elements, groups)
    pos = 1
    element = 0
    while element < count:
        n = min(block_max, count - element)
        groups = (n + 15) // 16
        header_size = (groups + 3) // 4
        blocks.append((element, n, groups))
        for _lane in range(stride):
            header = pos
            pos += header_size
            if pos > end:
                _fail(f"{where}: meshopt attribute stream is truncated")
            if not any(src[header:pos]):
                # Every group of this byte lane is zero and takes no bytes: the common case for the
                # high bytes of quantized values and for morph target deltas, worth a shortcut.
                modes.extend([0] * groups)
                starts.extend([pos] * groups)
                continue
            for g in range(groups):
                mode = (src[header + (g >> 2)] >> ((g & 3) << 1)) & 3
                modes.append(mode)
                starts.append(pos)
                if mode == 1:
                    pos += 4 + prefix2[pos + 4] - prefix2[pos]
                elif mode == 2:
                    pos += 8 + prefix4[pos + 8] - prefix4[pos]
                elif mode == 3:
                    pos += 16
                # A group takes at most 24 bytes and the tail is 32, so the prefix lookups above
                # stay inside the stream as long as this holds after every group.
                if pos > end:
                    _fail(f"{where}: meshopt attribute stream is truncated")
        element += n
    if pos != end:
        _fail(f"{where}: meshopt attribute stream has {end - pos} bytes more than its {count} elements need")

    mode_arr = np.array(modes, np.int8)
    start_arr = np.array(starts, np.int64)
    values = np.zeros((mode_arr.size, 16), np.uint8)
    raw = mode_arr == 3
    values[raw] = arr[start_arr[raw, None] + np.arange(16)]
    for mode, bits in ((1, 2), (2, 4)):
        sel = mode_arr == mode
        if not sel.any():
            continue
        first = start_arr[sel]
        packed_size = bits * 2
        packed = arr[first[:, None] + np.arange(packed_size)]
        shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)  # the first delta is in the top bits
        sentinel = (1 << bits) - 1
        deltas = ((packed[:, :, None] >> shifts) & sentinel).reshape(-1, 16)
        escaped = deltas == sentinel
        # The escaped values follow the packed bytes, in the order of the deltas they replace.
        extra = first[:, None] + packed_size + np.cumsum(escaped, axis=1) - 1
        values[sel] = np.where(escaped, arr[np.minimum(extra, end - 1)], deltas)

    out = np.empty((count, stride), np.uint8)
    group = 0
    for first_element, n, groups in blocks:
        lanes = values[group : group + stride * groups].reshape(stride, groups * 16)
        out[first_element : first_element + n] = lanes[:, :n].T
        group += stride * groups
    # Zigzag (low bit is the sign), then one running sum per byte lane, wrapping at 256: block
    # boundaries do not restart the chain.
    wide = out.astype(np.int64)
    wide = (wide >> 1) ^ -(wide & 1)
    wide[0] += np.frombuffer(src, np.uint8, stride, len(src) - stride)
    np.cumsum(wide, axis=0, out=wide)
    return (wide & 0xFF).astype(np.uint8)


class _VarintReader:
    """Unsigned LEB128 values from ``src[pos:end]``, at most 5 bytes (32 bits) each."""

    def __init__(self, src: bytes, pos: int, end: int, where: str) -> None:
        self.src, self.pos, self.end, self.where = src, pos, end, where

    def byte(self) -> int:
        if self.pos >= self.end:
            _fail(f"{self.where}: meshopt index stream is truncated")
        value = self.src[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        value = 0
        for shift in range(0, 35, 7):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value & 0xFFFFFFFF
        _fail(f"{self.where}: meshopt varint longer than 5 bytes")


def _meshopt_triangles(src: bytes, count: int, where: str) -> list[int]:
    """The triangle codec (version 1): one code byte per triangle, edge and vertex FIFOs of 16."""
    triangles = count // 3
    if len(src) < 1 + triangles + 16 or src[0] != 0xE1:
        _fail(f"{where}: not a version-1 meshopt triangle stream, or truncated")
    aux = len(src) - 16  # the code table, the last 16 bytes
    data = _VarintReader(src, 1 + triangles, aux, where)
    edges = [(0, 0)] * 16
    verts = [0] * 16
    e_head = v_head = 0  # the next FIFO slot to write; entry i back is (head - 1 - i) & 15
    next_vertex = 0
    last = 0
    out = [0] * count

    def index() -> int:
        nonlocal last
        v = data.varint()
        last = (last + ((v >> 1) ^ -(v & 1))) & 0xFFFFFFFF
        return last

    for t in range(triangles):
        code = src[1 + t]
        high, low = code >> 4, code & 15
        if high < 15:
            a, b = edges[(e_head - 1 - high) & 15]
            push_c = True
            if low == 0:
                c = next_vertex
                next_vertex += 1
            elif low < 13:
                c = verts[(v_head - 1 - low) & 15]
                push_c = False
            elif low < 15:
                c = last = (last + (1 if low == 14 else -1)) & 0xFFFFFFFF
            else:
                c = index()
            edges[e_head] = (c, b)
            edges[(e_head + 1) & 15] = (a, c)
            e_head = (e_head + 2) & 15
            if push_c:
                verts[v_head] = c
                v_head = (v_head + 1) & 15
        else:
            if low < 14:
                z, w = src[aux + low] >> 4, src[aux + low] & 15
                explicit_a = False
            else:
                zw = data.byte()
                if zw == 0:
                    next_vertex = 0
                z, w = zw >> 4, zw & 15
                explicit_a = low == 15
            if explicit_a:
                a = index()
            else:
                a = next_vertex
                next_vertex += 1
            picked = []
            for nib in (z, w):
                if nib == 0:
                    v = next_vertex
                    next_vertex += 1
                elif nib < 15:
                    v = verts[(v_head - nib) & 15]  # entry nib-1 back, read before any push below
                else:
                    v = index()
                picked.append(v)
            b, c = picked
            edges[e_head] = (b, a)
            edges[(e_head + 1) & 15] = (c, b)
            edges[(e_head + 2) & 15] = (a, c)
            e_head = (e_head + 3) & 15
            verts[v_head] = a
            v_head = (v_head + 1) & 15
            for v, nib in ((b, z), (c, w)):
                if nib == 0 or nib == 15:
                    verts[v_head] = v
                    v_head = (v_head + 1) & 15
        out[3 * t] = a
        out[3 * t + 1] = b
        out[3 * t + 2] = c
    if data.pos != aux:
        _fail(f"{where}: meshopt triangle stream has {aux - data.pos} unexpected bytes")
    return out


def _meshopt_indices(src: bytes, count: int, where: str) -> list[int]:
    """The index-sequence codec (version 1): varint deltas against one of two baselines."""
    if len(src) < 1 + count + 4 or src[0] != 0xD1:  # at least one byte per index, 4-byte tail
        _fail(f"{where}: not a version-1 meshopt index stream, or truncated")
    end = len(src) - 4
    data = _VarintReader(src, 1, end, where)
    last = [0, 0]
    out = [0] * count
    for i in range(count):
        v = data.varint()
        base = v & 1
        delta = (v >> 2) ^ -((v >> 1) & 1)
        last[base] = (last[base] + delta) & 0xFFFFFFFF
        out[i] = last[base]
    if data.pos != end:
        _fail(f"{where}: meshopt index stream has {end - data.pos} unexpected bytes")
    return out


def _round_away(x: F32) -> F32:
    """C's round(): halves away from zero (numpy's rint rounds them to even)."""
    out: F32 = np.copysign(np.floor(np.abs(x) + np.float32(0.5)), x)
    return out


def _meshopt_filter(data: U8, filt: str, count: int, stride: int, where: str) -> bytes:
    """Apply a decode filter to ``uint8 (count, stride)`` attribute data."""
    if filt == "OCTAHEDRAL":
        if stride not in (4, 8):
            _fail(f"{where}: OCTAHEDRAL needs byteStride 4 or 8")
        itype = np.dtype("<i1") if stride == 4 else np.dtype("<i2")
        top = np.float32(127.0 if stride == 4 else 32767.0)
        raw: npt.NDArray[Any] = np.frombuffer(data.tobytes(), itype).reshape(count, 4)
        v: F32 = raw.astype(np.float32)
        # Working in the stored integer units skips the division by "one": the renormalization
        # cancels any uniform scale, and it keeps float32 rounding close to the reference decoder.
        x = v[:, 0]
        y = v[:, 1]
        z = v[:, 2] - np.abs(x) - np.abs(y)
        t = np.minimum(z, np.float32(0.0))
        x = x - np.copysign(t, x)
        y = y - np.copysign(t, y)
        length = np.sqrt(x * x + y * y + z * z)
        length[length == 0] = 1.0  # invalid input (the spec leaves it unspecified); avoid 0/0
        s = top / length
        out: npt.NDArray[Any] = np.empty((count, 4), itype)
        for k, comp in enumerate((x, y, z)):
            out[:, k] = _round_away((comp * s).astype(np.float32))
        out[:, 3] = raw[:, 3]
        return out.tobytes()
    if filt == "QUATERNION":
        if stride != 8:
            _fail(f"{where}: QUATERNION needs byteStride 8")
        q_in: npt.NDArray[np.int32] = np.frombuffer(data.tobytes(), "<i2").reshape(count, 4).astype(np.int32)
        one_q = (q_in[:, 3] | 3).astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(2.0)) / one_q
        xyz = q_in[:, :3].astype(np.float32) * scale[:, None]
        w = np.sqrt(np.maximum(np.float32(0.0), 1.0 - (xyz * xyz).sum(axis=1)))
        largest = q_in[:, 3] & 3
        rows = np.arange(count)
        q = np.empty((count, 4), np.int16)
        for k in range(3):
            q[rows, (largest + 1 + k) % 4] = _round_away((xyz[:, k] * 32767.0).astype(np.float32))
        q[rows, largest] = _round_away((w * 32767.0).astype(np.float32))
        return q.astype("<i2").tobytes()
    if filt == "EXPONENTIAL":
        e_in: npt.NDArray[np.int32] = np.frombuffer(data.tobytes(), "<i4").astype(np.int32)
        exponent = e_in >> 24
        mantissa = (e_in << 8) >> 8
        result: npt.NDArray[Any] = np.ldexp(mantissa.astype(np.float32), exponent)
        return result.astype("<f4").tobytes()
    _fail(f"{where}: unknown meshopt filter {filt!r}")


# --------------------------------------------------------------------------------------------------
# Images


def _decode_image(data: bytes, name: str, max_pixels: int) -> U8:
    try:
        from PIL import Image as PILImage
    except ImportError as err:  # pragma: no cover - Pillow is a dependency
        raise AvatarError(AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET, "decoding images needs Pillow") from err
    what = f"image {name!r}" if name else "an image"
    try:
        with warnings.catch_warnings():
            # Pillow warns (instead of failing) on images over its own pixel limit; we check ours.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"]) as im:
                width, height = im.size
                if width * height > max_pixels:
                    _fail(f"{what} is {width}x{height}, more than max_pixels ({max_pixels})")
                rgba = np.array(im.convert("RGBA"), np.uint8)
    except AvatarError:
        raise
    except Exception as err:  # Pillow's decoders raise many types (OSError, ValueError, SyntaxError ...)
        _fail(f"{what} does not decode: {type(err).__name__}: {err}")
    if rgba.ndim != 3 or rgba.shape[2] != 4:  # pragma: no cover - convert("RGBA") guarantees it
        _fail(f"{what} did not decode to RGBA")
    return rgba


# --------------------------------------------------------------------------------------------------
# The document


@dataclasses.dataclass(frozen=True)
class _Limits:
    max_elements: int
    max_vertices: int
    max_decoded_bytes: int
    morph_epsilon: float


class _Loader:
    def __init__(self, doc: dict[str, Any], buffers: list[memoryview | None], limits: _Limits, source: _Source) -> None:
        self.doc = doc
        self.limits = limits
        self.source = source
        self.warnings: list[str] = []
        self.reader = _Reader(doc, buffers, limits)
        used = _list(doc, "extensionsUsed", "")
        self.extensions_used = [e for e in used if isinstance(e, str)]
        self.reader.meshopt = "EXT_meshopt_compression" in self.extensions_used

    def load(self) -> GltfModel:
        doc = self.doc
        images = self._images()
        textures = self._textures(len(images))
        materials = [self._material(m, i, textures) for i, m in enumerate(_objects(doc, "materials", ""))]
        meshes = [self._mesh(m, i, len(materials)) for i, m in enumerate(_objects(doc, "meshes", ""))]
        nodes = self._nodes(meshes)
        skins = [self._skin(s, i, len(nodes)) for i, s in enumerate(_objects(doc, "skins", ""))]
        for i, node in enumerate(nodes):
            if node.skin is not None and node.skin >= len(skins):
                _fail(f"nodes[{i}].skin = {node.skin} but there are only {len(skins)} skins")
        self._check_joints(nodes, meshes, skins)
        roots = self._scene_roots(nodes)
        rest_pose = GltfModel([], nodes, [], [], [], []).node_world_matrices()
        if not np.isfinite(rest_pose).all():
            # Individually finite transforms can still multiply past float32 down a deep hierarchy.
            _fail("the node transforms overflow float32 when composed down the hierarchy")
        asset = _opt_obj(doc, "asset", "") or {}
        return GltfModel(
            faces_minus_z=self._vrm0(),
            humanoid_bones=self._humanoid_bones(len(nodes)),
            meshes=meshes,
            nodes=nodes,
            skins=skins,
            materials=materials,
            images=images,
            scene_roots=roots,
            extensions_used=self.extensions_used,
            generator=_str(asset, "generator", "asset"),
            warnings=self.warnings,
        )

    def _humanoid_bones(self, node_count: int) -> dict[str, int]:
        """The VRM humanoid's bones (VRM 0.x list or VRM 1.0 object); malformed entries are skipped."""
        extensions = self.doc.get("extensions")
        if not isinstance(extensions, dict):
            return {}
        bones: dict[str, int] = {}
        vrm0 = extensions.get("VRM")
        human = vrm0.get("humanoid") if isinstance(vrm0, dict) else None
        entries = human.get("humanBones") if isinstance(human, dict) else None
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("bone"), str):
                    bones[entry["bone"]] = entry.get("node")  # type: ignore[assignment]
        vrm1 = extensions.get("VRMC_vrm")
        human = vrm1.get("humanoid") if isinstance(vrm1, dict) else None
        entries = human.get("humanBones") if isinstance(human, dict) else None
        if isinstance(entries, dict):
            for bone, entry in entries.items():
                if isinstance(bone, str) and isinstance(entry, dict):
                    bones[bone] = entry.get("node")  # type: ignore[assignment]
        return {
            bone: node
            for bone, node in bones.items()
            if isinstance(node, int) and not isinstance(node, bool) and 0 <= node < node_count
        }

    def _vrm0(self) -> bool:
        """Whether the document is VRM 0.x (its ``VRM`` extension's ``specVersion`` is 0.x or absent)."""
        extensions = self.doc.get("extensions")
        vrm = extensions.get("VRM") if isinstance(extensions, dict) else None
        if not isinstance(vrm, dict):
            return False
        version = vrm.get("specVersion")
        return not isinstance(version, str) or version.startswith("0")

    # ---- images, textures, materials

    def _images(self) -> list[Image]:
        images = []
        for i, img in enumerate(_objects(self.doc, "images", "")):
            where = f"images[{i}]"
            name = _str(img, "name", where)
            mime = _str(img, "mimeType", where)
            view = _opt_int(img, "bufferView", where)
            if view is not None:
                if not mime:
                    _fail(f"{where} has a bufferView but no mimeType")
                data = bytes(self.reader.view(view)[0])
            elif "uri" in img:
                data = self.source.resolve(_str(img, "uri", where), where)
            else:
                _fail(f"{where} has neither a uri nor a bufferView")
            images.append(Image(name=name, mime_type=mime, data=data))
        return images

    def _textures(self, image_count: int) -> list[tuple[int | None, dict[str, Any], str]]:
        samplers = _objects(self.doc, "samplers", "")
        out: list[tuple[int | None, dict[str, Any], str]] = []
        for i, tex in enumerate(_objects(self.doc, "textures", "")):
            where = f"textures[{i}]"
            source = _ref(tex, "source", where, image_count, "images")
            extensions = _opt_obj(tex, "extensions", where) or {}
            webp = extensions.get("EXT_texture_webp")
            if webp is not None:
                # Pillow decodes WebP, so the WebP source wins over any fallback.
                source = _ref(
                    _obj(webp, f"{where}.extensions.EXT_texture_webp"),
                    "source",
                    f"{where}.extensions.EXT_texture_webp",
                    image_count,
                    "images",
                )
            if source is None:
                self.warnings.append(f"{where} has no image this loader can decode; it is left out")
            sampler_index = _ref(tex, "sampler", where, len(samplers), "samplers")
            sampler = samplers[sampler_index] if sampler_index is not None else {}
            out.append((source, sampler, f"samplers[{sampler_index}]"))
        return out

    def _texture_ref(
        self,
        material: dict[str, Any],
        key: str,
        where: str,
        textures: list[tuple[int | None, dict[str, Any], str]],
        scale_key: str | None = None,
    ) -> TextureRef | None:
        info = _opt_obj(material, key, where)
        if info is None:
            return None
        where = _where(where, key)
        index = _ref(info, "index", where, len(textures), "textures")
        if index is None:
            _fail(f"{where}.index is required")
        image, sampler, s_where = textures[index]
        if image is None:
            return None
        texcoord = _opt_int(info, "texCoord", where, hi=7) or 0
        transform = None
        ext = (_opt_obj(info, "extensions", where) or {}).get("KHR_texture_transform")
        if ext is not None:
            t_where = f"{where}.extensions.KHR_texture_transform"
            ext = _obj(ext, t_where)
            offset = _numbers(ext, "offset", t_where, 2) or (0.0, 0.0)
            scale = _numbers(ext, "scale", t_where, 2) or (1.0, 1.0)
            transform = TextureTransform(
                offset=(offset[0], offset[1]),
                rotation=_number(ext, "rotation", t_where, 0.0),
                scale=(scale[0], scale[1]),
            )
            override = _opt_int(ext, "texCoord", t_where, hi=7)
            if override is not None:
                texcoord = override
        return TextureRef(
            image=image,
            texcoord=texcoord,
            scale=_number(info, scale_key, where, 1.0) if scale_key else 1.0,
            transform=transform,
            mag_filter=_opt_int(sampler, "magFilter", s_where),
            min_filter=_opt_int(sampler, "minFilter", s_where),
            wrap_s=_opt_int(sampler, "wrapS", s_where) or 10497,
            wrap_t=_opt_int(sampler, "wrapT", s_where) or 10497,
        )

    def _material(
        self, mat: dict[str, Any], i: int, textures: list[tuple[int | None, dict[str, Any], str]]
    ) -> Material:
        where = f"materials[{i}]"
        pbr = _opt_obj(mat, "pbrMetallicRoughness", where) or {}
        p_where = f"{where}.pbrMetallicRoughness"
        alpha = _str(mat, "alphaMode", where, "OPAQUE")
        try:
            alpha_mode = AlphaMode(alpha)
        except ValueError:
            _fail(f"{where}.alphaMode {alpha!r} must be OPAQUE, MASK or BLEND")
        extensions = _opt_obj(mat, "extensions", where) or {}
        strength = 1.0
        if "KHR_materials_emissive_strength" in extensions:
            e_where = f"{where}.extensions.KHR_materials_emissive_strength"
            ext = _obj(extensions["KHR_materials_emissive_strength"], e_where)
            strength = _number(ext, "emissiveStrength", e_where, 1.0, lo=0.0)
        color = _numbers(pbr, "baseColorFactor", p_where, 4, 0.0, 1.0) or (1.0, 1.0, 1.0, 1.0)
        emissive = _numbers(mat, "emissiveFactor", where, 3, 0.0, 1.0) or (0.0, 0.0, 0.0)
        return Material(
            name=_str(mat, "name", where),
            base_color_factor=(color[0], color[1], color[2], color[3]),
            base_color_texture=self._texture_ref(pbr, "baseColorTexture", p_where, textures),
            metallic_factor=_number(pbr, "metallicFactor", p_where, 1.0, 0.0, 1.0),
            roughness_factor=_number(pbr, "roughnessFactor", p_where, 1.0, 0.0, 1.0),
            metallic_roughness_texture=self._texture_ref(pbr, "metallicRoughnessTexture", p_where, textures),
            normal_texture=self._texture_ref(mat, "normalTexture", where, textures, "scale"),
            occlusion_texture=self._texture_ref(mat, "occlusionTexture", where, textures, "strength"),
            emissive_factor=(emissive[0], emissive[1], emissive[2]),
            emissive_strength=strength,
            emissive_texture=self._texture_ref(mat, "emissiveTexture", where, textures),
            alpha_mode=alpha_mode,
            alpha_cutoff=_number(mat, "alphaCutoff", where, 0.5, lo=0.0),
            double_sided=_bool(mat, "doubleSided", where, False),
            unlit="KHR_materials_unlit" in extensions,
        )

    # ---- meshes

    def _mesh(self, mesh: dict[str, Any], mi: int, material_count: int) -> Mesh:
        where = f"meshes[{mi}]"
        name = _str(mesh, "name", where)
        prim_objs = _objects(mesh, "primitives", where)
        if not prim_objs:
            _fail(f"{where} has no primitives")
        target_count: int | None = None
        for pi, p in enumerate(prim_objs):
            n = len(_list(p, "targets", f"{where}.primitives[{pi}]"))
            if target_count is None:
                target_count = n
            elif n != target_count:
                _fail(f"{where}: its primitives have {target_count} and {n} morph targets; they must agree")
        assert target_count is not None
        names = self._target_names(mesh, prim_objs, where, target_count)
        primitives = []
        for pi, p in enumerate(prim_objs):
            prim = self._primitive(p, f"{where}.primitives[{pi}]", material_count, names)
            if prim is not None:
                primitives.append(prim)
        weights = np.zeros(target_count, np.float32)
        values = _numbers(mesh, "weights", where, target_count)
        if values is not None:
            weights = np.array(values, np.float32)
        extras = mesh.get("extras")
        return Mesh(
            name=name,
            primitives=primitives,
            target_names=names,
            default_weights=weights,
            extras=extras if isinstance(extras, dict) else {},
        )

    def _target_names(self, mesh: dict[str, Any], prims: list[dict[str, Any]], where: str, count: int) -> list[str]:
        """The mesh's target names, from the first place that names them all.

        ``mesh.extras.targetNames`` (Blender, Ready Player Me), else a primitive's
        ``extras.targetNames`` (UniVRM writes them per primitive), else ``target_<i>``.
        """
        places = [(mesh, where)] + [(p, f"{where}.primitives[{i}]") for i, p in enumerate(prims)]
        bad: str | None = None
        for obj, place in places:
            extras = obj.get("extras")
            raw = extras.get("targetNames") if isinstance(extras, dict) else None
            if raw is None:
                continue
            if isinstance(raw, list) and len(raw) == count and all(isinstance(n, str) for n in raw):
                return list(raw)
            bad = bad or place
        if count and bad is not None:
            self.warnings.append(f"{bad}.extras.targetNames does not name its {count} targets; using indices")
        elif count:
            self.warnings.append(f"{where} has {count} unnamed morph targets")
        return [f"target_{i}" for i in range(count)]

    def _primitive(
        self, prim: dict[str, Any], where: str, material_count: int, target_names: list[str]
    ) -> Primitive | None:
        r = self.reader
        mode = _opt_int(prim, "mode", where, hi=6)
        mode = 4 if mode is None else mode
        if mode < 4:
            kind = ["points", "lines", "line loops", "line strips"][mode]
            self.warnings.append(f"{where} draws {kind}; only triangles are loaded, so it is skipped")
            return None
        # A Draco-compressed primitive that reaches this point has its extension optional, so its
        # uncompressed attributes are there too (a required KHR_draco_mesh_compression was refused).
        attributes = _obj(prim.get("attributes"), f"{where}.attributes")
        a_where = f"{where}.attributes"

        def acc(key: str) -> int | None:
            return _ref(attributes, key, a_where, len(r.accessors), "accessors")

        pos_index = acc("POSITION")
        if pos_index is None:
            self.warnings.append(f"{where} has no POSITION; it is skipped")
            return None
        # The vertex cap is checked on the declared count, before the positions are decoded.
        n = _int(r.accessors[pos_index], "count", f"accessors[{pos_index}]", lo=1)
        if n > self.limits.max_vertices:
            _fail(f"{where} has {n} vertices, more than max_vertices ({self.limits.max_vertices})")
        positions = r.floats(pos_index, f"{a_where}.POSITION", ("VEC3",))

        def attr(key: str, types: tuple[str, ...], ints: frozenset[int] | None = None) -> npt.NDArray[Any] | None:
            index = acc(key)
            if index is None:
                return None
            data = (
                r.ints(index, f"{a_where}.{key}", types, ints) if ints else r.floats(index, f"{a_where}.{key}", types)
            )
            if data.shape[0] != n:
                _fail(f"{a_where}.{key} has {data.shape[0]} elements but POSITION has {n}")
            return data

        normals = attr("NORMAL", ("VEC3",))
        tangents = attr("TANGENT", ("VEC4",))
        texcoords = attr("TEXCOORD_0", ("VEC2",))
        texcoords1 = attr("TEXCOORD_1", ("VEC2",))
        colors = attr("COLOR_0", ("VEC3", "VEC4"))
        if colors is not None and colors.shape[1] == 3:
            colors = np.concatenate([colors, np.ones((n, 1), np.float32)], axis=1)
        joints_raw = attr("JOINTS_0", ("VEC4",), frozenset({5121, 5123}))
        weights = attr("WEIGHTS_0", ("VEC4",))
        if (joints_raw is None) != (weights is None):
            _fail(f"{where} has one of JOINTS_0 and WEIGHTS_0 without the other")
        joints = None if joints_raw is None else joints_raw.astype(np.uint16)

        indices = self._indices(prim, where, mode, n)
        material = _ref(prim, "material", where, material_count, "materials")

        targets = []
        for ti, t in enumerate(_list(prim, "targets", where)):
            targets.append(
                self._target(_obj(t, f"{where}.targets[{ti}]"), f"{where}.targets[{ti}]", target_names[ti], n)
            )
        generated = False
        if normals is None:
            normals = _smooth_normals(positions, indices)
            generated = True
        return Primitive(
            positions=positions,
            indices=indices,
            normals=normals,
            normals_generated=generated,
            tangents=tangents,
            texcoords=texcoords,
            texcoords1=texcoords1,
            colors=colors,
            joints=joints,
            weights=weights,
            material=material,
            targets=targets,
        )

    def _indices(self, prim: dict[str, Any], where: str, mode: int, n: int) -> U32:
        index = _ref(prim, "indices", where, len(self.reader.accessors), "accessors")
        if index is None:
            raw = np.arange(n, dtype=np.uint32)
        else:
            data = self.reader.ints(index, f"{where}.indices", ("SCALAR",), frozenset({5121, 5123, 5125}))
            raw = data.reshape(-1).astype(np.uint32)
            if raw.size and int(raw.max()) >= n:
                _fail(f"{where}.indices reach vertex {int(raw.max())}, but the primitive has {n} vertices")
        if mode == 4:
            if raw.size % 3:
                _fail(f"{where} is a triangle list of {raw.size} indices, not a multiple of 3")
            return raw
        if raw.size < 3:
            return np.zeros(0, np.uint32)
        k = np.arange(raw.size - 2)
        if mode == 5:  # strip: (k, k+1, k+2) with every other triangle flipped to keep the winding
            odd = k & 1
            tris = np.stack([raw[k], raw[k + 1 + odd], raw[k + 2 - odd]], axis=1)
            # Strips stitch pieces together with degenerate triangles; those draw nothing.
            keep = (tris[:, 0] != tris[:, 1]) & (tris[:, 1] != tris[:, 2]) & (tris[:, 0] != tris[:, 2])
            tris = tris[keep]
        else:  # fan: (k+1, k+2, 0)
            tris = np.stack([raw[k + 1], raw[k + 2], np.full(k.size, raw[0])], axis=1)
        return np.ascontiguousarray(tris.reshape(-1), np.uint32)

    def _target(self, target: dict[str, Any], where: str, name: str, n: int) -> MorphTarget:
        r = self.reader
        deltas = {}
        for key in ("POSITION", "NORMAL"):
            index = _ref(target, key, where, len(r.accessors), "accessors")
            if index is None:
                continue
            data = r.floats(index, f"{where}.{key}", ("VEC3",))
            if data.shape[0] != n:
                _fail(f"{where}.{key} has {data.shape[0]} elements but the primitive has {n} vertices")
            deltas[key] = data
        eps = self.limits.morph_epsilon
        moved = np.zeros(n, bool)
        for data in deltas.values():
            moved |= (np.abs(data) > eps).any(axis=1)
        rows = np.flatnonzero(moved)
        position = deltas.get("POSITION")
        normal = deltas.get("NORMAL")
        return MorphTarget(
            name=name,
            indices=rows.astype(np.uint32),
            positions=position[rows] if position is not None else np.zeros((rows.size, 3), np.float32),
            normals=normal[rows] if normal is not None else None,
        )

    # ---- nodes, skins, scenes

    def _nodes(self, meshes: list[Mesh]) -> list[Node]:
        objs = _objects(self.doc, "nodes", "")
        count = len(objs)
        parent: list[int | None] = [None] * count
        children_of: list[list[int]] = []
        for i, node in enumerate(objs):
            where = f"nodes[{i}]"
            children = []
            for k, c in enumerate(_list(node, "children", where)):
                if not isinstance(c, int) or isinstance(c, bool) or not 0 <= c < count:
                    _fail(f"{where}.children[{k}] = {c!r:.20} is not a node index")
                if c == i:
                    _fail(f"{where} lists itself as a child (a cycle)")
                if parent[c] is not None:
                    _fail(f"nodes[{c}] has two parents (nodes[{parent[c]}] and nodes[{i}]); nodes form trees")
                parent[c] = i
                children.append(c)
            children_of.append(children)
        _check_acyclic(parent)
        nodes = []
        for i, node in enumerate(objs):
            where = f"nodes[{i}]"
            mesh = _ref(node, "mesh", where, len(meshes), "meshes")
            skin = _opt_int(node, "skin", where)
            weights = None
            if node.get("weights") is not None:
                if mesh is None:
                    _fail(f"{where} has weights but no mesh")
                values = _numbers(node, "weights", where, len(meshes[mesh].target_names))
                weights = None if values is None else np.array(values, np.float32)
            matrix_values = _numbers(node, "matrix", where, 16)
            translation = rotation = scale = None
            if matrix_values is not None:
                if any(k in node for k in ("translation", "rotation", "scale")):
                    _fail(f"{where} has both a matrix and translation/rotation/scale")
                matrix = np.array(matrix_values, np.float64).reshape(4, 4).T  # column-major in JSON
            else:
                t = _numbers(node, "translation", where, 3) or (0.0, 0.0, 0.0)
                q = _numbers(node, "rotation", where, 4, -1.0, 1.0) or (0.0, 0.0, 0.0, 1.0)
                s = _numbers(node, "scale", where, 3) or (1.0, 1.0, 1.0)
                norm = math.sqrt(sum(v * v for v in q))
                if norm < 1e-6:
                    _fail(f"{where}.rotation is not a unit quaternion")
                q = tuple(v / norm for v in q)
                translation, rotation, scale = (
                    (t[0], t[1], t[2]),
                    (q[0], q[1], q[2], q[3]),
                    (s[0], s[1], s[2]),
                )
                matrix = _trs_matrix(translation, rotation, scale)
            nodes.append(
                Node(
                    name=_str(node, "name", where),
                    parent=parent[i],
                    children=children_of[i],
                    matrix=matrix.astype(np.float32),
                    translation=translation,
                    rotation=rotation,
                    scale=scale,
                    mesh=mesh,
                    skin=skin,
                    weights=weights,
                    extras=node["extras"] if isinstance(node.get("extras"), dict) else {},
                )
            )
        return nodes

    def _skin(self, skin: dict[str, Any], i: int, node_count: int) -> Skin:
        where = f"skins[{i}]"
        joints = []
        for k, j in enumerate(_list(skin, "joints", where)):
            if not isinstance(j, int) or isinstance(j, bool) or not 0 <= j < node_count:
                _fail(f"{where}.joints[{k}] = {j!r:.20} is not a node index")
            joints.append(j)
        if not joints:
            _fail(f"{where} has no joints")
        ibm_index = _ref(skin, "inverseBindMatrices", where, len(self.reader.accessors), "accessors")
        if ibm_index is None:
            ibm = np.tile(np.eye(4, dtype=np.float32), (len(joints), 1, 1))
        else:
            data = self.reader.floats(ibm_index, f"{where}.inverseBindMatrices", ("MAT4",), frozenset({5126}))
            if data.shape[0] < len(joints):
                _fail(f"{where}.inverseBindMatrices has {data.shape[0]} matrices for {len(joints)} joints")
            ibm = np.ascontiguousarray(data[: len(joints)].reshape(-1, 4, 4).transpose(0, 2, 1))
        return Skin(
            name=_str(skin, "name", where),
            joints=joints,
            inverse_bind_matrices=ibm,
            skeleton=_ref(skin, "skeleton", where, node_count, "nodes"),
        )

    def _check_joints(self, nodes: list[Node], meshes: list[Mesh], skins: list[Skin]) -> None:
        """Joint indices must address the skin: the renderer indexes a palette with them."""
        for ni, node in enumerate(nodes):
            if node.mesh is None:
                continue
            for pi, prim in enumerate(meshes[node.mesh].primitives):
                if prim.joints is None or prim.weights is None:
                    continue
                if node.skin is None:
                    continue  # an unskinned instance of a skinned mesh just ignores its joints
                limit = len(skins[node.skin].joints)
                bad = prim.joints >= limit
                if not bad.any():
                    continue
                if (prim.weights[bad] != 0).any():
                    _fail(
                        f"meshes[{node.mesh}].primitives[{pi}] uses joint {int(prim.joints.max())}, but "
                        f"nodes[{ni}]'s skin has {limit} joints"
                    )
                # Out-of-range joints that carry no weight are harmless padding; point them at 0.
                prim.joints = np.where(bad, 0, prim.joints).astype(np.uint16)

    def _scene_roots(self, nodes: list[Node]) -> list[int]:
        scenes = _objects(self.doc, "scenes", "")
        scene = _ref(self.doc, "scene", "", len(scenes), "scenes")
        if scene is None and scenes:
            scene = 0
        if scene is None:
            return [i for i, n in enumerate(nodes) if n.parent is None]
        where = f"scenes[{scene}]"
        roots = []
        for k, r in enumerate(_list(scenes[scene], "nodes", where)):
            if not isinstance(r, int) or isinstance(r, bool) or not 0 <= r < len(nodes):
                _fail(f"{where}.nodes[{k}] = {r!r:.20} is not a node index")
            if nodes[r].parent is not None:
                _fail(f"{where}.nodes[{k}] = {r} is not a root node (its parent is nodes[{nodes[r].parent}])")
            roots.append(r)
        return roots


def _check_acyclic(parent: list[int | None]) -> None:
    """Fail if following parents from some node loops (with one parent each, that is a cycle)."""
    state = [0] * len(parent)  # 0 unseen, 1 on the current walk, 2 known to reach a root
    for start in range(len(parent)):
        path = []
        node: int | None = start
        while node is not None and state[node] == 0:
            state[node] = 1
            path.append(node)
            node = parent[node]
        if node is not None and state[node] == 1:
            _fail(f"the node hierarchy has a cycle through nodes[{node}]")
        for p in path:
            state[p] = 2


def _trs_matrix(
    t: tuple[float, float, float], q: tuple[float, float, float, float], s: tuple[float, float, float]
) -> npt.NDArray[np.float64]:
    x, y, z, w = q
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    m = np.eye(4)
    m[:3, :3] = rot * np.array(s)[None, :]
    m[:3, 3] = t
    return m


def _smooth_normals(positions: F32, indices: U32) -> F32:
    """Area-weighted vertex normals, for primitives that have none.

    The spec asks for flat normals, which would split shared vertices and break the vertex numbering
    that the morph targets index; smooth normals keep it.
    """
    n = positions.shape[0]
    tris = indices.reshape(-1, 3).astype(np.int64)
    p = positions.astype(np.float64)
    face = np.cross(p[tris[:, 1]] - p[tris[:, 0]], p[tris[:, 2]] - p[tris[:, 0]])
    acc = np.zeros((n, 3), np.float64)
    for corner in range(3):
        for axis in range(3):
            acc[:, axis] += np.bincount(tris[:, corner], weights=face[:, axis], minlength=n)
    length = np.linalg.norm(acc, axis=1)
    out = np.zeros((n, 3), np.float32)
    out[:, 2] = 1.0  # vertices of no (or only degenerate) triangles get +Z
    ok = length > 1e-20
    out[ok] = (acc[ok] / length[ok, None]).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------------------
# Entry point


def load_gltf(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_vertices: int = DEFAULT_MAX_VERTICES,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_decoded_bytes: int | None = None,
    morph_epsilon: float = 0.0,
    decode_images: bool = False,
) -> GltfModel:
    """Load a glTF 2.0 asset from a path (.glb or .gltf) or from the bytes of one.

    The container is recognised by its content (GLB magic, else JSON), not by the file name. Bytes
    cannot refer to external files (there is no folder to resolve them in); a path can, to files in
    its own folder or below, never elsewhere and never over the network.

    Args:
        source: a path, or the file's bytes.
        max_bytes: the largest input (file plus external buffers and images) to read.
        max_vertices: the most vertices one primitive may have.
        max_elements: the largest ``count`` of one accessor.
        max_decoded_bytes: roughly the most the decoded accessors may take in all; by default 64 times
            the input's size, at least :data:`DEFAULT_MIN_DECODED_BYTES`.
        morph_epsilon: morph target deltas no larger than this (in every component) are dropped
            from the sparse targets; 0 keeps every nonzero delta.
        decode_images: decode every image now (errors surface here) instead of on first use.

    Raises:
        AvatarError: ``incompatibleAvatarAsset`` for malformed files and unsupported features
            (the message names the field or the extension); ``avatarAssetsMissing`` when the file,
            or a file it refers to, cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = memoryview(bytes(source))
        if len(data) > max_bytes:
            _fail(f"the asset is {len(data)} bytes, more than max_bytes ({max_bytes})")
        base_dir = None
        label = "<bytes>"
    else:
        path = pathlib.Path(source)
        label = str(path)
        try:
            size = path.stat().st_size
            if size > max_bytes:
                _fail(f"{path} is {size} bytes, more than max_bytes ({max_bytes})")
            data = memoryview(path.read_bytes())
        except OSError as err:
            raise AvatarError(AvatarErrorCode.AVATAR_ASSETS_MISSING, f"cannot read {path}: {err}") from err
        base_dir = path.parent
    try:
        return _load(
            data,
            base_dir,
            max_bytes - len(data),
            _Limits(
                max_elements,
                max_vertices,
                max(DEFAULT_MIN_DECODED_BYTES, 64 * len(data)) if max_decoded_bytes is None else max_decoded_bytes,
                morph_epsilon,
            ),
            decode_images,
        )
    except MemoryError as err:
        _fail(f"{label}: out of memory while loading ({err})")
    except AvatarError as err:
        if base_dir is None or err.message.startswith(label):
            raise
        raise AvatarError(err.code, f"{label}: {err.message}") from None


def _load(
    data: memoryview, base_dir: pathlib.Path | None, budget: int, limits: _Limits, decode_images: bool
) -> GltfModel:
    if len(data) >= 4 and bytes(data[:4]) == b"glTF":
        doc, bin_chunk = _split_glb(data)
    else:
        doc, bin_chunk = _parse_json(data, "the glTF JSON"), None
    asset = _obj(doc.get("asset"), "asset")
    version = _str(asset, "version", "asset")
    if not re.fullmatch(r"2\.\d+", version):
        _fail(f"asset.version {version!r} is not glTF 2.x")
    min_version = _str(asset, "minVersion", "asset", "2.0")
    if min_version != "2.0" and min_version.startswith("2."):
        _fail(f"asset.minVersion {min_version!r} is newer than this loader (2.0)")
    required = _list(doc, "extensionsRequired", "")
    if not all(isinstance(e, str) for e in required):
        _fail("extensionsRequired must be an array of strings")
    unsupported = [e for e in required if e not in SUPPORTED_EXTENSIONS]
    if unsupported:
        _fail(f"the asset requires unsupported glTF extension(s): {', '.join(unsupported)}")
    for key, cap in DEFAULT_MAX_COUNTS.items():
        items = doc.get(key)
        if isinstance(items, list) and len(items) > cap:
            _fail(f"{key} has {len(items)} entries, more than this loader accepts ({cap})")

    source = _Source(base_dir, budget)
    buffers: list[memoryview | None] = []
    for i, b in enumerate(_objects(doc, "buffers", "")):
        where = f"buffers[{i}]"
        length = _int(b, "byteLength", where, lo=1)
        extensions = _opt_obj(b, "extensions", where) or {}
        if "uri" in b:
            raw = memoryview(source.resolve(_str(b, "uri", where), where))
        elif i == 0 and bin_chunk is not None:
            raw = bin_chunk
        elif "EXT_meshopt_compression" in extensions:
            buffers.append(None)  # a fallback buffer: its views are decoded from compressed data
            continue
        else:
            _fail(f"{where} has no uri, and only buffers[0] of a GLB may use the BIN chunk")
        if len(raw) < length:
            _fail(f"{where}.byteLength is {length}, but only {len(raw)} bytes are there")
        buffers.append(raw[:length])
    model = _Loader(doc, buffers, limits, source).load()
    if decode_images:
        for image in model.images:
            image.rgba()
    return model
