"""kernel.spectral_init (UMAP's spectral initialisation) against a dense eigendecomposition and
against umap-learn's ``spectral_layout``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from explorer.kernel.fuzzy_graph import fuzzy_graph
from explorer.kernel.neighbors import knn
from explorer.kernel.spectral_init import spectral_init

pytestmark = pytest.mark.slow


def umap_graph(x: np.ndarray, k: int = 15) -> scipy.sparse.csr_matrix:
    dist, idx = knn(x, k - 1)
    n = len(x)
    knn_idx = np.hstack([np.arange(n)[:, None], idx.numpy()])
    knn_dist = np.hstack([np.zeros((n, 1), np.float32), dist.numpy()])
    return fuzzy_graph(knn_idx, knn_dist)


def largest_angle(a: np.ndarray, b: np.ndarray) -> float:
    """The largest principal angle (degrees) between the column spaces of a and b."""
    cosines = scipy.linalg.svdvals(scipy.linalg.orth(a).T @ scipy.linalg.orth(b))
    return float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))


def swiss_roll(n: int, seed: int = 0) -> np.ndarray:
    from sklearn.datasets import make_swiss_roll

    return make_swiss_roll(n, noise=0.3, random_state=seed)[0].astype(np.float32)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_eigenvectors_match_a_dense_eigendecomposition(dim):
    """1,500 points on a swiss roll (one component, ARPACK's path): the layout spans the
    eigenvectors of the 2nd to (dim + 1)-th smallest eigenvalues of the normalised Laplacian
    ``I - D^-1/2 W D^-1/2`` from scipy's dense ``eigh``, within 1 degree."""
    x = swiss_roll(1500)
    graph = umap_graph(x)
    degree = np.asarray(graph.sum(0)).ravel()
    laplacian = np.eye(len(x)) - graph.toarray() / np.sqrt(np.outer(degree, degree))
    _, vectors = scipy.linalg.eigh(laplacian, subset_by_index=[1, dim])
    ours = spectral_init(graph, dim, x, np.random.RandomState(0))
    assert ours.shape == (len(x), dim) and ours.dtype == np.float32
    assert largest_angle(ours, vectors) < 1.0


def test_one_component_matches_umap_learn():
    """6,000 points (a swiss roll): the same subspace as umap-learn's ``spectral_layout`` within
    1 degree."""
    from umap.spectral import spectral_layout

    x = swiss_roll(6000, seed=1)
    graph = umap_graph(x)
    ours = spectral_init(graph, 2, x, np.random.RandomState(0))
    ref = spectral_layout(x, graph, 2, np.random.RandomState(0))
    assert largest_angle(ours, ref) < 1.0


def test_few_components_sit_at_a_cross_s_corners_as_in_umap_learn():
    """Three far-apart rolls (three components, at most 2 dim): each is centred on its corner
    (+e_0, +e_1, -e_0) within half the distance to the nearest other corner, laid out in the
    same subspace as by umap-learn, and a two-point component gets random points there."""
    from umap.spectral import spectral_layout

    parts = [swiss_roll(800, seed=s) + 1000 * s for s in range(3)]
    pair = np.array([[5e4, 0, 0], [5e4, 0, 1]], np.float32)
    x = np.concatenate(parts + [pair])
    pair_graph = scipy.sparse.csr_matrix(np.array([[0, 1], [1, 0]], np.float32))
    graph = scipy.sparse.block_diag([umap_graph(p) for p in parts] + [pair_graph], "csr")
    labels = np.repeat(np.arange(4), [800, 800, 800, 2])
    assert scipy.sparse.csgraph.connected_components(graph)[0] == 4
    ours = spectral_init(graph, 2, x, np.random.RandomState(0))
    ref = spectral_layout(x, graph, 2, np.random.RandomState(0))
    corners = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float32)
    half_gap = np.sqrt(2) / 2
    for part in range(4):
        spots = ours[labels == part]
        assert np.abs(spots - corners[part]).max() <= half_gap + 1e-6
        if part < 3:
            assert largest_angle(spots - corners[part], ref[labels == part] - corners[part]) < 1.0


def test_a_solver_that_does_not_converge_falls_back_to_random_points(monkeypatch):
    def no_convergence(*args, **kwargs):
        raise scipy.sparse.linalg.ArpackNoConvergence("no convergence", np.empty(0), np.empty(0))

    monkeypatch.setattr(scipy.sparse.linalg, "eigsh", no_convergence)
    x = swiss_roll(600)
    with pytest.warns(UserWarning, match="did not converge"):
        out = spectral_init(umap_graph(x), 2, x, np.random.RandomState(0))
    assert out.shape == (600, 2) and np.abs(out).max() <= 10


def test_many_far_apart_components_are_placed_by_their_distances_without_a_warning():
    """Twelve components whose centroids are thousands apart (umap-learn's exp(-d^2) is 0 for
    all of them): no scikit-learn warning, and the components' places follow their centroid
    distances (Spearman's rho > 0.8; 0.91 measured, umap-learn's ``spectral_layout`` 0.01).
    On the digits' classes moved apart (test_umap_layout.py) the start's rho is 0.91, umap-learn's
    -0.10 to 0.004."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(12, 3)) * 3000
    x = np.concatenate([swiss_roll(100, seed=s) + centres[s] for s in range(12)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = spectral_init(umap_graph(x, k=5), 2, x, np.random.RandomState(0))
    places = out.reshape(12, 100, 2).mean(1)
    assert spearmanr(pdist(centres), pdist(places))[0] > 0.8


@pytest.mark.parametrize("n", [2, 3, 4])
def test_a_handful_of_points_gets_finite_coordinates(n):
    """Fewer points than eigenvectors needed (2 in 2-D: random points, as for umap-learn's
    smallest components) and just enough (3, 4): finite coordinates of the right shape."""
    x = np.arange(3 * n, dtype=np.float32).reshape(n, 3) ** 1.5
    graph = umap_graph(x, k=n)
    out = spectral_init(graph, 2, x, np.random.RandomState(0))
    assert out.shape == (n, 2) and np.isfinite(out).all()


def test_components_with_one_centroid_get_finite_places():
    """Six copies of one pair of points, each pair its own component: all centroids coincide."""
    x = np.tile(np.array([[0, 0], [1, 1]], np.float32), (6, 1))
    pair = np.array([[0, 1], [1, 0]], np.float32)
    graph = scipy.sparse.block_diag([scipy.sparse.csr_matrix(pair)] * 6, "csr")
    out = spectral_init(graph, 2, x, np.random.RandomState(0))
    assert out.shape == (12, 2) and np.isfinite(out).all()


def test_beyond_the_cap_components_are_placed_by_their_principal_components(monkeypatch):
    """With the cap on spectrally placed components lowered to 5, twelve far-apart components
    are placed by their centroids' principal components: the places follow the distances."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    from explorer.kernel import spectral_init as module

    monkeypatch.setattr(module, "_SPECTRAL_PLACES_MAX", 5)
    centres = np.random.default_rng(0).normal(size=(12, 3)) * [3000, 2000, 10]
    x = np.concatenate([swiss_roll(100, seed=s) + centres[s] for s in range(12)])
    out = spectral_init(umap_graph(x, k=5), 2, x, np.random.RandomState(0))
    places = out.reshape(12, 100, 2).mean(1)
    assert np.isfinite(out).all()
    assert spearmanr(pdist(centres), pdist(places))[0] > 0.9
