"""PCA vs scikit-learn, Procrustes vs scipy, displacement; invariances by hypothesis.

Tolerances: float64 CPU PCA coordinates to 1e-6 relative (returned in float32); the randomised
solver with 4 power iterations to 1e-4 on a matrix with a clear spectral gap; Procrustes on an
exactly rotated copy to 1e-10.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from explorer.kernel.projection import (
    displacement,
    pca,
    procrustes,
    procrustes_rotation,
)


def _data(n=200, d=30, seed=0, gap=False):
    rng = np.random.default_rng(seed)
    scales = np.geomspace(10, 0.1, d)
    if gap:  # two dominant directions, then a bulk ten times smaller
        scales = np.r_[20.0, 10.0, np.geomspace(1, 0.1, d - 2)]
    return rng.normal(size=(n, d)) * scales @ np.linalg.qr(rng.normal(size=(d, d)))[0] + 5.0


def _orthogonal(d, rng):
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


@pytest.mark.parametrize(("n", "d", "solver"), [(200, 30, "covariance"), (20, 64, "gram")])
@pytest.mark.parametrize("k", [2, 3])
def test_pca_matches_sklearn(n, d, solver, k):
    X = _data(n, d)
    r = pca(X, k)
    ref = PCA(k, svd_solver="full").fit(X)
    assert r.solver == solver and r.coords.dtype == np.float32 and r.coords.shape == (n, k)
    scale = np.abs(ref.transform(X)).max()
    np.testing.assert_allclose(r.coords, ref.transform(X), atol=1e-6 * scale)
    np.testing.assert_allclose(r.components, ref.components_, atol=1e-8)
    np.testing.assert_allclose(r.explained_variance, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(
        r.explained_variance_ratio, ref.explained_variance_ratio_, rtol=1e-10
    )
    np.testing.assert_allclose(r.mean, X.mean(0), rtol=1e-12)


def test_randomized_pca_agrees_and_is_seeded():
    X = _data(500, 300, gap=True)
    exact = pca(X, 2, solver="exact")
    rand = pca(X, 2, solver="randomized", seed=3)
    assert rand.solver == "randomized"
    np.testing.assert_allclose(rand.coords, exact.coords, atol=1e-4 * np.abs(exact.coords).max())
    np.testing.assert_allclose(
        rand.explained_variance_ratio, exact.explained_variance_ratio, rtol=1e-6
    )
    again = pca(X, 2, solver="randomized", seed=3)
    np.testing.assert_array_equal(again.coords, rand.coords)


def test_pca_keeps_tensors_as_tensors():
    X = torch.as_tensor(_data(100, 10), dtype=torch.float32)
    r = pca(X, 2)
    assert isinstance(r.coords, torch.Tensor) and r.coords.dtype == torch.float32
    ref = pca(X.double().numpy(), 2)
    np.testing.assert_allclose(r.coords.numpy(), ref.coords, atol=1e-5 * np.abs(ref.coords).max())


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(-100, 100))
def test_pca_is_invariant_to_rotation_and_translation_of_the_points(seed, shift):
    # the layout of rotated/translated points is the same up to the per-axis sign convention,
    # which picks a sign from the components: compare absolute values of the coordinates
    rng = np.random.default_rng(seed)
    X = _data(80, 6, seed=seed % 1000)
    Y = X @ _orthogonal(6, rng) + shift
    a, b = pca(X, 2).coords, pca(Y, 2).coords
    np.testing.assert_allclose(np.abs(a), np.abs(b), atol=1e-4 * np.abs(a).max())


def test_pca_bad_input():
    with pytest.raises(ValueError, match="n_components"):
        pca(np.zeros((5, 3)) + np.arange(3), 4)
    with pytest.raises(ValueError, match="NaN"):
        pca(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        pca(np.zeros(5))
    with pytest.raises(ValueError, match="solver"):
        pca(_data(10, 3), solver="arpack")


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_recovers_a_rotated_copy_exactly(reflect):
    rng = np.random.default_rng(1)
    A = rng.normal(size=(100, 2)) * [5, 1]
    Q = _orthogonal(2, rng)
    if reflect != (np.linalg.det(Q) < 0):
        Q[:, 0] *= -1
    B = A @ Q + [3.0, -7.0]
    np.testing.assert_allclose(procrustes(A, B), B, atol=1e-10)
    R = procrustes_rotation(A, B)
    ref, _ = scipy.linalg.orthogonal_procrustes(A - A.mean(0), B - B.mean(0))
    np.testing.assert_allclose(R, ref, atol=1e-12)
    np.testing.assert_allclose(R, Q, atol=1e-10)
    assert displacement(procrustes(A, B), B) < 1e-10


def test_procrustes_matches_scipy_on_noisy_data_and_does_not_scale():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(60, 3))
    B = 2.0 * A @ _orthogonal(3, rng) + rng.normal(size=(60, 3)) * 0.3
    ref, _ = scipy.linalg.orthogonal_procrustes(A - A.mean(0), B - B.mean(0))
    np.testing.assert_allclose(procrustes_rotation(A, B), ref, atol=1e-12)
    aligned = procrustes(A, B)
    # rigid: pairwise distances of the source are kept (no scaling)
    d = np.linalg.norm(A[:, None] - A[None], axis=-1)
    d2 = np.linalg.norm(aligned[:, None] - aligned[None], axis=-1)
    np.testing.assert_allclose(d2, d, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_procrustes_never_increases_the_squared_displacement(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(30, 2))
    B = rng.normal(size=(30, 2))
    aligned = procrustes(A, B)
    assert ((aligned - B) ** 2).sum() <= ((A - A.mean(0) + B.mean(0) - B) ** 2).sum() + 1e-9


def test_procrustes_keeps_dtype_and_kind():
    a = torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    out = procrustes(a, a.flip(1).numpy())
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    out = procrustes(a.numpy(), a.numpy())
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    with pytest.raises(ValueError, match="shape"):
        procrustes(np.zeros((3, 2)), np.zeros((4, 2)))


def test_displacement_is_the_mean_distance():
    a = np.zeros((4, 2))
    b = np.array([[3.0, 4.0], [0, 0], [0, 1], [0, 0]])
    assert displacement(a, b) == pytest.approx((5 + 0 + 1 + 0) / 4)


def test_kernel_projection_does_not_import_pandas():
    import subprocess
    import sys

    code = "import sys, explorer.kernel.projection; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
