"""explorer's NN-descent (kernel.nn_descent) against exact neighbours (scikit-learn), and UMAP's
graph pieces (kernel.fuzzy_graph, umap_layout.ab_params/epochs_per_sample) against umap-learn's
own functions. The numba code compiles once per machine (~20 s, then cached)."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from explorer.kernel.nn_descent import nn_descent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().data.astype(np.float32)


def exact(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's exact neighbours without the point itself (brute force, float64)."""
    dist, idx = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x).kneighbors(x)
    return dist[:, 1:], idx[:, 1:]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = (found[:, :, None] == truth[:, None, :]).any(2).sum()
    return hits / truth.size


def test_recall_and_distances_against_exact_neighbours(digits):
    """On the 1,797 digits (64 dims): recall >= 0.99 (pynndescent with umap-learn's settings:
    0.995), the distances are the Euclidean ones of the indices, rows sorted, no point its own
    neighbour, no index twice in a row."""
    dist, idx = nn_descent(digits, 14, seed=0)
    true_dist, true_idx = exact(digits.astype(np.float64), 14)
    assert dist.shape == idx.shape == (len(digits), 14)
    assert dist.dtype == np.float32 and idx.dtype == np.int64
    assert recall(idx, true_idx) >= 0.99
    again = np.linalg.norm(digits[idx] - digits[:, None, :], axis=2)
    np.testing.assert_allclose(dist, again, rtol=1e-4, atol=1e-3)
    assert (np.diff(dist, axis=1) >= 0).all()
    assert not (idx == np.arange(len(digits))[:, None]).any()
    assert all(len(set(row)) == 14 for row in idx)
    # where NN-descent found the true neighbours, the k-th distance is the true one
    np.testing.assert_allclose(dist[:, -1].mean(), true_dist[:, -1].mean(), rtol=0.01)


def test_small_sets_are_exact_and_k_is_checked():
    """A set that fits in one tree leaf joins all its pairs: exact neighbours."""
    x = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    _, idx = nn_descent(x, 7)
    assert recall(idx, exact(x, 7)[1]) == 1.0
    _, idx = nn_descent(x, 49)  # every other point
    assert recall(idx, exact(x, 49)[1]) == 1.0
    for k in (0, 50):
        with pytest.raises(ValueError, match="N > k >= 1"):
            nn_descent(x, k)


def test_same_seed_same_neighbours_at_any_thread_count(digits):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = nn_descent(digits, 14, seed=5)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = nn_descent(digits, 14, seed=5)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one[1], many[1])
    np.testing.assert_array_equal(one[0], many[0])


def test_a_start_graph_is_kept_where_right_and_bad_entries_are_ignored(digits):
    """Started from the exact neighbours, NN-descent returns them (the same distances: the
    digits' integer pixels tie, and a tie may be broken by another index); started from a graph
    of garbage (itself, -1, out of range, repeats) it still finds the neighbours."""
    true_dist, true_idx = exact(digits.astype(np.float64), 14)
    dist, idx = nn_descent(digits, 14, start=true_idx)
    np.testing.assert_allclose(dist, true_dist, rtol=1e-5)
    assert recall(idx, true_idx) > 0.999
    n = len(digits)
    junk = np.tile(np.array([-1, n, n + 5, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]), (n, 1))
    junk[:, 0] = np.arange(n)
    _, idx = nn_descent(digits, 14, start=junk)
    assert recall(idx, true_idx) >= 0.95
    assert not (idx == np.arange(n)[:, None]).any() and ((idx >= 0) & (idx < n)).all()
    with pytest.raises(ValueError, match="start has shape"):
        nn_descent(digits, 14, start=true_idx[:, :5])


@pytest.mark.parametrize("leaf_size", [2, 7, 60])
def test_each_tree_s_leaves_split_the_points_into_parts_of_at_most_leaf_size(digits, leaf_size):
    """The forest's rows, tree by tree, hold every point exactly once, at most ``leaf_size`` per
    leaf (the copies of a point included: 30 copies of one row are halved until they fit)."""
    from explorer.kernel.nn_descent import _forest

    x = np.concatenate([digits[:500], np.repeat(digits[:1], 30, axis=0)])
    leaves = _forest(x, 3, leaf_size, 7)
    assert leaves.shape[1] == leaf_size and (leaves[:, 0] >= 0).all()
    seen = np.sort(leaves[leaves >= 0])
    assert np.array_equal(seen, np.repeat(np.arange(len(x)), 3))
    # rows are grouped by tree: the running count of points reaches len(x) at each tree's end
    sizes = np.cumsum((leaves >= 0).sum(1))
    assert {len(x), 2 * len(x), 3 * len(x)} <= set(sizes.tolist())


def test_duplicated_points_neither_loop_nor_list_themselves():
    """800 points that are 40 points repeated 20 times: every row holds 14 other points at
    distance 0 (copies of the point), none twice, never the point itself."""
    base = np.random.default_rng(1).normal(size=(40, 8)).astype(np.float32)
    x = np.repeat(base, 20, axis=0)
    dist, idx = nn_descent(x, 14, n_trees=2, leaf_size=10)
    assert not (idx == np.arange(len(x))[:, None]).any()
    assert all(len(set(row)) == 14 for row in idx)
    assert (dist == 0).mean() > 0.99


def test_fuzzy_graph_matches_umap_learn(digits):
    """The graph equals umap-learn's ``fuzzy_simplicial_set`` (same sparsity, weights within
    1e-5: exp in numpy vs numba differs by an ulp), and sigma/rho its ``smooth_knn_dist``."""
    from umap.umap_ import fuzzy_simplicial_set, smooth_knn_dist

    from explorer.kernel.fuzzy_graph import _smooth_knn_dist, fuzzy_graph

    n = len(digits)
    for k in (5, 15):
        d, i = exact(digits.astype(np.float64), k - 1)
        idx = np.hstack([np.arange(n)[:, None], i])
        dist = np.hstack([np.zeros((n, 1)), d]).astype(np.float32)
        sigma, rho = _smooth_knn_dist(dist, float(k), 1.0)
        ref_sigma, ref_rho = smooth_knn_dist(dist, float(k))
        np.testing.assert_array_equal(rho, ref_rho)
        np.testing.assert_allclose(sigma, ref_sigma, rtol=1e-4)
        for connectivity, mix in ((1.0, 1.0), (1.5, 0.5), (0.5, 1.0)):
            ours = fuzzy_graph(idx, dist, local_connectivity=connectivity, set_op_mix_ratio=mix)
            ref = fuzzy_simplicial_set(
                digits, k, np.random.RandomState(0), "euclidean", knn_indices=idx,
                knn_dists=dist, local_connectivity=connectivity, set_op_mix_ratio=mix,
            )[0].tocsr()  # fmt: skip
            ref.sort_indices()
            ours.sort_indices()
            np.testing.assert_array_equal(ours.indptr, ref.indptr)
            np.testing.assert_array_equal(ours.indices, ref.indices)
            np.testing.assert_allclose(ours.data, ref.data, atol=1e-5)


def test_curve_and_sampling_schedule_match_umap_learn():
    from umap.umap_ import find_ab_params, make_epochs_per_sample

    from explorer.kernel.umap_layout import ab_params, epochs_per_sample

    for spread, min_dist in ((1.0, 0.1), (1.0, 0.5), (2.0, 0.0)):
        np.testing.assert_allclose(ab_params(spread, min_dist), find_ab_params(spread, min_dist))
    w = np.random.default_rng(0).uniform(0, 1, 500).astype(np.float32)
    w[:5] = 0
    for epochs in (50, 200):
        np.testing.assert_array_equal(
            epochs_per_sample(w, epochs), make_epochs_per_sample(w, epochs)
        )
