"""Asset, deformation and rendering benchmarks (pytest-benchmark), each with its same-run baseline.

Run them timed with ``python -m pytest bench/bench_assets_render.py --benchmark-enable``; under the
default ``--benchmark-disable`` they run once as quick tests. ``python bench/render_report.py``
prints the ratios: the C++ deformer against dense numpy and against the memory-bandwidth bound,
and the render rate of the default avatar.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from avatarkit._core import rig

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def _brunette() -> pathlib.Path:
    path = SHARED / "brunette-t.glb"
    if not path.is_file():
        pytest.skip("../shared/data/brunette-t.glb is not available")
    return path


def test_bench_load_brunette_to_gpu_ready_arrays(benchmark) -> None:  # type: ignore[no-untyped-def]
    """Disk to GPU-ready arrays: parse the GLB, decode every texture, build every morph mesh."""
    from avatarkit.assets.gltf import load_gltf
    from avatarkit.rig import AvatarRig

    path = _brunette()

    def load() -> int:
        model = load_gltf(path, decode_images=True)
        rigged = AvatarRig(model)
        return len(rigged.primitives)

    assert benchmark(load) == 10


def deformation_case(vertices: int = 20000, targets: int = 67, seed: int = 0) -> tuple:  # type: ignore[type-arg]
    """A face-like mesh: 67 targets each moving 5-35 % of the vertices, a speech frame of weights."""
    rng = np.random.default_rng(seed)
    pos = rng.normal(size=(vertices, 3)).astype(np.float32)
    nrm = rng.normal(size=(vertices, 3)).astype(np.float32)
    dense_p = np.zeros((targets, vertices, 3), np.float32)
    dense_n = np.zeros((targets, vertices, 3), np.float32)
    mesh = rig.MorphMesh(pos, nrm)
    for k in range(targets):
        sel = rng.random(vertices) < rng.uniform(0.05, 0.35)
        dense_p[k, sel] = rng.normal(size=(sel.sum(), 3)) * 0.01
        dense_n[k, sel] = rng.normal(size=(sel.sum(), 3)) * 0.05
        mesh.add_dense_target(dense_p[k], dense_n[k])
    # A speech frame: a dozen targets active (jaw, lips, a viseme or two, blink), the rest zero.
    weights = np.zeros(targets, np.float32)
    weights[rng.choice(targets, 12, replace=False)] = rng.uniform(0.1, 1.0, 12)
    return pos, nrm, dense_p, dense_n, mesh, weights


@pytest.fixture(scope="module")
def case() -> tuple:  # type: ignore[type-arg]
    return deformation_case()


def test_bench_deform_cpp(benchmark, case) -> None:  # type: ignore[no-untyped-def]
    pos, nrm, dense_p, _, mesh, weights = case
    out_p, out_n = np.empty_like(pos), np.empty_like(nrm)
    benchmark(mesh.apply, weights, out_p, out_n)
    ref = pos + np.tensordot(weights, dense_p, 1)
    np.testing.assert_allclose(out_p, ref, atol=1e-5)


def test_bench_deform_numpy_dense(benchmark, case) -> None:  # type: ignore[no-untyped-def]
    pos, nrm, dense_p, dense_n, _, weights = case
    flat_p, flat_n = dense_p.reshape(len(weights), -1), dense_n.reshape(len(weights), -1)

    def dense() -> np.ndarray:
        return (pos.reshape(-1) + weights @ flat_p), (nrm.reshape(-1) + weights @ flat_n)

    benchmark(dense)


def test_bench_memcpy_baseline(benchmark) -> None:  # type: ignore[no-untyped-def]
    big = np.zeros(8 << 20, np.uint8)
    out = np.empty_like(big)
    benchmark(np.copyto, out, big)
