"""The procedural sample avatars: bundle files, GLB structure, morph targets that do what they say.

Everything is checked with plain json/struct/numpy parsing of the written files, independent of the
project's glTF loader.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import pathlib
import struct
from typing import Any

import numpy as np
import pytest

from avatarkit import codec
from avatarkit.assets import samples

MAX_BYTES = 3_000_000
TARGETS = (*codec.ARKIT_NAMES, *codec.VISEME_NAMES)
_COMPONENTS = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}


class Glb:
    """A GLB parsed by hand: the JSON document and accessor reads (sparse accessors included)."""

    def __init__(self, data: bytes) -> None:
        magic, version, length = struct.unpack_from("<4sII", data, 0)
        assert (magic, version, length) == (b"glTF", 2, len(data))
        json_len, json_type = struct.unpack_from("<I4s", data, 12)
        assert json_type == b"JSON" and json_len % 4 == 0
        self.doc: dict[str, Any] = json.loads(data[20 : 20 + json_len])
        bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
        assert bin_type == b"BIN\x00" and bin_len % 4 == 0
        assert 28 + json_len + bin_len == len(data), "nothing may follow the BIN chunk"
        self.bin = data[28 + json_len :]
        assert self.doc["buffers"][0]["byteLength"] <= bin_len

    def view(self, index: int) -> bytes:
        v = self.doc["bufferViews"][index]
        start = v.get("byteOffset", 0)
        assert start + v["byteLength"] <= len(self.bin)
        return self.bin[start : start + v["byteLength"]]

    def accessor(self, index: int) -> np.ndarray:
        a = self.doc["accessors"][index]
        dtype, width, count = _COMPONENTS[a["componentType"]], _WIDTH[a["type"]], a["count"]
        if "bufferView" in a:
            out = np.frombuffer(self.view(a["bufferView"]), dtype, count * width).reshape(count, width).copy()
        else:
            out = np.zeros((count, width), dtype)
        if "sparse" in a:
            s = a["sparse"]
            idx_type = _COMPONENTS[s["indices"]["componentType"]]
            idx = np.frombuffer(self.view(s["indices"]["bufferView"]), idx_type)
            vals = np.frombuffer(self.view(s["values"]["bufferView"]), dtype).reshape(-1, width)
            assert len(idx) == len(vals) == s["count"] and idx.max() < count
            assert np.all(np.diff(idx.astype(np.int64)) > 0), "sparse indices must strictly increase"
            out[idx] = vals
        return out

    def node(self, name: str) -> dict[str, Any]:
        return next(n for n in self.doc["nodes"] if n["name"] == name)

    def mesh(self, name: str) -> dict[str, Any]:
        return next(m for m in self.doc["meshes"] if m["name"] == name)

    def primitive(self, mesh: str, k: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Positions, triangles and {target name: position delta} of a mesh's primitive."""
        m = self.mesh(mesh)
        prim = m["primitives"][k]
        pos = self.accessor(prim["attributes"]["POSITION"]).astype(np.float64)
        tris = self.accessor(prim["indices"]).reshape(-1, 3).astype(np.int64)
        names = m.get("extras", {}).get("targetNames", [])
        targets = prim.get("targets", [])
        deltas = {n: self.accessor(t["POSITION"]).astype(np.float64) for n, t in zip(names, targets, strict=True)}
        return pos, tris, deltas


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    root = tmp_path_factory.mktemp("samples")
    return {avatar_id: samples.build_bundle(avatar_id, root / avatar_id) for avatar_id in samples.SAMPLE_IDS}


@pytest.fixture(scope="module")
def glbs(bundles: dict[str, pathlib.Path]) -> dict[str, Glb]:
    return {k: Glb((p.parent / "avatar.glb").read_bytes()) for k, p in bundles.items()}


def _first_hits(origin: np.ndarray, direction: np.ndarray, tri: np.ndarray) -> tuple[float, np.ndarray]:
    """Distance to the nearest triangle along a ray, and that triangle's normal (Moller-Trumbore)."""
    v0, v1, v2 = tri[:, 0], tri[:, 1], tri[:, 2]
    e1, e2 = v1 - v0, v2 - v0
    h = np.cross(direction, e2)
    a = np.einsum("ij,ij->i", e1, h)
    ok = np.abs(a) > 1e-14
    f = np.where(ok, 1.0 / np.where(ok, a, 1.0), 0.0)
    s = origin - v0
    u = f * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = f * (q @ direction)
    t = f * np.einsum("ij,ij->i", e2, q)
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-7)
    if not hit.any():
        return np.inf, np.zeros(3)
    k = np.argmin(np.where(hit, t, np.inf))
    return float(t[k]), np.cross(e1[k], e2[k])


def test_sample_ids() -> None:
    assert samples.SAMPLE_IDS[0] == "default"
    assert len(samples.SAMPLE_IDS) >= 2
    with pytest.raises(KeyError):
        samples.character("nobody")


def test_manifest_matches_the_files(bundles: dict[str, pathlib.Path], glbs: dict[str, Glb]) -> None:
    for avatar_id, manifest_path in bundles.items():
        doc = json.loads(manifest_path.read_text())
        assert doc["format"] == "avatarkit-avatar" and doc["format_version"] == 1
        assert doc["id"] == avatar_id and doc["name"] and doc["description"]
        assert doc["model"] == "avatar.glb" and doc["idle"] == "idle.ak1"
        assert {f["path"] for f in doc["files"]} == {"avatar.glb", "idle.ak1"}
        for entry in doc["files"]:
            data = (manifest_path.parent / entry["path"]).read_bytes()
            assert entry["size"] == len(data) < MAX_BYTES
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        files = sorted(p.name for p in manifest_path.parent.iterdir())
        assert files == ["avatar.glb", "idle.ak1", "manifest.json"]
        cam = doc["camera"]
        assert len(cam["target"]) == 3 and cam["distance"] > 0 and 0 < cam["fov_y_deg"] < 90
        joints = doc["rig"]["joints"]
        assert set(joints) == {"head", "neck", "jaw", "eye_left", "eye_right"}
        names = {n["name"] for n in glbs[avatar_id].doc["nodes"]}
        assert set(joints.values()) <= names
        for channel, targets in doc["rig"]["morph_targets"].items():
            assert channel in codec.CANONICAL_NAMES and targets == [channel]


def test_node_hierarchy_and_drives(glbs: dict[str, Glb]) -> None:
    for glb in glbs.values():
        nodes = glb.doc["nodes"]
        by_index = {i: n["name"] for i, n in enumerate(nodes)}
        children = {n["name"]: {by_index[c] for c in n.get("children", [])} for n in nodes}
        assert [by_index[i] for i in glb.doc["scenes"][0]["nodes"]] == ["Root"]
        assert "Neck" in children["Root"] and "Head" in children["Neck"]
        assert {"Jaw", "EyeLeft", "EyeRight"} <= children["Head"]
        for n in nodes:
            assert "rotation" not in n and "scale" not in n and "matrix" not in n  # rest pose: translations
        assert glb.node("EyeLeft")["translation"][0] > 0 > glb.node("EyeRight")["translation"][0]
        drives = {d["channel"]: d for d in glb.node("Jaw")["extras"]["avatarkit"]["drive"]}
        assert drives["jawOpen"]["axis"] == [1.0, 0.0, 0.0] and drives["jawOpen"]["scale"] > 0
        gaze = {d["channel"] for d in glb.node("EyeLeft")["extras"]["avatarkit"]["drive"]}
        assert gaze == {"eyeLookUpLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft"}


def test_glb_accessors_are_consistent(glbs: dict[str, Glb]) -> None:
    for glb in glbs.values():
        for mesh in glb.doc["meshes"]:
            counts = {len(p.get("targets", [])) for p in mesh["primitives"]}
            assert len(counts) == 1, f"{mesh['name']}: primitives disagree on the target count"
            names = mesh.get("extras", {}).get("targetNames", [])
            assert len(names) == counts.pop() and len(set(names)) == len(names)
            for prim in mesh["primitives"]:
                n = glb.doc["accessors"][prim["attributes"]["POSITION"]]["count"]
                pos = glb.accessor(prim["attributes"]["POSITION"])
                acc = glb.doc["accessors"][prim["attributes"]["POSITION"]]
                np.testing.assert_allclose(pos.min(0), acc["min"], atol=1e-5)
                np.testing.assert_allclose(pos.max(0), acc["max"], atol=1e-5)
                normals = glb.accessor(prim["attributes"]["NORMAL"])
                np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-3)
                idx = glb.accessor(prim["indices"])
                assert idx.max() < n and len(idx) % 3 == 0
                for target in prim.get("targets", []):
                    assert set(target) == {"POSITION", "NORMAL"} or set(target) == {"POSITION"}
                    t = glb.doc["accessors"][target["POSITION"]]
                    assert t["count"] == n and "min" in t and "max" in t


def test_head_has_every_target_and_each_moves(glbs: dict[str, Glb]) -> None:
    for glb in glbs.values():
        names = glb.mesh("Head")["extras"]["targetNames"]
        assert set(TARGETS) <= set(names)
        _pos, _tris, deltas = glb.primitive("Head")
        for name in TARGETS:
            assert np.abs(deltas[name]).max() > 5e-4, f"{name} barely moves the head"
        # Sided shapes move their own side: the character's left is +X.
        for name in ("mouthSmileLeft", "eyeBlinkLeft", "browDownLeft", "noseSneerLeft"):
            moved = np.linalg.norm(deltas[name], axis=1) > 1e-3
            assert np.mean(_pos[moved, 0] > -0.003) > 0.95, name


def test_visemes_are_distinct(glbs: dict[str, Glb]) -> None:
    for glb in glbs.values():
        _pos, _tris, deltas = glb.primitive("Head")
        for a, b in itertools.combinations(codec.VISEME_NAMES, 2):
            diff = np.linalg.norm(deltas[a] - deltas[b], axis=1).max()
            assert diff > 1e-3, f"{a} and {b} are (nearly) the same shape: {diff * 1000:.2f} mm apart"


def _lip_centre_pair(pos: np.ndarray, deltas: dict[str, np.ndarray]) -> tuple[int, int]:
    """The upper and lower lip-edge vertices at the middle of the mouth.

    The closed mouth is a slit: the two lip edges are distinct vertices at the same rest position.
    """
    front = np.nonzero((np.abs(pos[:, 0]) < 2e-3) & (pos[:, 2] > 0.05))[0]
    keys = np.round(pos[front] * 1e6).astype(np.int64)
    order = np.lexsort(keys.T)
    same = np.all(keys[order][1:] == keys[order][:-1], axis=1)
    pairs = [(front[order][k], front[order][k + 1]) for k in np.nonzero(same)[0]]
    assert pairs, "no lip slit found"
    i, j = min(pairs, key=lambda ij: abs(pos[ij[0], 0]))
    # The lower lip is the one the jaw drags down.
    return (i, j) if deltas["jawOpen"][i, 1] > deltas["jawOpen"][j, 1] else (j, i)


def _posed(pos: np.ndarray, deltas: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return pos + sum((w * deltas[n] for n, w in weights.items()), np.zeros_like(pos))


def test_lips_close_on_pp_and_open_on_aa(glbs: dict[str, Glb]) -> None:
    for glb in glbs.values():
        pos, _tris, deltas = glb.primitive("Head")
        up, lo = _lip_centre_pair(pos, deltas)

        def gap(pos: np.ndarray = pos, deltas: dict[str, np.ndarray] = deltas, **weights: float) -> float:
            q = _posed(pos, deltas, weights)
            return float(q[up, 1] - q[lo, 1])  # noqa: B023 (used within this iteration only)

        assert abs(gap()) < 1e-4
        assert gap(viseme_PP=1.0) <= 0.0, "PP must press the lips together"
        assert gap(viseme_PP=1.0, jawOpen=0.1) <= 0.0, "PP keeps the lips shut over a little jaw motion"
        assert gap(viseme_aa=1.0) > 0.015
        assert gap(viseme_O=1.0) > 0.010 and gap(viseme_U=1.0) > 0.004
        assert gap(viseme_aa=1.0) > gap(viseme_O=1.0) > gap(viseme_U=1.0)
        assert abs(gap(jawOpen=1.0, mouthClose=1.0)) < 0.003, "mouthClose closes the lips over an open jaw"
        # O and U round the mouth: the lip edge gathers toward the middle, E spreads it.
        mouth = np.abs(pos[:, 0]) < 0.035
        near = mouth & (np.abs(pos[:, 1] - pos[up, 1]) < 0.004) & (pos[:, 2] > pos[up, 2] - 0.01)
        width = {v: np.ptp((pos + deltas[v])[near, 0]) for v in ("viseme_O", "viseme_U", "viseme_E")}
        assert width["viseme_U"] < width["viseme_O"] < np.ptp(pos[near, 0]) < width["viseme_E"]
        # FF: the lips part just enough to show the upper teeth, the lower lip tucked back under them.
        assert 0.0005 < gap(viseme_FF=1.0) < 0.005
        assert deltas["viseme_FF"][lo, 2] < -0.003 < deltas["viseme_FF"][up, 2]


def test_open_mouth_is_sealed(glbs: dict[str, Glb]) -> None:
    """Looking into a wide-open mouth, the first surface hit is the mouth's inside, facing the eye."""
    for glb in glbs.values():
        pos, tris, deltas = glb.primitive("Head")
        up, lo = _lip_centre_pair(pos, deltas)
        q = pos + deltas["viseme_aa"]
        centre = 0.5 * (q[up] + q[lo])
        for yaw in (0.0, 0.35, -0.35):
            direction = np.array([-np.sin(yaw), 0.0, -np.cos(yaw)])
            origin = centre - direction * 0.3
            for dy in (-0.004, 0.0, 0.004):
                t, normal = _first_hits(origin + np.array([0.0, dy, 0.0]), direction, q[tris])
                assert np.isfinite(t) and t > 0.28, "something blocks the mouth opening"
                assert normal @ direction < 0, "the mouth interior is back-facing (it would be culled)"


def _eye_covered(q: np.ndarray, tris: np.ndarray, eye: np.ndarray, eye_r: float) -> float:
    """Share of rays from the front toward the front of the eyeball that hit skin first."""
    near = np.linalg.norm(q[tris].mean(1) - eye, axis=1) < 0.04
    offsets = [(x, y) for x in (-0.006, 0.0, 0.006) for y in (-0.004, 0.0, 0.004)]
    hits = 0
    for x, y in offsets:
        origin = eye + np.array([x, y, 0.2])
        target = eye + np.array([x, y, np.sqrt(eye_r**2 - x * x - y * y)])
        direction = (target - origin) / np.linalg.norm(target - origin)
        t, _n = _first_hits(origin, direction, q[tris[near]])
        hits += bool(t < np.linalg.norm(target - origin) - 1e-4)
    return hits / len(offsets)


def test_blink_closes_the_eyelid_over_the_eye(glbs: dict[str, Glb]) -> None:
    for glb in glbs.values():
        pos, tris, deltas = glb.primitive("Head")
        for side, other in (("Left", "Right"), ("Right", "Left")):
            eye = np.array(glb.node("Eye" + side)["translation"])  # in the Head node's frame, like pos
            eye_r = float(np.linalg.norm(glb.primitive("Eye" + side)[0], axis=1).min())
            assert _eye_covered(pos, tris, eye, eye_r) == 0.0, "the open eye is hidden by skin"
            closed = _posed(pos, deltas, {"eyeBlink" + side: 1.0})
            assert _eye_covered(closed, tris, eye, eye_r) == 1.0, f"eyeBlink{side} leaves the eye visible"
            other_closed = _posed(pos, deltas, {"eyeBlink" + other: 1.0})
            assert _eye_covered(other_closed, tris, eye, eye_r) == 0.0, f"eyeBlink{other} closes the wrong eye"


def test_jaw_parts_follow_the_visemes(glbs: dict[str, Glb]) -> None:
    for glb in glbs.values():
        names = glb.mesh("JawParts")["extras"]["targetNames"]
        assert {"viseme_aa", "viseme_O", "tongueOut", "viseme_TH"} <= set(names)
        assert "jawOpen" not in names  # the Jaw node turns for jawOpen
        _teeth, _tris, deltas = glb.primitive("JawParts", 0)
        assert deltas["viseme_aa"][:, 1].mean() < -0.004  # lower teeth drop with the jaw
        tongue, _tris, tdeltas = glb.primitive("JawParts", 2)
        tip = np.argmax(tongue[:, 2])
        assert tdeltas["tongueOut"][tip, 2] > 0.015  # the tongue tip leaves the mouth
        assert tdeltas["viseme_TH"][tip, 2] > 0.005


def test_idle_clip_decodes_and_loops(bundles: dict[str, pathlib.Path]) -> None:
    for manifest_path in bundles.values():
        frames = codec.StreamDecoder().decode((manifest_path.parent / "idle.ak1").read_bytes())
        values = frames.values
        assert values.shape[0] >= 100 and values.shape[1] == 73
        assert list(frames.names) == list(codec.CANONICAL_NAMES)
        blink = frames.select(["eyeBlinkLeft"])[:, 0]
        assert blink.max() > 0.9 and blink[0] < 0.05
        steps = np.abs(np.diff(values, axis=0)).max(axis=0)
        wrap = np.abs(values[0] - values[-1])
        assert np.all(wrap <= steps + 1e-3), "the clip jumps where it loops"


def test_build_is_deterministic(bundles: dict[str, pathlib.Path]) -> None:
    again = samples.build_glb_bytes("sam")
    assert again == (bundles["sam"].parent / "avatar.glb").read_bytes()
    assert samples.idle_clip("default") == (bundles["default"].parent / "idle.ak1").read_bytes()
