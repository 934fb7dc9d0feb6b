"""C++ deformation: morph targets and linear blend skinning against numpy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatarkit._core import rig


def random_mesh(rng: np.random.Generator, n: int = 500, k: int = 12) -> tuple[np.ndarray, np.ndarray, list]:
    pos = rng.normal(size=(n, 3)).astype(np.float32)
    nrm = rng.normal(size=(n, 3)).astype(np.float32)
    targets = []
    for j in range(k):
        density = [0.02, 0.3, 0.9][j % 3]  # sparse, medium, dense
        dp = np.zeros((n, 3), np.float32)
        dn = np.zeros((n, 3), np.float32)
        sel = rng.random(n) < density
        dp[sel] = rng.normal(size=(sel.sum(), 3))
        dn[sel] = rng.normal(size=(sel.sum(), 3)) * 0.1
        targets.append((dp, dn))
    return pos, nrm, targets


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), zero_fraction=st.floats(0, 1))
def test_morph_matches_numpy(seed: int, zero_fraction: float) -> None:
    rng = np.random.default_rng(seed)
    pos, nrm, targets = random_mesh(rng)
    mesh = rig.MorphMesh(pos, nrm)
    for dp, dn in targets:
        mesh.add_dense_target(dp, dn)
    w = rng.uniform(-0.5, 1.5, len(targets)).astype(np.float32)
    w[rng.random(len(targets)) < zero_fraction] = 0.0
    p, n = mesh.apply(w)
    ref_p = pos + sum(wi * dp for wi, (dp, _) in zip(w, targets, strict=True))
    ref_n = nrm + sum(wi * dn for wi, (_, dn) in zip(w, targets, strict=True))
    np.testing.assert_allclose(p, ref_p, atol=1e-5)
    np.testing.assert_allclose(n, ref_n, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), counts=st.lists(st.integers(1, 60), min_size=1, max_size=6))
def test_sparse_targets_of_any_size_match_numpy(seed: int, counts: list[int]) -> None:
    """Sparse targets given directly: odd and even sizes, one entry, with and without normal deltas."""
    rng = np.random.default_rng(seed)
    n = 64
    pos = rng.normal(size=(n, 3)).astype(np.float32)
    nrm = rng.normal(size=(n, 3)).astype(np.float32)
    mesh = rig.MorphMesh(pos, nrm)
    ref_p, ref_n = pos.astype(np.float64), nrm.astype(np.float64)
    w = rng.uniform(-1, 1, len(counts)).astype(np.float32)
    for k, count in enumerate(counts):
        idx = np.sort(rng.choice(n, count, replace=False)).astype(np.uint32)
        dp = rng.normal(size=(count, 3)).astype(np.float32)
        dn = rng.normal(size=(count, 3)).astype(np.float32) if k % 2 == 0 else None
        mesh.add_sparse_target(idx, dp, dn)
        ref_p[idx] += w[k] * dp
        if dn is not None:
            ref_n[idx] += w[k] * dn
    p, nn = mesh.apply(w)
    np.testing.assert_allclose(p, ref_p, atol=1e-5)
    np.testing.assert_allclose(nn, ref_n, atol=1e-5)


def test_sparse_dense_storage_and_out_arrays() -> None:
    rng = np.random.default_rng(3)
    pos, nrm, targets = random_mesh(rng, n=200, k=3)
    mesh = rig.MorphMesh(pos, nrm)
    for dp, dn in targets:
        mesh.add_dense_target(dp, dn)
    assert [mesh.target_is_dense(i) for i in range(3)] == [False, False, True]
    assert mesh.target_size(0) < 20 and mesh.target_size(2) == 200
    out_p = np.empty((200, 3), np.float32)
    out_n = np.empty((200, 3), np.float32)
    p, _ = mesh.apply(np.array([1, 0, 0], np.float32), out_p, out_n)
    assert p is out_p or np.shares_memory(p, out_p)
    np.testing.assert_allclose(out_p, pos + targets[0][0], atol=1e-6)
    # All-zero weights give the base mesh back exactly.
    p, _ = mesh.apply(np.zeros(3, np.float32))
    np.testing.assert_array_equal(p, pos)
    # NaN weights are ignored rather than spreading.
    p, _ = mesh.apply(np.array([np.nan, 0, 0], np.float32))
    np.testing.assert_array_equal(p, pos)


def test_bad_input_is_a_typed_error() -> None:
    pos = np.zeros((10, 3), np.float32)
    mesh = rig.MorphMesh(pos)
    with pytest.raises(rig.DeformError, match="out of range"):
        mesh.add_sparse_target(np.array([3, 10], np.uint32), np.zeros((2, 3), np.float32))
    with pytest.raises(rig.DeformError, match="increase"):
        mesh.add_sparse_target(np.array([3, 3], np.uint32), np.zeros((2, 3), np.float32))
    with pytest.raises(rig.DeformError):
        mesh.apply(np.zeros(2, np.float32))  # no targets, two weights
    with pytest.raises(rig.DeformError):
        rig.MorphMesh(np.zeros((0, 3), np.float32))
    with pytest.raises(rig.DeformError):
        rig.skin(
            pos,
            None,
            np.full((10, 4), 5, np.uint16),
            np.ones((10, 4), np.float32),
            np.zeros((2, 4, 4), np.float32),
        )


def test_skinning_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    n, j = 300, 5
    pos = rng.normal(size=(n, 3)).astype(np.float32)
    nrm = rng.normal(size=(n, 3)).astype(np.float32)
    joints = rng.integers(0, j, (n, 4)).astype(np.uint16)
    weights = rng.random((n, 4)).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    mats = []
    for _ in range(j):
        q, _r = np.linalg.qr(rng.normal(size=(3, 3)))
        m = np.eye(4)
        m[:3, :3] = q
        m[:3, 3] = rng.normal(size=3)
        mats.append(m)
    mats = np.array(mats, np.float32)
    p, nn = rig.skin(pos, nrm, joints, weights, np.ascontiguousarray(mats.transpose(0, 2, 1)))
    blended = np.einsum("vk,vkij->vij", weights, mats[joints])
    ref_p = np.einsum("vij,vj->vi", blended[:, :3, :3], pos) + blended[:, :3, 3]
    ref_n = np.einsum("vij,vj->vi", blended[:, :3, :3], nrm)
    np.testing.assert_allclose(p, ref_p, atol=1e-4)
    np.testing.assert_allclose(nn, ref_n, atol=1e-4)
