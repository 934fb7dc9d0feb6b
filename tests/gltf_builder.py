"""A small glTF 2.0 writer for the loader's tests: build documents in code, emit .glb or .gltf bytes.

It writes exactly what a test asks for, including wrong things (the JSON is a plain dict that a test
may edit before calling :meth:`GltfBuilder.glb`), so malformed files are easy to make.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from typing import Any

import numpy as np

COMPONENT_TYPES = {
    np.dtype(np.int8): 5120,
    np.dtype(np.uint8): 5121,
    np.dtype(np.int16): 5122,
    np.dtype(np.uint16): 5123,
    np.dtype(np.uint32): 5125,
    np.dtype(np.float32): 5126,
}
TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


def pad4(data: bytes, fill: bytes = b"\x00") -> bytes:
    return data + fill * (-len(data) % 4)


class GltfBuilder:
    """Accumulates a glTF document and one binary buffer."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"asset": {"version": "2.0", "generator": "avatarkit tests"}}
        self.bin = bytearray()

    def add(self, key: str, item: dict[str, Any]) -> int:
        items = self.doc.setdefault(key, [])
        items.append(item)
        return len(items) - 1

    def view(self, data: bytes, *, stride: int | None = None) -> int:
        """Append ``data`` to the buffer (4-byte aligned) as a new buffer view."""
        self.bin += b"\x00" * (-len(self.bin) % 4)
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if stride is not None:
            view["byteStride"] = stride
        self.bin += data
        return self.add("bufferViews", view)

    def accessor(
        self,
        array: np.ndarray,
        *,
        normalized: bool = False,
        view: int | None = None,
        byte_offset: int = 0,
        type: str | None = None,
        minmax: bool = False,
    ) -> int:
        """An accessor of ``array`` (rows are elements); in a new view unless ``view`` is given."""
        array = np.asarray(array)
        rows = array.reshape(len(array), -1)
        if view is None:
            view = self.view(np.ascontiguousarray(rows).astype(array.dtype.newbyteorder("<")).tobytes())
        acc: dict[str, Any] = {
            "bufferView": view,
            "componentType": COMPONENT_TYPES[array.dtype],
            "count": len(array),
            "type": type or TYPES[rows.shape[1]],
        }
        if byte_offset:
            acc["byteOffset"] = byte_offset
        if normalized:
            acc["normalized"] = True
        if minmax:
            acc["min"] = rows.min(axis=0).tolist()
            acc["max"] = rows.max(axis=0).tolist()
        return self.add("accessors", acc)

    def sparse_accessor(
        self, count: int, indices: np.ndarray, values: np.ndarray, *, base: np.ndarray | None = None
    ) -> int:
        """A float accessor of ``count`` elements: zeros (or ``base``), with ``values`` at ``indices``."""
        values = np.asarray(values, np.float32)
        ncomp = values.reshape(len(values), -1).shape[1]
        acc: dict[str, Any] = {
            "componentType": 5126,
            "count": count,
            "type": TYPES[ncomp],
            "sparse": {
                "count": len(indices),
                "indices": {
                    "bufferView": self.view(np.asarray(indices).tobytes()),
                    "componentType": COMPONENT_TYPES[np.asarray(indices).dtype],
                },
                "values": {"bufferView": self.view(values.tobytes())},
            },
        }
        if base is not None:
            acc["bufferView"] = self.view(np.asarray(base, np.float32).tobytes())
        return self.add("accessors", acc)

    def image_png(self, rgba: np.ndarray, name: str = "") -> int:
        from PIL import Image

        out = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(out, format="PNG")
        view = self.view(out.getvalue())
        return self.add("images", {"bufferView": view, "mimeType": "image/png", "name": name})

    def document(self) -> dict[str, Any]:
        doc = json.loads(json.dumps(self.doc))
        if self.bin:
            doc["buffers"] = [{"byteLength": len(self.bin)}]
        return doc

    def glb(self, doc: dict[str, Any] | None = None) -> bytes:
        """The GLB container: header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
        doc = self.document() if doc is None else doc
        json_chunk = pad4(json.dumps(doc, separators=(",", ":")).encode(), b" ")
        out = struct.pack("<II", len(json_chunk), 0x4E4F534A) + json_chunk
        if self.bin:
            bin_chunk = pad4(bytes(self.bin))
            out += struct.pack("<II", len(bin_chunk), 0x004E4942) + bin_chunk
        return struct.pack("<III", 0x46546C67, 2, 12 + len(out)) + out

    def gltf(self, uri: str | None = None) -> bytes:
        """A .gltf JSON document; the buffer is a data: URI unless ``uri`` names a file for it."""
        doc = self.document()
        if self.bin:
            if uri is None:
                uri = "data:application/octet-stream;base64," + base64.b64encode(bytes(self.bin)).decode()
            doc["buffers"][0]["uri"] = uri
        return json.dumps(doc).encode()


def quad(builder: GltfBuilder, **primitive: Any) -> dict[str, Any]:
    """A unit quad in the XY plane (4 vertices, 2 triangles) as a primitive of a new mesh."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    prim: dict[str, Any] = {
        "attributes": {"POSITION": builder.accessor(positions, minmax=True)},
        "indices": builder.accessor(np.array([0, 1, 2, 0, 2, 3], np.uint16)),
    }
    prim.update(primitive)
    return prim
