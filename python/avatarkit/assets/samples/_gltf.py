"""A minimal glTF 2.0 binary (GLB) writer: buffers, accessors, sparse morph targets, PBR materials.

Only what the sample avatars need, written so the output is byte-for-byte deterministic: JSON keys
in a fixed order, no timestamps, every float rounded the same way on every run.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from ._geometry import MeshData

_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_FLOAT = 5126
_UNSIGNED_SHORT = 5123
_UNSIGNED_INT = 5125
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4"}

#: Morph deltas shorter than this (metres) are dropped: they are invisible, and leaving them out is
#: what keeps the sparse targets (and so the file) small.
POSITION_EPSILON = 2e-4
#: Normal deltas below this length are dropped for the same reason.
NORMAL_EPSILON = 0.05


def _f(values: npt.NDArray[np.floating[Any]]) -> list[float]:
    # Round JSON floats so min/max are stable and short.
    return [float(round(float(v), 6)) for v in values]


class GltfBuilder:
    """Accumulates glTF objects and one binary buffer, then writes a GLB."""

    def __init__(self) -> None:
        """Start an empty asset."""
        self._bin = bytearray()
        self.doc: dict[str, Any] = {
            "asset": {"version": "2.0", "generator": "avatarkit.assets.samples"},
            "scene": 0,
            "scenes": [{"name": "Scene", "nodes": []}],
            "nodes": [],
            "meshes": [],
            "materials": [],
            "accessors": [],
            "bufferViews": [],
            "buffers": [],
        }

    # -- binary data ----------------------------------------------------------------------------

    def _view(self, data: bytes, target: int | None = None) -> int:
        while len(self._bin) % 4:
            self._bin.append(0)
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self._bin), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self._bin.extend(data)
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def _accessor(self, acc: dict[str, Any]) -> int:
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def add_floats(self, array: npt.NDArray[np.floating[Any]], *, minmax: bool = False) -> int:
        """A float32 vertex attribute accessor (``minmax`` for POSITION, which glTF requires)."""
        a = np.ascontiguousarray(array, np.float32)
        comps = 1 if a.ndim == 1 else a.shape[1]
        acc: dict[str, Any] = {
            "bufferView": self._view(a.tobytes(), _ARRAY_BUFFER),
            "componentType": _FLOAT,
            "count": len(a),
            "type": _TYPES[comps],
        }
        if minmax:
            acc["min"] = _f(a.reshape(len(a), -1).min(0))
            acc["max"] = _f(a.reshape(len(a), -1).max(0))
        return self._accessor(acc)

    def add_indices(self, triangles: npt.NDArray[np.integer[Any]], vertex_count: int) -> int:
        """A triangle index accessor, uint16 when the vertices allow it."""
        flat = np.asarray(triangles).reshape(-1)
        if vertex_count <= 0xFFFF:
            data, ctype = flat.astype("<u2").tobytes(), _UNSIGNED_SHORT
        else:
            data, ctype = flat.astype("<u4").tobytes(), _UNSIGNED_INT
        return self._accessor(
            {
                "bufferView": self._view(data, _ELEMENT_ARRAY_BUFFER),
                "componentType": ctype,
                "count": len(flat),
                "type": "SCALAR",
            }
        )

    def add_sparse_delta(self, delta: npt.NDArray[np.float64], epsilon: float, *, minmax: bool) -> int:
        """A VEC3 morph-target accessor holding only the rows that move (glTF sparse accessor).

        An accessor without a buffer view reads as zeros, so a target that does not move this
        primitive costs no bytes at all.
        """
        d = np.asarray(delta, np.float32)
        moving = np.nonzero(np.linalg.norm(d, axis=1) > epsilon)[0]
        dense = np.zeros_like(d)
        dense[moving] = d[moving]
        acc: dict[str, Any] = {"componentType": _FLOAT, "count": len(d), "type": "VEC3"}
        if minmax:
            acc["min"] = _f(dense.min(0))
            acc["max"] = _f(dense.max(0))
        if len(moving):
            small = len(d) <= 0xFFFF
            idx = moving.astype("<u2" if small else "<u4").tobytes()
            acc["sparse"] = {
                "count": len(moving),
                "indices": {
                    "bufferView": self._view(idx),
                    "componentType": _UNSIGNED_SHORT if small else _UNSIGNED_INT,
                },
                "values": {"bufferView": self._view(np.ascontiguousarray(dense[moving]).tobytes())},
            }
        return self._accessor(acc)

    # -- materials and textures ------------------------------------------------------------------

    def add_png_texture(self, png: bytes, *, tile: bool = False) -> int:
        """Embed a PNG and return its texture index.

        Filtering is trilinear. ``u`` always wraps (it runs around a head or an eyeball); ``v`` is
        clamped unless ``tile`` (hair strands and cloth weave repeat in both directions).
        """
        images = self.doc.setdefault("images", [])
        images.append({"bufferView": self._view(png), "mimeType": "image/png"})
        sampler = {"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497 if tile else 33071}
        samplers = self.doc.setdefault("samplers", [])
        if sampler not in samplers:
            samplers.append(sampler)
        textures = self.doc.setdefault("textures", [])
        textures.append({"sampler": samplers.index(sampler), "source": len(images) - 1})
        return len(textures) - 1

    def add_material(
        self,
        name: str,
        color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
        *,
        roughness: float = 0.6,
        metallic: float = 0.0,
        texture: int | None = None,
        alpha_mode: str = "OPAQUE",
        double_sided: bool = False,
    ) -> int:
        """A pbrMetallicRoughness material; returns its index."""
        pbr: dict[str, Any] = {
            "baseColorFactor": [round(c, 4) for c in color],
            "metallicFactor": metallic,
            "roughnessFactor": roughness,
        }
        if texture is not None:
            pbr["baseColorTexture"] = {"index": texture}
        mat: dict[str, Any] = {"name": name, "pbrMetallicRoughness": pbr}
        if alpha_mode != "OPAQUE":
            mat["alphaMode"] = alpha_mode
        if double_sided:
            mat["doubleSided"] = True
        self.doc["materials"].append(mat)
        return len(self.doc["materials"]) - 1

    # -- meshes and nodes --------------------------------------------------------------------------

    def add_mesh(
        self,
        name: str,
        primitives: list[tuple[MeshData, int]],
        target_names: list[str] | None = None,
        *,
        normal_targets: bool | set[str] = True,
    ) -> int:
        """A mesh of (geometry, material) primitives sharing ``target_names`` (all or none of them).

        Every primitive gets every target, as glTF requires the same count in the same order; a
        target that does not touch a primitive is a zero accessor without data. ``normal_targets``
        says which targets get NORMAL deltas (all, none, or a set of names); the others get a zero
        NORMAL accessor so every target has the same attributes.
        """
        names = target_names or []
        prims = []
        for mesh, material in primitives:
            mesh.finish_normals()
            assert mesh.normals is not None
            attrs = {
                "POSITION": self.add_floats(mesh.positions, minmax=True),
                "NORMAL": self.add_floats(mesh.normals),
            }
            if mesh.uvs is not None:
                attrs["TEXCOORD_0"] = self.add_floats(mesh.uvs)
            prim: dict[str, Any] = {
                "attributes": attrs,
                "indices": self.add_indices(mesh.triangles, len(mesh.positions)),
                "material": material,
                "mode": 4,
            }
            if names:
                targets = []
                zero = np.zeros_like(mesh.positions)
                wanted = set(names) if normal_targets is True else set(normal_targets or ())
                moved = _normal_deltas(mesh, [t for t in names if t in wanted])
                for t in names:
                    delta = mesh.targets.get(t, zero)
                    target = {"POSITION": self.add_sparse_delta(delta, POSITION_EPSILON, minmax=True)}
                    if normal_targets is not False:
                        target["NORMAL"] = self.add_sparse_delta(moved.get(t, zero), NORMAL_EPSILON, minmax=False)
                    targets.append(target)
                prim["targets"] = targets
            prims.append(prim)
        mesh_doc: dict[str, Any] = {"name": name, "primitives": prims}
        if names:
            mesh_doc["weights"] = [0.0] * len(names)
            mesh_doc["extras"] = {"targetNames": list(names)}
        self.doc["meshes"].append(mesh_doc)
        return len(self.doc["meshes"]) - 1

    def add_node(
        self,
        name: str,
        *,
        translation: tuple[float, float, float] | None = None,
        mesh: int | None = None,
        children: list[int] | None = None,
        extras: dict[str, Any] | None = None,
    ) -> int:
        """A node; returns its index (children must already exist)."""
        node: dict[str, Any] = {"name": name}
        if translation is not None and any(translation):
            node["translation"] = [round(float(v), 6) for v in translation]
        if mesh is not None:
            node["mesh"] = mesh
        if children:
            node["children"] = children
        if extras:
            node["extras"] = extras
        self.doc["nodes"].append(node)
        return len(self.doc["nodes"]) - 1

    def to_glb(self, root_nodes: list[int]) -> bytes:
        """Serialise: 12-byte header, JSON chunk (space padded), BIN chunk (zero padded)."""
        while len(self._bin) % 4:
            self._bin.append(0)
        self.doc["scenes"][0]["nodes"] = root_nodes
        self.doc["buffers"] = [{"byteLength": len(self._bin)}]
        js = json.dumps(self.doc, separators=(",", ":")).encode()
        js += b" " * (-len(js) % 4)
        total = 12 + 8 + len(js) + 8 + len(self._bin)
        return b"".join(
            [
                struct.pack("<4sII", b"glTF", 2, total),
                struct.pack("<I4s", len(js), b"JSON"),
                js,
                struct.pack("<I4s", len(self._bin), b"BIN\x00"),
                bytes(self._bin),
            ]
        )


def _normal_deltas(mesh: MeshData, names: list[str]) -> dict[str, npt.NDArray[np.float64]]:
    """Per-target normal deltas: the normals of the fully deformed mesh minus the rest normals."""
    from ._geometry import vertex_normals

    assert mesh.normals is not None
    out = {}
    for t in names:
        delta = mesh.targets.get(t)
        if delta is None or not np.any(delta):
            out[t] = np.zeros_like(mesh.positions)
            continue
        out[t] = vertex_normals(mesh.positions + delta, mesh.triangles) - mesh.normals
    return out
