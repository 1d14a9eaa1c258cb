"""Intrinsic dimension estimators: planted manifolds, scikit-dimension on the same data,
invariances, duplicates, half precision, bootstrap."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.kernel import dimension as dm

skdim = pytest.importorskip("skdim")


def sphere(n, d, big_d, seed=0):
    """n points uniform on S^d (intrinsic dimension d) isometrically embedded in R^big_d."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d + 1))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    q = np.linalg.qr(rng.standard_normal((big_d, d + 1)))[0]
    return z @ q.T


def subspace(n, d, big_d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, d)) @ rng.standard_normal((d, big_d))


def swiss_roll(n, seed=0):
    rng = np.random.default_rng(seed)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    return np.stack([t * np.cos(t), 21 * rng.uniform(size=n), t * np.sin(t)], 1)


def curved(n, d, big_d, seed=0):
    """A d-dimensional manifold embedded nonlinearly: random Fourier features of a d-cube."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(n, d))
    w = rng.standard_normal((d, big_d)) * 1.0
    return np.cos(u @ w + rng.uniform(0, 2 * np.pi, big_d))


@pytest.fixture(scope="module")
def s10():
    return sphere(1000, 10, 60)


# -- scikit-dimension on the same data ---------------------------------------------------------------
def test_twonn_matches_skdim(s10):
    ref = skdim.id.TwoNN().fit(s10).dimension_
    assert dm.twonn(s10) == pytest.approx(ref, rel=1e-9)
    ref = skdim.id.TwoNN(method="mle", discard_fraction=0.0).fit(s10).dimension_
    assert dm.twonn(s10, method="mle", discard_fraction=0.0) == pytest.approx(ref, rel=1e-9)
    ref = skdim.id.TwoNN(method="mle").fit(s10).dimension_
    assert dm.twonn(s10, method="mle") == pytest.approx(ref, rel=1e-9)


def test_twonn_matches_dadapy_2nn(s10):
    """DADApy 0.3.4's 2NN (``Data.compute_id_2NN``), as its ``_compute_id_2NN`` computes it from
    the first two neighbour distances: DADApy itself cannot be installed here (it requires
    numpy < 2 and jax 0.4.30), so its two fits are applied as written there, with scipy's
    ``curve_fit`` and scikit-learn's neighbours, on the same points."""
    from scipy.optimize import curve_fit
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=3).fit(s10).kneighbors(s10)
    mus = dist[:, 2] / dist[:, 1]
    n = mus.shape[0]
    # algorithm="base", mu_fraction=0.9 (its defaults)
    n_eff = int(n * 0.9)
    log_mus_reduced = np.sort(np.log(mus))[:n_eff]
    y = -np.log(1 - np.arange(1, n_eff + 1) / n)
    base = curve_fit(lambda x, m: m * x, log_mus_reduced, y)[0][0]
    assert dm.twonn(s10) == pytest.approx(base, rel=1e-6)
    # algorithm="ml"
    ml = (n - 1) / np.sum(np.log(mus))
    assert dm.twonn(s10, method="mle", discard_fraction=0.0) == pytest.approx(ml, rel=1e-9)


def test_mle_matches_skdim_at_one_k(s10):
    for k in (10, 20):
        ref = skdim.id.MLE().fit(s10, n_neighbors=k, comb="mle").dimension_
        assert dm.mle(s10, k=k) == pytest.approx(ref, rel=1e-9)
    rng_k = [dm.mle(s10, k=k) for k in range(10, 21)]
    assert dm.mle(s10) == pytest.approx(np.mean(rng_k), rel=1e-12)


@pytest.mark.parametrize("ver", ["FO", "ratio"])
def test_lpca_matches_skdim(s10, ver):
    x = s10[:250]
    est = skdim.id.lPCA(ver=ver, alphaRatio=0.95).fit_pw(x, n_neighbors=30)
    fit = dm.LocalPCA(k=30, ver=ver).fit(x)
    np.testing.assert_array_equal(fit.dimension_pw_, est.dimension_pw_)
    assert fit.dimension_ == pytest.approx(est.dimension_pw_.mean(), rel=1e-12)


def test_gride_matches_skdim(s10):
    ref = skdim.id.GRIDE(multiscale=True).fit(s10)
    scales, d = dm.gride(s10)
    np.testing.assert_array_equal(scales, ref.scales_)
    np.testing.assert_allclose(d, ref.dimension_scales_, rtol=1e-9)


# -- planted manifolds --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "data", "d", "tol"),
    [
        ("subspace 5 in 100", subspace(2000, 5, 100), 5, 0.15),
        ("sphere S^10 in 384", sphere(2000, 10, 384), 10, 0.15),
        ("swiss roll", swiss_roll(2000), 2, 0.15),
        ("curved 6 in 500", curved(2000, 6, 500), 6, 0.2),
    ],
)
def test_planted_dimension(name, data, d, tol):
    assert dm.twonn(data) == pytest.approx(d, rel=tol), name
    assert dm.mle(data) == pytest.approx(d, rel=tol + 0.1), name  # MLE is biased low at d >= 10
    assert np.median(dm.lid(data)) == pytest.approx(d, rel=tol + 0.1), name
    assert dm.gride(data)[1][0] == pytest.approx(d, rel=tol), name


def test_lpca_and_pca_on_a_linear_subspace():
    x = subspace(1500, 4, 50)
    assert dm.lpca(x, k=60) == pytest.approx(4, abs=1e-9)
    assert dm.pca_dimension(x, 0.999999) == 4
    assert dm.lpca(sphere(1500, 2, 30), k=30) == pytest.approx(2, abs=0.1)


def test_phd_on_planted_sets():
    assert dm.phd(sphere(1000, 2, 10), n_max=500) == pytest.approx(2, rel=0.2)
    assert dm.phd(subspace(1000, 4, 20), n_max=500) == pytest.approx(4, rel=0.25)
    fit = dm.PHD(n_max=400).fit(sphere(600, 3, 8))
    assert fit.points_.shape == (40, 2) and fit.n_points_ == 600


# -- duplicates, precision, invariances ------------------------------------------------------------------
def test_jittered_duplicates_are_removed_and_counted():
    x = sphere(1800, 10, 384, seed=5).astype(np.float32)
    rng = np.random.default_rng(5)
    n_dup = 180  # 10 %
    eps = np.finfo(np.float32).eps
    copies = x[:n_dup] * (1 + eps * rng.standard_normal((n_dup, 384)).astype(np.float32))
    data = np.concatenate([x, copies])
    fit = dm.TwoNN().fit(data)
    assert fit.n_duplicates_ == n_dup and fit.n_points_ == 1800 and fit.n_samples_ == 1980
    assert fit.dimension_ == pytest.approx(dm.twonn(x), rel=1e-9)
    assert fit.dimension_ == pytest.approx(10, rel=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert skdim.id.TwoNN().fit(data).dimension_ < 2  # the failure being fixed
    assert dm.MLE().fit(data).n_duplicates_ == n_dup


def test_float16_input_gives_the_float32_estimate():
    x = sphere(1500, 5, 64, seed=2).astype(np.float32)
    x16 = torch.as_tensor(x).half()
    assert dm.twonn(x16) == pytest.approx(dm.twonn(x16.float()), rel=1e-6)
    assert dm.twonn(x16) == pytest.approx(dm.twonn(x), rel=0.03)
    assert dm.mle(x16) == pytest.approx(dm.mle(x), rel=0.03)


@settings(max_examples=5, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-50, 50),
)
def test_invariance_to_rotation_translation_scaling(seed, scale, shift):
    x = sphere(400, 4, 12, seed=seed)
    q = np.linalg.qr(np.random.default_rng(seed + 1).standard_normal((12, 12)))[0]
    y = (x @ q) * scale + shift
    for f in (dm.twonn, dm.mle, lambda a: dm.gride(a)[1][2]):
        assert f(y) == pytest.approx(f(x), rel=1e-6)
    perm = np.random.default_rng(seed).permutation(len(x))
    assert dm.twonn(x[perm]) == pytest.approx(dm.twonn(x), rel=1e-12)


def test_bad_inputs():
    x = sphere(100, 2, 5)
    x[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dm.twonn(x)
    with pytest.raises(ValueError, match="at least"):
        dm.twonn(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="distinct points"):
        dm.twonn(np.concatenate([np.zeros((50, 3)), np.eye(3)]))
    with pytest.raises(ValueError, match="method"):
        dm.twonn(sphere(100, 2, 5), method="nope")


# -- bootstrap and size curve ----------------------------------------------------------------------------
def test_subset_graph_is_the_exact_graph_of_the_subset():
    x = sphere(700, 5, 20, seed=3)
    g = dm.neighbour_graph(x, 40)
    rows = np.sort(np.random.default_rng(0).choice(700, 560, replace=False))
    d, i = g.sub(rows, 25)
    ref = dm.neighbour_graph(x[rows], 25)
    np.testing.assert_allclose(d.numpy(), ref.dist.numpy(), rtol=1e-6)
    assert (i.numpy() == ref.idx.numpy()).mean() > 0.999
    d, i = g.sub(rows[:60], 25)  # most rows fall short: recomputed exactly
    ref = dm.neighbour_graph(x[rows[:60]], 25)
    np.testing.assert_allclose(d.numpy(), ref.dist.numpy(), rtol=1e-6)


def test_bootstrap_interval_is_seeded_and_covers():
    x = sphere(800, 6, 30, seed=4)
    g = dm.neighbour_graph(x, 40)
    stat = lambda d, i: dm._twonn(d, 0.1, "linear")  # noqa: E731
    b = dm.bootstrap(g, stat, k=2, n_boot=60, seed=1)
    again = dm.bootstrap(g, stat, k=2, n_boot=60, seed=1)
    np.testing.assert_array_equal(b.replicates, again.replicates)
    assert b.n_boot == 60 and b.low < dm.twonn(x) < b.high
    sizes, vals = dm.size_curve(x, dm.twonn)
    np.testing.assert_array_equal(sizes, [100, 200, 400, 800])
    assert vals[-1] == pytest.approx(dm.twonn(x), rel=1e-12)
