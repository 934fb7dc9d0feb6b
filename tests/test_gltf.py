"""The glTF loader (avatarkit.assets.gltf): synthetic files built here, malformed ones, and the two
real avatars in ../shared/data."""

from __future__ import annotations

import json
import math
import struct
import time
import tracemalloc
from typing import Any

import numpy as np
import pytest
from conftest import shared_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatarkit.assets import gltf
from avatarkit.assets.gltf import AlphaMode, GltfModel, load_gltf
from avatarkit.errors import AvatarError, AvatarErrorCode

from gltf_builder import GltfBuilder, quad

INCOMPATIBLE = AvatarErrorCode.INCOMPATIBLE_AVATAR_ASSET


def fails(data: bytes | str, *fragments: str, **kwargs: Any) -> AvatarError:
    """Load ``data``; it must raise AvatarError(incompatibleAvatarAsset) whose message has ``fragments``."""
    with pytest.raises(AvatarError) as info:
        load_gltf(data, **kwargs)
    err = info.value
    assert err.code is INCOMPATIBLE, err
    for fragment in fragments:
        assert fragment in err.message, err.message
    return err


def two_target_quad() -> tuple[GltfBuilder, np.ndarray, np.ndarray]:
    """A quad with a dense target ("smile": moves vertex 2) and a sparse, bufferless one ("Blink")."""
    b = GltfBuilder()
    dense = np.zeros((4, 3), np.float32)
    dense[2] = [0.0, 0.25, 0.5]
    sparse_values = np.array([[0.0, -0.125, 0.0], [0.5, 0.0, 0.0]], np.float32)
    prim = quad(b)
    prim["targets"] = [
        {"POSITION": b.accessor(dense, minmax=True)},
        {"POSITION": b.sparse_accessor(4, np.array([1, 3], np.uint8), sparse_values)},
    ]
    b.add(
        "meshes",
        {
            "name": "Face",
            "primitives": [prim],
            "weights": [0.25, 0.0],
            "extras": {"targetNames": ["smile", "Blink"]},
        },
    )
    b.add("nodes", {"name": "face", "mesh": 0})
    b.add("scenes", {"nodes": [0]})
    return b, dense, sparse_values


def small_valid_glb() -> bytes:
    """A little of everything: targets (one sparse), a skin, a texture; the fuzz test's seed."""
    b, _, _ = two_target_quad()
    doc = b.doc
    prim = doc["meshes"][0]["primitives"][0]
    prim["attributes"]["JOINTS_0"] = b.accessor(np.array([[0, 1, 0, 0]] * 4, np.uint8))
    prim["attributes"]["WEIGHTS_0"] = b.accessor(np.array([[0.5, 0.5, 0, 0]] * 4, np.float32))
    prim["attributes"]["TEXCOORD_0"] = b.accessor(
        np.array([[0, 0], [255, 0], [255, 255], [0, 255]], np.uint8), normalized=True
    )
    image = b.image_png(np.full((2, 2, 4), 200, np.uint8))
    b.add("textures", {"source": image})
    prim["material"] = b.add("materials", {"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}})
    doc["nodes"][0].update(skin=0, children=[1])
    b.add("nodes", {"name": "bone", "translation": [0, 1, 0], "children": [2]})
    b.add("nodes", {"name": "tip", "rotation": [0, 0, 0.7071068, 0.7071068]})
    ibm = np.tile(np.eye(4, dtype=np.float32), (2, 1, 1))
    b.add("skins", {"joints": [1, 2], "inverseBindMatrices": b.accessor(ibm.reshape(2, 16), type="MAT4")})
    return b.glb()


# --------------------------------------------------------------------------------------------------
# Reading what was written


def test_quad_with_dense_and_sparse_targets() -> None:
    b, dense, sparse_values = two_target_quad()
    model = load_gltf(b.glb())
    assert isinstance(model, GltfModel)
    (mesh,) = model.meshes
    assert mesh.name == "Face"
    assert mesh.target_names == ["smile", "Blink"]
    np.testing.assert_array_equal(mesh.default_weights, [0.25, 0.0])
    (prim,) = mesh.primitives
    assert prim.positions.dtype == np.float32 and prim.positions.shape == (4, 3)
    assert prim.indices.dtype == np.uint32
    np.testing.assert_array_equal(prim.indices, [0, 1, 2, 0, 2, 3])
    smile, blink = prim.targets
    assert smile.name == "smile" and blink.name == "Blink"
    # Sparse output whatever the storage: only the moved vertices.
    np.testing.assert_array_equal(smile.indices, [2])
    np.testing.assert_array_equal(smile.positions, dense[[2]])
    np.testing.assert_array_equal(smile.dense_positions(4), dense)
    np.testing.assert_array_equal(blink.indices, [1, 3])
    np.testing.assert_array_equal(blink.positions, sparse_values)
    assert blink.indices.dtype == np.uint32 and blink.positions.dtype == np.float32
    assert smile.normals is None
    np.testing.assert_array_equal(smile.dense_normals(4), np.zeros((4, 3)))
    # No normals in the file: smooth ones are computed, +Z for a quad wound counter-clockwise in XY.
    assert prim.normals_generated
    assert prim.normals is not None
    np.testing.assert_allclose(prim.normals, np.tile([0, 0, 1], (4, 1)))
    assert model.scene_roots == [0]
    assert model.warnings == []


def test_sparse_over_a_base_view_and_morph_epsilon() -> None:
    b = GltfBuilder()
    base = np.array([[0, 0, 1e-7], [0, 0, 0], [0, 2, 0], [0, 0, 0]], np.float32)
    prim = quad(b)
    prim["targets"] = [{"POSITION": b.sparse_accessor(4, np.array([3], np.uint32), [[1, 1, 1]], base=base)}]
    b.add("meshes", {"primitives": [prim], "extras": {"targetNames": ["t"]}})
    glb = b.glb()
    (target,) = load_gltf(glb).meshes[0].primitives[0].targets
    np.testing.assert_array_equal(target.indices, [0, 2, 3])
    np.testing.assert_array_equal(target.positions, np.array([[0, 0, 1e-7], [0, 2, 0], [1, 1, 1]], np.float32))
    (target,) = load_gltf(glb, morph_epsilon=1e-6).meshes[0].primitives[0].targets
    np.testing.assert_array_equal(target.indices, [2, 3])


def test_interleaved_strided_attributes() -> None:
    b = GltfBuilder()
    n = 6
    positions = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    normals = np.tile(np.array([0, 1, 0], np.float32), (n, 1))
    uv = (np.arange(n * 2, dtype=np.uint16).reshape(n, 2) * 6000).astype(np.uint16)
    stride = 12 + 12 + 4 + 4  # position, normal, uv (u16 x 2), 4 bytes of unrelated padding
    record = np.zeros(n, np.dtype([("p", "<f4", 3), ("n", "<f4", 3), ("uv", "<u2", 2), ("pad", "<u4")]))
    record["p"], record["n"], record["uv"], record["pad"] = positions, normals, uv, 0xDEADBEEF
    assert record.itemsize == stride
    view = b.view(record.tobytes(), stride=stride)
    attributes = {
        "POSITION": b.accessor(positions, view=view),
        "NORMAL": b.accessor(normals, view=view, byte_offset=12),
        "TEXCOORD_0": b.accessor(uv, view=view, byte_offset=24, normalized=True),
    }
    b.add("meshes", {"primitives": [{"attributes": attributes, "mode": 0}, {"attributes": attributes}]})
    model = load_gltf(b.glb())
    (prim,) = model.meshes[0].primitives  # the points primitive (mode 0) is skipped, with a warning
    assert any("points" in w for w in model.warnings)
    np.testing.assert_array_equal(prim.positions, positions)
    np.testing.assert_array_equal(prim.normals, normals)
    assert not prim.normals_generated
    assert prim.texcoords is not None
    np.testing.assert_array_equal(prim.texcoords, uv.astype(np.float32) / np.float32(65535))
    np.testing.assert_array_equal(prim.indices, np.arange(n))  # non-indexed: 0..n-1


@pytest.mark.parametrize(
    ("dtype", "normalized", "expected"),
    [
        (np.uint8, True, lambda c: c / np.float32(255)),
        (np.uint16, True, lambda c: c / np.float32(65535)),
        (np.int8, True, lambda c: np.maximum(c / np.float32(127), -1)),
        (np.int16, True, lambda c: np.maximum(c / np.float32(32767), -1)),
        (np.uint16, False, lambda c: c),  # KHR_mesh_quantization: plain integers become floats
    ],
)
def test_normalized_integer_texcoords(dtype: Any, normalized: bool, expected: Any) -> None:
    info = np.iinfo(dtype)
    raw = np.array([[info.min, info.max], [0, 1], [info.max // 2, info.min + 1], [3, 7]], dtype)
    b = GltfBuilder()
    prim = quad(b)
    prim["attributes"]["TEXCOORD_0"] = b.accessor(raw, normalized=normalized)
    b.add("meshes", {"primitives": [prim]})
    texcoords = load_gltf(b.glb()).meshes[0].primitives[0].texcoords
    assert texcoords is not None and texcoords.dtype == np.float32
    np.testing.assert_array_equal(texcoords, expected(raw.astype(np.float32)).astype(np.float32))


def test_quantized_positions_and_normals() -> None:
    b = GltfBuilder()
    positions = np.array([[0, 0, 0], [32767, 0, 0], [32767, 32767, 0], [0, -32768, 0]], np.int16)
    normals = np.array([[0, 0, 127], [0, 0, 127], [0, -128, 0], [0, 0, -127]], np.int8)
    b.add(
        "meshes",
        {
            "primitives": [
                {
                    "attributes": {
                        "POSITION": b.accessor(positions, normalized=True),
                        "NORMAL": b.view(np.concatenate([normals, np.zeros((4, 1), np.int8)], 1).tobytes(), stride=4),
                    }
                }
            ]
        },
    )
    # The normal view is byte VEC3 padded to 4 bytes per element, as the extension requires.
    b.doc["meshes"][0]["primitives"][0]["attributes"]["NORMAL"] = b.add(
        "accessors", {"bufferView": 1, "componentType": 5120, "normalized": True, "count": 4, "type": "VEC3"}
    )
    b.doc["meshes"][0]["primitives"][0]["indices"] = b.accessor(np.array([0, 1, 2], np.uint8))
    b.doc["extensionsUsed"] = b.doc["extensionsRequired"] = ["KHR_mesh_quantization"]
    prim = load_gltf(b.glb()).meshes[0].primitives[0]
    np.testing.assert_array_equal(prim.positions[1], [1, 0, 0])
    np.testing.assert_array_equal(prim.positions[3], [0, -1, 0])  # -32768 clamps to -1
    assert prim.normals is not None
    np.testing.assert_array_equal(prim.normals[:, 2], [1, 1, 0, -1])
    np.testing.assert_array_equal(prim.normals[2], [0, -1, 0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_index_component_types(dtype: Any) -> None:
    b = GltfBuilder()
    prim = quad(b, indices=b.accessor(np.array([3, 2, 0, 0, 2, 1], dtype)))
    b.add("meshes", {"primitives": [prim]})
    indices = load_gltf(b.glb()).meshes[0].primitives[0].indices
    assert indices.dtype == np.uint32
    np.testing.assert_array_equal(indices, [3, 2, 0, 0, 2, 1])


def test_strips_and_fans_become_triangle_lists() -> None:
    b = GltfBuilder()
    strip = quad(b, mode=5, indices=b.accessor(np.array([0, 1, 3, 2], np.uint16)))
    fan = quad(b, mode=6, indices=b.accessor(np.array([0, 1, 2, 3], np.uint16)))
    b.add("meshes", {"primitives": [strip, fan]})
    s, f = load_gltf(b.glb()).meshes[0].primitives
    np.testing.assert_array_equal(s.indices.reshape(-1, 3), [[0, 1, 3], [1, 2, 3]])  # spec: v1, v3, v2
    np.testing.assert_array_equal(f.indices.reshape(-1, 3), [[1, 2, 0], [2, 3, 0]])
    # Both keep the counter-clockwise winding, so the computed normals face +Z.
    for prim in (s, f):
        assert prim.normals is not None
        np.testing.assert_allclose(prim.normals, np.tile([0, 0, 1], (4, 1)), atol=1e-6)


def test_target_names_shared_by_several_meshes_and_primitives() -> None:
    b = GltfBuilder()
    delta = np.zeros((4, 3), np.float32)
    delta[0, 1] = 1.0

    def targeted() -> dict[str, Any]:
        return quad(b, targets=[{"POSITION": b.accessor(delta)}, {"POSITION": b.accessor(delta * 2)}])

    b.add(
        "meshes",
        {
            "name": "head",
            "primitives": [targeted(), targeted()],
            "extras": {"targetNames": ["jawOpen", "eyeBlinkLeft"]},
        },
    )
    b.add(
        "meshes",
        {"name": "teeth", "primitives": [targeted()], "extras": {"targetNames": ["eyeBlinkLeft", "JAWOPEN"]}},
    )
    b.add("meshes", {"name": "hair", "primitives": [quad(b)]})
    model = load_gltf(b.glb())
    index = model.morph_target_index()
    assert index["jawopen"] == [(0, 0), (1, 1)]
    assert index["eyeblinkleft"] == [(0, 1), (1, 0)]
    assert "viseme_aa" not in index
    head = model.meshes[0]
    assert len(head.primitives) == 2
    assert all(len(p.targets) == 2 for p in head.primitives)
    np.testing.assert_array_equal(head.primitives[1].targets[1].positions, [[0, 2, 0]])
    assert model.meshes[2].target_names == []


def test_vroid_mouth_shapes_alias_visemes() -> None:
    b = GltfBuilder()
    delta = np.ones((4, 3), np.float32)
    names = ["Fcl_MTH_A", "Fcl_MTH_I", "Fcl_MTH_U", "Fcl_MTH_E", "Fcl_MTH_O", "Fcl_EYE_Close"]
    prim = quad(b, targets=[{"POSITION": b.accessor(delta)} for _ in names])
    b.add("meshes", {"primitives": [prim], "extras": {"targetNames": names}})
    index = load_gltf(b.glb()).morph_target_index()
    assert index["viseme_aa"] == [(0, 0)]
    assert index["viseme_i"] == [(0, 1)]
    assert index["viseme_u"] == [(0, 2)]
    assert index["viseme_e"] == [(0, 3)]
    assert index["viseme_o"] == [(0, 4)]
    assert index["fcl_mth_a"] == [(0, 0)]
    assert "viseme_aa" not in load_gltf(b.glb()).morph_target_index(aliases=False)


def test_unnamed_targets_fall_back_to_indices() -> None:
    b = GltfBuilder()
    prim = quad(b, targets=[{"POSITION": b.accessor(np.ones((4, 3), np.float32))}])
    b.add("meshes", {"primitives": [prim], "extras": {"targetNames": ["a", "b"]}})  # wrong length
    model = load_gltf(b.glb())
    assert model.meshes[0].target_names == ["target_0"]
    assert any("targetNames" in w for w in model.warnings)


def test_skin_with_a_three_joint_hierarchy() -> None:
    b = GltfBuilder()
    prim = quad(b)
    prim["attributes"]["JOINTS_0"] = b.accessor(np.array([[0, 1, 2, 0]] * 4, np.uint16))
    weights = np.array([[0.5, 0.25, 0.25, 0]] * 4, np.float32)
    prim["attributes"]["WEIGHTS_0"] = b.accessor(weights)
    b.add("meshes", {"primitives": [prim]})
    b.add("nodes", {"name": "Armature", "children": [1, 4]})
    b.add("nodes", {"name": "Hips", "translation": [0, 1, 0], "children": [2]})
    b.add(
        "nodes",
        {"name": "Neck", "rotation": [0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)], "children": [3]},
    )
    b.add("nodes", {"name": "Head", "scale": [2, 2, 2], "translation": [0, 0.5, 0]})
    b.add("nodes", {"name": "body", "mesh": 0, "skin": 0})
    ibm = np.stack([np.eye(4, dtype=np.float32) + k for k in range(3)])  # distinct, non-symmetric
    ibm[:, 3, :3] = 0
    ibm[:, :3, 3] = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    b.add(
        "skins",
        {
            "name": "rig",
            "joints": [1, 2, 3],
            "skeleton": 1,
            "inverseBindMatrices": b.accessor(ibm.transpose(0, 2, 1).reshape(3, 16), type="MAT4"),
        },
    )
    b.add("scenes", {"nodes": [0]})
    model = load_gltf(b.glb())
    (skin,) = model.skins
    assert skin.name == "rig" and skin.joints == [1, 2, 3] and skin.skeleton == 1
    assert skin.inverse_bind_matrices.dtype == np.float32
    np.testing.assert_array_equal(skin.inverse_bind_matrices, ibm)  # column-major in the file
    prim_out = model.meshes[0].primitives[0]
    assert prim_out.joints is not None and prim_out.joints.dtype == np.uint16
    np.testing.assert_array_equal(prim_out.joints, [[0, 1, 2, 0]] * 4)
    np.testing.assert_array_equal(prim_out.weights, weights)
    assert [n.parent for n in model.nodes] == [None, 0, 1, 2, 0]
    assert model.nodes[1].children == [2]
    assert model.find_node("head") == 3 and model.find_node("nope") is None
    assert model.mesh_nodes(0) == [4]
    world = model.node_world_matrices()
    assert world.shape == (5, 4, 4) and world.dtype == np.float32
    # Head: translate (0,1,0), then rotate 90 degrees about Z, then its own offset (0,0.5,0) -> (-0.5,1,0).
    np.testing.assert_allclose(world[3][:3, 3], [-0.5, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(world[3][:3, :3], 2 * np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]), atol=1e-6)
    assert model.nodes[2].rotation is not None and model.nodes[2].translation == (0.0, 0.0, 0.0)


def test_node_matrix_is_read_column_major() -> None:
    b = GltfBuilder()
    m = np.eye(4)
    m[:3, 3] = [1, 2, 3]
    b.add("nodes", {"matrix": m.T.reshape(-1).tolist(), "extras": {"avatarkit": {"drive": [1]}}})
    (node,) = load_gltf(b.glb()).nodes
    np.testing.assert_array_equal(node.matrix, m)
    assert node.translation is None
    assert node.extras == {"avatarkit": {"drive": [1]}}


def test_joint_out_of_the_skin_is_refused_when_weighted() -> None:
    b = GltfBuilder()
    prim = quad(b)
    prim["attributes"]["JOINTS_0"] = b.accessor(np.array([[0, 5, 0, 0]] * 4, np.uint8))
    weights = b.accessor(np.array([[1, 0, 0, 0]] * 4, np.float32))
    prim["attributes"]["WEIGHTS_0"] = weights
    b.add("meshes", {"primitives": [prim]})
    b.add("nodes", {"children": [1]})
    b.add("nodes", {"mesh": 0, "skin": 0})
    b.add("skins", {"joints": [0]})
    # Joint 5 carries no weight: harmless, pointed at joint 0.
    prim_out = load_gltf(b.glb()).meshes[0].primitives[0]
    assert prim_out.joints is not None
    np.testing.assert_array_equal(prim_out.joints[:, 1], 0)
    b.doc["meshes"][0]["primitives"][0]["attributes"]["WEIGHTS_0"] = b.accessor(
        np.array([[0.5, 0.5, 0, 0]] * 4, np.float32)
    )
    fails(b.glb(), "joint 5", "1 joints")


def test_materials_and_a_png_texture() -> None:
    b = GltfBuilder()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (3, 5, 4), dtype=np.uint8)
    image = b.image_png(pixels, name="skin")
    sampler = b.add("samplers", {"magFilter": 9729, "wrapS": 33071})
    b.add("textures", {"source": image, "sampler": sampler})
    b.add(
        "materials",
        {
            "name": "Skin",
            "pbrMetallicRoughness": {
                "baseColorFactor": [1, 0.5, 0.25, 1],
                "metallicFactor": 0,
                "roughnessFactor": 0.7,
                "baseColorTexture": {"index": 0, "texCoord": 1},
            },
            "normalTexture": {"index": 0, "scale": 0.5},
            "emissiveTexture": {
                "index": 0,
                "extensions": {"KHR_texture_transform": {"offset": [0.5, 0], "scale": [2, 2], "rotation": 0.0}},
            },
            "emissiveFactor": [1, 1, 0],
            "extensions": {"KHR_materials_emissive_strength": {"emissiveStrength": 3}},
            "alphaMode": "MASK",
            "alphaCutoff": 0.3,
            "doubleSided": True,
        },
    )
    b.add("materials", {"alphaMode": "BLEND"})
    b.add("materials", {})
    b.add("meshes", {"primitives": [quad(b, material=0)]})
    b.doc["extensionsUsed"] = ["KHR_texture_transform", "KHR_materials_emissive_strength", "KHR_unknown"]
    model = load_gltf(b.glb())
    skin, blend, default = model.materials
    assert skin.name == "Skin"
    assert skin.base_color_factor == (1.0, 0.5, 0.25, 1.0)
    assert skin.metallic_factor == 0.0 and skin.roughness_factor == pytest.approx(0.7)
    assert skin.base_color_texture is not None
    assert skin.base_color_texture.image == image and skin.base_color_texture.texcoord == 1
    assert skin.base_color_texture.mag_filter == 9729 and skin.base_color_texture.wrap_s == 33071
    assert skin.base_color_texture.wrap_t == 10497
    assert skin.normal_texture is not None and skin.normal_texture.scale == 0.5
    assert skin.emissive_factor == (1.0, 1.0, 0.0) and skin.emissive_strength == 3.0
    assert skin.emissive_texture is not None and skin.emissive_texture.transform is not None
    np.testing.assert_allclose(skin.emissive_texture.transform.matrix(), [[2, 0, 0.5], [0, 2, 0], [0, 0, 1]])
    assert skin.alpha_mode is AlphaMode.MASK and skin.alpha_cutoff == pytest.approx(0.3) and skin.double_sided
    assert blend.alpha_mode is AlphaMode.BLEND
    assert default.alpha_mode is AlphaMode.OPAQUE and default.base_color_texture is None
    assert default.metallic_factor == 1.0 and not default.double_sided
    assert model.meshes[0].primitives[0].material == 0
    (img,) = model.images
    assert img.name == "skin" and img.mime_type == "image/png"
    rgba = img.rgba()
    assert rgba.dtype == np.uint8 and rgba.shape == (3, 5, 4)
    np.testing.assert_array_equal(rgba, pixels)
    assert img.rgba() is rgba  # decoded once


def test_images_that_do_not_decode_raise_avatar_error() -> None:
    b = GltfBuilder()
    b.add("images", {"bufferView": b.view(b"\x89PNG\r\n\x1a\n not really"), "mimeType": "image/png"})
    model = load_gltf(b.glb())  # images decode lazily ...
    with pytest.raises(AvatarError, match="does not decode") as info:
        model.images[0].rgba()
    assert info.value.code is INCOMPATIBLE
    fails(b.glb(), "does not decode", decode_images=True)  # ... or eagerly on request
    big = GltfBuilder()
    big.image_png(np.zeros((64, 64, 4), np.uint8))
    with pytest.raises(AvatarError, match="max_pixels"):
        load_gltf(big.glb()).images[0].rgba(max_pixels=1000)


def test_gltf_json_with_data_uri_and_external_files(tmp_path: Any) -> None:
    b, dense, _ = two_target_quad()
    model = load_gltf(b.gltf())
    np.testing.assert_array_equal(model.meshes[0].primitives[0].targets[0].dense_positions(4), dense)
    (tmp_path / "avatar.bin").write_bytes(bytes(b.bin))
    (tmp_path / "avatar.gltf").write_bytes(b.gltf(uri="avatar.bin"))
    model = load_gltf(tmp_path / "avatar.gltf")
    np.testing.assert_array_equal(model.meshes[0].primitives[0].targets[0].dense_positions(4), dense)
    # A URI with escapes and a subfolder is fine; one that leaves the folder is not.
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "a.bin").write_bytes(bytes(b.bin))
    (tmp_path / "ok.gltf").write_bytes(b.gltf(uri="sub%20dir/a.bin"))
    load_gltf(str(tmp_path / "ok.gltf"))
    inner = tmp_path / "inner"
    inner.mkdir()
    for uri, message in [
        ("../avatar.bin", "outside the folder"),
        ("sub/../../avatar.bin", "outside the folder"),
        ("/etc/passwd", "not a plain relative path"),
        ("http://example.com/a.bin", "'http' is not allowed"),
        ("https://example.com/a.bin", "'https' is not allowed"),
        ("file:///etc/passwd", "'file' is not allowed"),
    ]:
        (inner / "x.gltf").write_bytes(b.gltf(uri=uri))
        fails(str(inner / "x.gltf"), message)
    # From bytes there is no folder to resolve files in.
    fails(b.gltf(uri="avatar.bin"), "load the asset from a path")
    (inner / "y.gltf").write_bytes(b.gltf(uri="missing.bin"))
    with pytest.raises(AvatarError) as info:
        load_gltf(inner / "y.gltf")
    assert info.value.code is AvatarErrorCode.AVATAR_ASSETS_MISSING
    with pytest.raises(AvatarError) as info:
        load_gltf(tmp_path / "nothing.glb")
    assert info.value.code is AvatarErrorCode.AVATAR_ASSETS_MISSING
    fails(str(tmp_path / "avatar.gltf"), "max_bytes", max_bytes=100)


def test_errors_are_typed_and_printable() -> None:
    err = fails(b"glTF" + struct.pack("<II", 1, 100) + b"\x00" * 88, "version 1")
    assert str(err).startswith("incompatibleAvatarAsset: ")
    assert err.code.value == "incompatibleAvatarAsset"
    assert AvatarErrorCode.AVATAR_ID_UNRECOGNIZED.value == "avatarIDUnrecognized"
    assert AvatarErrorCode.LOAD_CANCELLED.value == "loadCancelled"
    assert "AvatarError(" in repr(err)


# --------------------------------------------------------------------------------------------------
# Malformed files: each gives AvatarError(incompatibleAvatarAsset) with a message naming the problem


def test_truncated_glb_at_every_cut() -> None:
    glb = small_valid_glb()
    load_gltf(glb)
    for cut in range(len(glb)):
        with pytest.raises(AvatarError) as info:
            load_gltf(glb[:cut])
        assert info.value.code is INCOMPATIBLE


def test_truncated_glb_with_a_consistent_header() -> None:
    # Cut the file and fix the header's length: now the chunk lengths are what lies.
    glb = small_valid_glb()
    for cut in range(20, len(glb), 7):
        data = bytearray(glb[:cut])
        data[8:12] = struct.pack("<I", cut)
        fails(bytes(data))


def test_container_header_errors() -> None:
    glb = small_valid_glb()
    fails(b"glTF", "truncated")
    fails(b"glTG" + glb[4:], "the glTF JSON")  # not GLB magic: read as JSON, which it is not
    fails(glb[:4] + struct.pack("<I", 1) + glb[8:], "version 1")
    fails(glb[:8] + struct.pack("<I", len(glb) + 4) + glb[12:], "truncated")
    fails(glb + b"\x00\x00\x00\x00", "trailing bytes")
    json_len = struct.unpack_from("<I", glb, 12)[0]
    fails(glb[:12] + struct.pack("<I", 1 << 31) + glb[16:], "chunk 0", "remain")
    fails(glb[:16] + struct.pack("<I", 0x004E4942) + glb[20:], "first GLB chunk must be JSON")
    bin_header = 20 + json_len
    fails(glb[:bin_header] + struct.pack("<I", 1 << 30) + glb[bin_header + 4 :], "chunk 1", "remain")
    fails(b'{"asset": {"version": "1.0"}}', "not glTF 2")
    fails(b'{"asset": {"version": "2.0", "minVersion": "2.1"}}', "minVersion")
    fails(b"[1, 2]", "must be a JSON object")
    fails(b'{"asset": {"version": "2.0"}, "x": NaN}', "NaN")
    fails(b"\xff\xfe{}", "UTF-8")
    fails(b"[" * 100_000 + b"]" * 100_000, "nested too deeply")
    fails(b'{"asset": {"version": "2.0"}, "accessors": {}}', "accessors must be a JSON array")


def glb_with(mutate: Any) -> bytes:
    """small_valid_glb's document after ``mutate(doc)``, with the same binary chunk."""
    glb = small_valid_glb()
    json_len = struct.unpack_from("<I", glb, 12)[0]
    doc = json.loads(glb[20 : 20 + json_len])
    mutate(doc)
    b = GltfBuilder()
    b.bin = bytearray(glb[28 + json_len :])
    return b.glb(doc)


def test_json_field_errors_name_the_field() -> None:
    def setter(path: str, value: Any) -> Any:
        def mutate(doc: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            node: Any = doc
            for p in parents:
                node = node[int(p)] if p.isdigit() else node[p]
            node[int(last) if last.isdigit() else last] = value

        return mutate

    cases = [
        ("accessors.0.count", "four", "accessors[0].count must be an integer"),
        ("accessors.0.count", True, "accessors[0].count must be an integer"),
        ("accessors.0.count", 0, "accessors[0].count = 0 must be"),
        ("accessors.0.componentType", 5124, "componentType 5124"),
        ("accessors.0.type", "VEC5", "'VEC5'"),
        ("accessors.0.bufferView", 99, "bufferViews[99] does not exist"),
        ("accessors.0.byteOffset", 2, "not a multiple of its component size"),
        ("accessors.0.byteOffset", 1 << 20, "needs"),
        ("bufferViews.0.byteOffset", 1 << 20, "runs past the end of buffer 0"),
        ("bufferViews.0.byteLength", 4, "needs"),
        ("bufferViews.0.byteStride", 6, "multiple of 4"),
        ("bufferViews.0.byteStride", 4, "smaller than one VEC3"),
        ("bufferViews.0.byteStride", 256, "in [4, 252]"),
        ("bufferViews.0.buffer", 3, "there are only 1 buffers"),
        ("buffers.0.byteLength", 1 << 24, "only"),
        ("meshes.0.primitives.0.indices", 1000, "only"),
        ("meshes.0.primitives.0.attributes.POSITION", -1, "must be >= 0"),
        ("meshes.0.primitives.0.material", 7, "materials"),
        ("meshes.0.primitives.0.mode", 9, "mode = 9"),
        ("meshes.0.weights", [1], "array of 2 numbers"),
        ("materials.0.alphaMode", "CUTOUT", "OPAQUE, MASK or BLEND"),
        ("materials.0.pbrMetallicRoughness.baseColorFactor", [1, 1, 1], "array of 4 numbers"),
        ("materials.0.pbrMetallicRoughness.baseColorTexture.index", 5, "textures"),
        ("textures.0.source", 9, "images"),
        ("images.0.mimeType", 5, "must be a string"),
        ("nodes.0.children", [9], "not a node index"),
        ("nodes.0.mesh", 4, "meshes"),
        ("nodes.0.skin", 4, "skins"),
        ("nodes.1.rotation", [0, 0, 0, 0], "unit quaternion"),
        ("nodes.1.matrix", [1] * 16, "both a matrix and"),
        ("skins.0.joints", [], "no joints"),
        ("skins.0.joints", [1, 2, 300], "not a node index"),
        ("skins.0.inverseBindMatrices", 0, "is VEC3, expected MAT4"),
        ("scenes.0.nodes", [1], "not a root node"),
        ("scene", 3, "scenes"),
        ("asset", "2.0", "asset must be a JSON object"),
    ]
    for path, value, message in cases:
        fails(glb_with(setter(path, value)), message)


def test_accessor_past_the_buffer_end() -> None:
    def mutate(doc: dict[str, Any]) -> None:
        doc["accessors"][0]["count"] = 1000

    fails(glb_with(mutate), "accessors[0] needs", "bufferViews[")


def test_index_out_of_range() -> None:
    b = GltfBuilder()
    b.add("meshes", {"primitives": [quad(b, indices=b.accessor(np.array([0, 1, 4], np.uint8)))]})
    fails(b.glb(), "indices reach vertex 4", "4 vertices")
    b = GltfBuilder()
    b.add("meshes", {"primitives": [quad(b, indices=b.accessor(np.array([0, 1, 2, 3], np.uint32)))]})
    fails(b.glb(), "not a multiple of 3")


def test_attribute_count_mismatch_and_bad_types() -> None:
    b = GltfBuilder()
    prim = quad(b)
    prim["attributes"]["NORMAL"] = b.accessor(np.zeros((3, 3), np.float32))
    b.add("meshes", {"primitives": [prim]})
    fails(b.glb(), "NORMAL has 3 elements but POSITION has 4")
    b = GltfBuilder()
    prim = quad(b)
    prim["attributes"]["JOINTS_0"] = b.accessor(np.zeros((4, 4), np.float32))
    prim["attributes"]["WEIGHTS_0"] = b.accessor(np.zeros((4, 4), np.float32))
    b.add("meshes", {"primitives": [prim]})
    fails(b.glb(), "JOINTS_0", "expected UNSIGNED_BYTE, UNSIGNED_SHORT")
    b = GltfBuilder()
    prim = quad(b, indices=b.accessor(np.array([0, 1, 2], np.uint32), normalized=True))
    b.add("meshes", {"primitives": [prim]})
    fails(b.glb(), "normalized but its componentType is UNSIGNED_INT")
    b = GltfBuilder()
    b.add("meshes", {"primitives": [quad(b, targets=[{"POSITION": b.accessor(np.ones((3, 3), np.float32))}])]})
    fails(b.glb(), "targets[0].POSITION has 3 elements")
    b = GltfBuilder()
    delta = b.accessor(np.ones((4, 3), np.float32))
    b.add("meshes", {"primitives": [quad(b, targets=[{"POSITION": delta}]), quad(b)]})
    fails(b.glb(), "1 and 0 morph targets")


def test_non_finite_floats_are_refused() -> None:
    b = GltfBuilder()
    positions = np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]], np.float32)
    b.add("meshes", {"primitives": [{"attributes": {"POSITION": b.accessor(positions)}}]})
    fails(b.glb(), "NaN or infinite")


def test_sparse_accessor_errors() -> None:
    def sparse(indices: list[int], count: int = 4) -> bytes:
        b = GltfBuilder()
        values = np.ones((len(indices), 3), np.float32)
        acc = b.sparse_accessor(count, np.array(indices, np.uint16), values)
        b.add("meshes", {"primitives": [quad(b, targets=[{"POSITION": acc}])]})
        return b.glb()

    load_gltf(sparse([0, 3]))
    fails(sparse([2, 1]), "not strictly increasing")
    fails(sparse([1, 1]), "not strictly increasing")
    fails(sparse([0, 4]), "indices reach 4")
    fails(sparse([0, 1, 2, 3, 3], count=4), "sparse.count = 5 must be in [1, 4]")


def test_cyclic_nodes_and_two_parents() -> None:
    b = GltfBuilder()
    b.add("nodes", {"children": [1]})
    b.add("nodes", {"children": [2]})
    b.add("nodes", {"children": [0]})
    fails(b.glb(), "cycle")
    b = GltfBuilder()
    b.add("nodes", {"children": [0]})
    fails(b.glb(), "lists itself as a child")
    b = GltfBuilder()
    b.add("nodes", {"children": [2]})
    b.add("nodes", {"children": [2]})
    b.add("nodes", {})
    fails(b.glb(), "nodes[2] has two parents")
    b = GltfBuilder()
    b.add("nodes", {"children": [1, 1]})
    b.add("nodes", {})
    fails(b.glb(), "nodes[1] has two parents")
    # A long chain is fine (no recursion in the walk) and world matrices compose along it.
    b = GltfBuilder()
    for i in range(5000):
        b.add("nodes", {"children": [i + 1], "translation": [1, 0, 0]})
    b.add("nodes", {})
    model = load_gltf(b.glb())
    assert model.node_world_matrices()[-1][0, 3] == 5000
    assert model.scene_roots == [0]


def test_huge_counts_fail_fast_without_allocating() -> None:
    def with_count(count: int, *, sparse: bool = False, semantic: str = "target") -> bytes:
        """A quad whose morph target (or whose POSITION) accessor claims ``count`` elements."""
        b = GltfBuilder()
        if sparse:
            acc = b.sparse_accessor(4, np.array([0], np.uint8), np.ones((1, 3), np.float32))
            b.doc["accessors"][acc]["sparse"]["count"] = count
        else:
            acc = b.accessor(np.zeros((4, 3), np.float32))
        b.doc["accessors"][acc]["count"] = count
        if semantic == "target":
            b.add("meshes", {"primitives": [quad(b, targets=[{"POSITION": acc}])]})
        else:
            b.add("meshes", {"primitives": [{"attributes": {"POSITION": acc}}]})
        return b.glb()

    cases = [
        (with_count(2**40), "must be in [1, 10000000]"),
        (with_count(2**40, sparse=True), "must be in [1, 10000000]"),
        (with_count(2**40, semantic="POSITION"), "more than max_vertices"),
        (with_count(10**7), "needs 120000000 bytes"),
        (with_count(10**7, sparse=True), "sparse.indices needs"),
        (with_count(10**7, sparse=True, semantic="POSITION"), "sparse.indices needs"),
    ]
    tracemalloc.start()
    try:
        for glb, message in cases:
            fails(glb, message)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes"
    # A bufferless accessor of 10**7 zeros (a valid, if silly, file) stays within the caps on counts
    # but not within the decode budget, which scales with the input's size.
    b = GltfBuilder()
    zeros = b.add("accessors", {"componentType": 5126, "count": 10**7, "type": "VEC3"})
    b.add("meshes", {"primitives": [{"attributes": {"POSITION": zeros}}]})
    fails(b.glb(), "max_decoded_bytes")
    fails(with_count(100, semantic="POSITION"), "max_vertices", max_vertices=10)
    fails(with_count(100), "must be in [1, 50]", max_elements=50)


def test_required_extensions_are_named() -> None:
    def requiring(*names: str) -> bytes:
        b = GltfBuilder()
        b.doc["extensionsUsed"] = b.doc["extensionsRequired"] = list(names)
        return b.glb()

    err = fails(requiring("KHR_draco_mesh_compression", "KHR_texture_basisu"), "KHR_draco_mesh_compression")
    assert "KHR_texture_basisu" in err.message
    fails(requiring("KHR_mesh_quantization", "EXT_unheard_of"), "EXT_unheard_of")
    load_gltf(requiring(*gltf.SUPPORTED_EXTENSIONS))


def test_primitives_without_positions_are_skipped() -> None:
    b = GltfBuilder()
    b.add("meshes", {"primitives": [{"attributes": {}}, quad(b)]})
    model = load_gltf(b.glb())
    assert len(model.meshes[0].primitives) == 1
    assert any("no POSITION" in w for w in model.warnings)


# --------------------------------------------------------------------------------------------------
# EXT_meshopt_compression
#
# These streams were made once with meshoptimizer's own encoder (the `meshopt` package on PyPI,
# attribute codec version 0, index codecs version 1) from the arrays that the functions below
# rebuild; the decoder here must give those arrays back (filters: to within their quantization).
# They cover every group encoding, two attribute blocks, both index codecs with and without
# explicit indices, and the three filters.

MESHOPT_STREAMS = {
    "attr8": bytes.fromhex(
        "a02a066666666666666666666666666666666666666600000000001f0056565656625656565662565656566256565656"
        "625656565662565656566256ffff00005656566256565656152012042108409000018000001f0002060a0e12161a1e22"
        "262a2e32363a3e42464a4e52565a5e62666a6e72767affff00007e82868a8e92969a1480020080808000002a03434343"
        "434343434343434343434343434343430000000015199999999999999999990000000000000000000000000000000000"
        "0000000000000000000000e80300000100"
    ),
    "attr_blocks": bytes.fromhex(
        "a0555555552aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaffffffff004a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a"
        "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a"
        "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a"
        "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a"
        "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a"
        "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a00000000555555"
        "551002400900240090024009002400900240090024009002400900240090024009002400900240090024009002400900"
        "240090024009002400900240090024009015aaaaaaaaaaaaaaaaaaaaaa003f4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a"
        "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a000000000015024009002400900240090000000000"
        "0000000000000000000000000000000000000000000000000000000000"
    ),
    "grid": bytes.fromhex(
        "e1f0100030300040023070001050155011206017000060112520f4020160200110007687566778a9866589689801690000"
    ),
    "scattered": bytes.fromhex(
        "e1ffffffffffffffffffffffffffffffffffffffffffe00efd0476ffaa03fd048a03ff74bf09d302ffea031d9809ff4e"
        "950edc07ff8405e30ab40affcb0ab805ba05ff81084c7dfff206a107c00bffc1084234ff9c013957ffcc07f7021dfeb7"
        "019b01ffdc059308f503ffec09d90af20affe903e3078d01ffa206b106d401fbea059007ffc302da01bb01f58303f702"
        "007687566778a9866589689801690000"
    ),
    "sequence": bytes.fromhex("d100040491030405040504a9970c0404040481f1040400000000"),
    "oct4": bytes.fromhex(
        "a00700f84b23661aa105d91b3fdcca285644ff0000004ab3447f0700073080ff81cd90315b0436564dc9adff0000003c"
        "97e7d2000a03434343434343434343000000000000000000000000000000000000000000000000000000000000000000"
        "0034bf7f81"
    ),
    "oct8": bytes.fromhex(
        "a00700a3ab1f44630453444209337e828136ff0000009cb2480d0a0f3ff2f0d13ef264111e1916136b47000000000000"
        "07007ff9011d1eeed3c82e4ea381e9cbafff0000003f86a9cb060048ffda350465bf0f1816bf000000070f0e00000a03"
        "434343434343434343000000000000051999999999000000000000000000000000000000000000000000000000000000"
        "4103edfbff070180"
    ),
    "quat": bytes.fromhex(
        "a0013fff300034db516756a4a8270201262fe38900000015013ffff000854f86037d2f7adfa5020331f55fbc00000016"
        "12013ffff000ee6580dbff33447b07013fbfb0001512070c150c06011bdc100004030400000000000000000000000000"
        "000000000000000000000000bb0112fd9605fd07"
    ),
    "exp": bytes.fromhex(
        "a0013ffff0003f7ccabc46cc9cb344013ffff0006a168128102522114f0121264000011700400004013ffff000342730"
        "41fd9fa15fbb013ffff000663f97e49f709b26740101992000011700400004013ffff0006f649bca5074e91335013fff"
        "f0002621961d1c578823c501020610000117004000040000000000000000000000000000000000000000eeebfffa1206"
        "00fa97d6fffa"
    ),
}


def _attr8() -> np.ndarray:
    i = np.arange(40)
    return np.stack([i * 3, 1000 - i * 7 + (i % 5) * 50, (i * i) % 3000, np.where(i % 2, -1, 1)], 1).astype("<i2")


def _attr_blocks() -> np.ndarray:
    i = np.arange(300)
    return np.stack([i & 0xFF, (i * 37) & 0xFF, np.zeros_like(i), np.where(i % 7, 255, 0)], 1).astype(np.uint8)


# A 5x5-vertex grid of 32 triangles after meshoptimizer's vertex-cache reordering (which renumbers
# the vertices), as it was handed to the encoder.
GRID = np.array(
    [
        0,
        1,
        2,
        1,
        3,
        2,
        2,
        3,
        4,
        1,
        5,
        3,
        3,
        6,
        4,
        4,
        6,
        7,
        5,
        8,
        3,
        3,
        8,
        6,
        5,
        9,
        8,
        6,
        10,
        7,
        7,
        10,
        11,
        10,
        12,
        11,
        6,
        13,
        10,
        8,
        13,
        6,
        10,
        14,
        12,
        13,
        14,
        10,
        14,
        15,
        12,
        8,
        16,
        13,
        9,
        16,
        8,
        9,
        17,
        16,
        17,
        18,
        16,
        16,
        19,
        13,
        16,
        18,
        19,
        13,
        19,
        14,
        18,
        20,
        19,
        14,
        21,
        15,
        19,
        21,
        14,
        19,
        20,
        21,
        21,
        22,
        15,
        20,
        23,
        21,
        21,
        23,
        22,
        23,
        24,
        22,
    ]
)


def _canonical(indices: np.ndarray) -> list[tuple[int, ...]]:
    """Triangles rotated to start at their smallest index (the encoder may rotate them), sorted."""
    tris = np.asarray(indices, np.int64).reshape(-1, 3)
    first = np.argmin(tris, axis=1)
    rows = np.arange(len(tris))
    rotated = np.stack([tris[rows, (first + k) % 3] for k in range(3)], axis=1)
    return sorted(map(tuple, rotated.tolist()))


def test_meshopt_attribute_codec() -> None:
    out = gltf._meshopt_decode(MESHOPT_STREAMS["attr8"], "ATTRIBUTES", "NONE", 40, 8, "t")
    np.testing.assert_array_equal(np.frombuffer(out, "<i2").reshape(40, 4), _attr8())
    out = gltf._meshopt_decode(MESHOPT_STREAMS["attr_blocks"], "ATTRIBUTES", "NONE", 300, 4, "t")
    np.testing.assert_array_equal(np.frombuffer(out, np.uint8).reshape(300, 4), _attr_blocks())


def test_meshopt_index_codecs() -> None:
    grid = gltf._meshopt_decode(MESHOPT_STREAMS["grid"], "TRIANGLES", "NONE", 96, 4, "t")
    # The encoder reordered the grid's triangles for the vertex cache; the set (and winding) is kept.
    assert _canonical(np.frombuffer(grid, "<u4")) == _canonical(GRID)
    scattered = gltf._meshopt_decode(MESHOPT_STREAMS["scattered"], "TRIANGLES", "NONE", 60, 2, "t")
    expected = np.random.default_rng(7).integers(0, 1000, 60)
    assert _canonical(np.frombuffer(scattered, "<u2")) == _canonical(expected)
    sequence = gltf._meshopt_decode(MESHOPT_STREAMS["sequence"], "INDICES", "NONE", 16, 4, "t")
    np.testing.assert_array_equal(
        np.frombuffer(sequence, "<u4"), [0, 1, 2, 100, 3, 101, 4, 102, 5, 50000, 6, 7, 8, 9, 70000, 10]
    )


def test_meshopt_filters() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=(20, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for name, stride, dtype, top, tol in [("oct4", 4, np.int8, 127, 0.02), ("oct8", 8, "<i2", 32767, 1e-3)]:
        out = np.frombuffer(
            gltf._meshopt_decode(MESHOPT_STREAMS[name], "ATTRIBUTES", "OCTAHEDRAL", 20, stride, "t"), dtype
        ).reshape(20, 4)
        np.testing.assert_allclose(out[:, :3] / top, v, atol=tol)
        np.testing.assert_array_equal(np.sign(out[:, 3]), np.where(np.arange(20) % 2, 1, -1))
    q = np.random.default_rng(5).normal(size=(10, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    out = (
        np.frombuffer(
            gltf._meshopt_decode(MESHOPT_STREAMS["quat"], "ATTRIBUTES", "QUATERNION", 10, 8, "t"), "<i2"
        ).reshape(10, 4)
        / 32767
    )
    np.testing.assert_allclose(np.abs((out * q).sum(axis=1)), 1, atol=1e-4)  # q and -q are one rotation
    f = (np.random.default_rng(9).normal(size=(10, 3)) * 100).astype(np.float32)
    out = np.frombuffer(
        gltf._meshopt_decode(MESHOPT_STREAMS["exp"], "ATTRIBUTES", "EXPONENTIAL", 10, 12, "t"), "<f4"
    ).reshape(10, 3)
    np.testing.assert_allclose(out, f, atol=0.01)  # 15-bit mantissas


def meshopt_glb() -> tuple[GltfBuilder, dict[str, Any]]:
    """A GLB whose vertex and index views exist only compressed, behind a fallback buffer.

    The positions are ``_attr8()`` (i16 VEC3 in 8-byte elements), the indices ``GRID``.
    """
    b = GltfBuilder()
    compressed = {
        "attr8": (MESHOPT_STREAMS["attr8"], "ATTRIBUTES", 8, 40),
        "grid": (MESHOPT_STREAMS["grid"], "TRIANGLES", 4, 96),
    }
    views = {}
    offset = 0
    for name, (data, mode, stride, count) in compressed.items():
        view = b.view(data)
        src = b.doc["bufferViews"][view]
        ext = {
            "buffer": 0,
            "byteOffset": src["byteOffset"],
            "byteLength": len(data),
            "byteStride": stride,
            "mode": mode,
            "count": count,
        }
        b.doc["bufferViews"][view] = {
            "buffer": 1,
            "byteOffset": offset,
            "byteLength": stride * count,
            "extensions": {"EXT_meshopt_compression": ext},
        }
        if mode == "ATTRIBUTES":
            b.doc["bufferViews"][view]["byteStride"] = stride
        offset += stride * count
        views[name] = view
    pos = b.add("accessors", {"bufferView": views["attr8"], "componentType": 5122, "count": 40, "type": "VEC3"})
    idx = b.add("accessors", {"bufferView": views["grid"], "componentType": 5125, "count": 96, "type": "SCALAR"})
    b.add("meshes", {"primitives": [{"attributes": {"POSITION": pos}, "indices": idx}]})
    b.doc["extensionsUsed"] = b.doc["extensionsRequired"] = [
        "EXT_meshopt_compression",
        "KHR_mesh_quantization",
    ]
    doc = b.document()
    doc["buffers"].append({"byteLength": offset, "extensions": {"EXT_meshopt_compression": {"fallback": True}}})
    return b, doc


def test_meshopt_views_in_a_glb() -> None:
    b, doc = meshopt_glb()
    positions = _attr8()
    prim = load_gltf(b.glb(doc)).meshes[0].primitives[0]
    np.testing.assert_array_equal(prim.positions, positions[:, :3].astype(np.float32))
    assert _canonical(prim.indices) == _canonical(GRID)
    # Without the extension being used, the fallback buffer's missing data is an error, not zeros.
    doc["extensionsUsed"] = doc["extensionsRequired"] = ["KHR_mesh_quantization"]
    fails(b.glb(doc), "has no data")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(MESHOPT_STREAMS)),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 2000),
    count=st.integers(1, 400),
    stride=st.sampled_from([2, 4, 8, 12]),
    mode=st.sampled_from(["ATTRIBUTES", "TRIANGLES", "INDICES"]),
    filt=st.sampled_from(["NONE", "OCTAHEDRAL", "QUATERNION", "EXPONENTIAL"]),
)
def test_meshopt_decoders_fuzz(
    name: str, edits: list[tuple[int, int]], cut: int, count: int, stride: int, mode: str, filt: str
) -> None:
    data = bytearray(MESHOPT_STREAMS[name])
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(cut, 1)] if cut < len(data) else data
    try:
        out = gltf._meshopt_decode(bytes(data), mode, filt, count, stride, "fuzz")
    except AvatarError as err:
        if err.code is not INCOMPATIBLE:
            pytest.fail(f"unexpected code: {err}")
    else:
        assert len(out) == count * stride


# --------------------------------------------------------------------------------------------------
# Fuzzing the whole loader


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(["small", "meshopt"]),
    edits=st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 1 << 16)),
)
def test_mutated_glb_loads_or_raises_avatar_error(seed: str, edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_SEED_GLBS[seed])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        model = load_gltf(bytes(data))
        for image in model.images:
            image.rgba()
        model.node_world_matrices()
        model.morph_target_index()
    except AvatarError as err:
        if err.code is not INCOMPATIBLE:
            pytest.fail(f"unexpected code: {err}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(
        [
            "count",
            "byteOffset",
            "byteLength",
            "byteStride",
            "buffer",
            "bufferView",
            "componentType",
            "type",
            "normalized",
            "children",
            "mesh",
            "skin",
            "index",
            "source",
            "joints",
        ]
    ),
    value=st.one_of(
        st.integers(-(2**64), 2**64),
        st.floats(),
        st.text(max_size=3),
        st.none(),
        st.booleans(),
        st.lists(st.integers(-2, 10), max_size=3),
        st.dictionaries(st.text(max_size=2), st.integers()),
    ),
    which=st.integers(0, 20),
)
def test_mutated_json_loads_or_raises_avatar_error(path: str, value: Any, which: int) -> None:
    """Put odd values (huge ints, floats, strings, null, lists) in the fields the loader reads."""

    def mutate(doc: dict[str, Any]) -> None:
        holders: list[dict[str, Any]] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if path in node:
                    holders.append(node)
                for child in node.values():
                    walk(child)
            elif isinstance(node, list):
                for child in node:
                    walk(child)

        walk(doc)
        if holders:
            holders[which % len(holders)][path] = value

    try:
        load_gltf(glb_with(mutate))
    except AvatarError as err:
        if err.code is not INCOMPATIBLE:
            pytest.fail(f"unexpected code: {err}")


_MESHOPT_BUILDER, _MESHOPT_DOC = meshopt_glb()
_SEED_GLBS = {"small": small_valid_glb(), "meshopt": _MESHOPT_BUILDER.glb(_MESHOPT_DOC)}


# --------------------------------------------------------------------------------------------------
# The real avatars in ../shared/data


def test_brunette_ready_player_me_avatar_loads() -> None:
    from avatarkit.codec import ARKIT_NAMES, VISEME_NAMES

    path = shared_file("brunette-t.glb")
    start = time.perf_counter()
    model = load_gltf(path)
    elapsed = time.perf_counter() - start
    print(f"brunette-t.glb loaded in {elapsed * 1000:.1f} ms")  # shown with -s; no test asserts a time
    expected = {n.lower() for n in [*ARKIT_NAMES, *VISEME_NAMES]}
    assert len(expected) == 67
    by_name = {m.name: m for m in model.meshes}
    for name in ("Wolf3D_Head", "Wolf3D_Teeth", "EyeLeft", "EyeRight"):
        mesh = by_name[name]
        assert {t.lower() for t in mesh.target_names} == expected, name
        for prim in mesh.primitives:
            assert len(prim.targets) == 67
            assert prim.joints is not None and prim.weights is not None
            assert prim.indices.max() < prim.vertex_count
            for target in prim.targets:
                assert target.indices.size == 0 or target.indices.max() < prim.vertex_count
    index = model.morph_target_index()
    assert {m for m, _ in index["jawopen"]} == {
        model.meshes.index(by_name[n]) for n in ("Wolf3D_Head", "Wolf3D_Teeth", "EyeLeft", "EyeRight")
    }
    head = by_name["Wolf3D_Head"].primitives[0]
    jaw = head.targets[by_name["Wolf3D_Head"].target_names.index("jawOpen")]
    assert 0 < jaw.indices.size < head.vertex_count  # sparse: the jaw moves part of the head
    assert float(np.abs(jaw.positions).max()) > 1e-3
    (skin,) = model.skins
    joint_names = {model.nodes[j].name for j in skin.joints}
    assert {"Head", "Neck", "LeftEye", "RightEye", "Hips"} <= joint_names
    world = model.node_world_matrices()
    head_y = world[model.find_node("Head")][1, 3]
    assert 1.3 < head_y < 1.9  # an adult standing at the origin, in metres
    assert model.materials and all(m.alpha_mode in AlphaMode for m in model.materials)
    for image in model.images:
        rgba = image.rgba()
        assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4
    assert model.warnings == []


def test_vroid_avatar_loads_with_visemes() -> None:
    path = shared_file("vroid.glb")
    model = load_gltf(path)
    (face,) = [m for m in model.meshes if "Face" in m.name]
    assert "Fcl_MTH_A" in face.target_names
    index = model.morph_target_index()
    face_index = model.meshes.index(face)
    for viseme in ("viseme_aa", "viseme_i", "viseme_u", "viseme_e", "viseme_o"):
        assert any(m == face_index for m, _ in index[viseme]), viseme
    # Check the meshopt decoding against the file's own bounds: each POSITION accessor's min/max
    # (quantized integers, dequantized with the normalized-short formula).
    raw = path.read_bytes()
    doc = json.loads(raw[20 : 20 + struct.unpack_from("<I", raw, 12)[0]])
    for mi, mesh in enumerate(doc["meshes"]):
        for pi, prim in enumerate(mesh["primitives"]):
            acc = doc["accessors"][prim["attributes"]["POSITION"]]
            assert acc["componentType"] == 5122 and acc["normalized"]
            positions = model.meshes[mi].primitives[pi].positions
            np.testing.assert_array_equal(positions.min(axis=0), np.maximum(np.float32(acc["min"]) / 32767, -1))
            np.testing.assert_array_equal(positions.max(axis=0), np.float32(acc["max"]) / 32767)
            out = model.meshes[mi].primitives[pi]
            assert out.normals is not None and not out.normals_generated
            np.testing.assert_allclose(np.linalg.norm(out.normals, axis=1), 1, atol=0.02)
            # Every vertex is used by some triangle (an index stream decoded wrong scatters them).
            assert np.unique(out.indices).size == out.vertex_count
    for image in model.images[:3]:
        assert image.mime_type == "image/webp"
        assert image.rgba().shape[2] == 4


@pytest.mark.parametrize(
    ("key", "count", "item"),
    [
        ("nodes", 200_000, {}),  # #18: a million empty nodes took 1.2 GB and 10 s
        ("meshes", 10_001, {"primitives": []}),
        ("accessors", 100_001, {"componentType": 5126, "count": 1, "type": "SCALAR"}),
        ("images", 1_001, {"uri": "x.png"}),
    ],
)
def test_object_counts_are_capped(key: str, count: int, item: dict[str, Any]) -> None:
    doc = {"asset": {"version": "2.0"}, key: [item] * count}
    fails(json.dumps(doc).encode(), f"{key} has {count} entries, more than this loader accepts")
    doc[key] = [item] * 3  # under the cap, the same objects get past it (to load, or to their own checks)
    message = ""
    try:
        load_gltf(json.dumps(doc).encode())
    except AvatarError as err:
        message = err.message
    assert "more than this loader accepts" not in message
