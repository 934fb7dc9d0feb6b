"""Shared pieces of the rendering tests: a GL availability check and a tiny test avatar."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from gltf_builder import GltfBuilder


def require_gl() -> None:
    """Skip the test when no headless OpenGL 3.3 context can be made here."""
    from avatarkit.gl.egl import EglContext, EglError

    try:
        EglContext().close()
    except EglError as err:
        pytest.skip(f"no headless OpenGL: {err}")


def sphere(rows: int = 24, cols: int = 48, radius: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A UV sphere: positions, normals, triangle indices (counter-clockwise seen from outside)."""
    lat, lon = np.meshgrid(np.linspace(0, np.pi, rows + 1), np.linspace(0, 2 * np.pi, cols + 1), indexing="ij")
    unit = np.stack([np.sin(lat) * np.sin(lon), np.cos(lat), np.sin(lat) * np.cos(lon)], -1).reshape(-1, 3)
    idx = []
    w = cols + 1
    for i in range(rows):
        for j in range(cols):
            a, b = i * w + j, i * w + j + 1
            c, d = a + w, b + w
            idx += [a, c, b, b, c, d]
    return (unit * radius).astype(np.float32), unit.astype(np.float32), np.array(idx, np.uint32)


def tiny_avatar_glb(path: pathlib.Path) -> pathlib.Path:
    """A sphere 'head' at y = 1.6 m with two morph targets: jawOpen drops the lower half, browInnerUp
    lifts the top; plus a small 'eye' sphere on a node called EyeLeft."""
    pos, nrm, idx = sphere()
    jaw = np.zeros_like(pos)
    jaw[pos[:, 1] < -0.02] = (0.0, -0.04, 0.0)
    brow = np.zeros_like(pos)
    brow[pos[:, 1] > 0.06] = (0.0, 0.03, 0.0)
    b = GltfBuilder()
    skin = b.add(
        "materials",
        {
            "name": "Skin",
            "pbrMetallicRoughness": {
                "baseColorFactor": [0.8, 0.55, 0.45, 1],
                "metallicFactor": 0,
                "roughnessFactor": 0.6,
            },
        },
    )
    dark = b.add(
        "materials",
        {
            "name": "Eye",
            "pbrMetallicRoughness": {"baseColorFactor": [0.05, 0.05, 0.08, 1], "metallicFactor": 0},
        },
    )
    head = b.add("meshes", {
        "name": "Head",
        "primitives": [{
            "attributes": {"POSITION": b.accessor(pos, minmax=True), "NORMAL": b.accessor(nrm)},
            "indices": b.accessor(idx),
            "material": skin,
            "targets": [{"POSITION": b.accessor(jaw)}, {"POSITION": b.accessor(brow)}],
        }],
        "extras": {"targetNames": ["jawOpen", "browInnerUp"]},
    })  # fmt: skip
    epos, enrm, eidx = sphere(8, 16, 0.02)
    eye = b.add("meshes", {"name": "Eye", "primitives": [{
        "attributes": {"POSITION": b.accessor(epos, minmax=True), "NORMAL": b.accessor(enrm)},
        "indices": b.accessor(eidx), "material": dark}]})  # fmt: skip
    eye_node = b.add("nodes", {"name": "EyeLeft", "mesh": eye, "translation": [0.035, 0.02, 0.09]})
    head_node = b.add("nodes", {"name": "Head", "mesh": head, "translation": [0, 1.6, 0], "children": [eye_node]})
    b.doc["scenes"] = [{"nodes": [head_node]}]
    b.doc["scene"] = 0
    path.write_bytes(b.glb())
    return path
