"""UMAP's fuzzy neighbour graph from a k-NN table (McInnes, Healy & Melville 2018, section 3.1),
the same numbers as umap-learn's ``fuzzy_simplicial_set``, compiled into numba's disk cache.

For point ``i`` with neighbour distances ``d_i1 <= ... <= d_ik`` (the first being ``i`` itself,
at 0):

* ``rho_i`` is the distance to its nearest other point (with ``local_connectivity = c``: the
  ``floor(c)``-th smallest positive distance, interpolated towards the next by ``c - floor(c)``);
* ``sigma_i`` solves ``sum_{j >= 2} exp(-max(0, d_ij - rho_i) / sigma_i) = log2(k)`` by 64 steps
  of bisection (tolerance 1e-5), then is raised to at least ``1e-3`` times the mean distance of
  the row (of the whole table when ``rho_i = 0``);
* the directed weight is ``w_ij = exp(-(d_ij - rho_i) / sigma_i)``, 1 where ``d_ij <= rho_i``,
  0 for ``i`` itself;
* the graph is the fuzzy union ``W + W^T - W o W^T`` (``set_op_mix_ratio = 1``; with ratio ``r``:
  ``r (W + W^T - W o W^T) + (1 - r) W o W^T``).

Float32 throughout, as umap-learn computes it.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse

__all__ = ["fuzzy_graph"]

_TOLERANCE = 1e-5
_MIN_SCALE = 1e-3
_FLOAT32_MAX = np.finfo(np.float32).max


def fuzzy_graph(
    knn_idx: np.ndarray,
    knn_dist: np.ndarray,
    *,
    local_connectivity: float = 1.0,
    set_op_mix_ratio: float = 1.0,
) -> scipy.sparse.csr_matrix:
    """The symmetric fuzzy graph (CSR, float32, N x N) of a k-NN table.

    ``knn_idx`` (int, (N, k)) and ``knn_dist`` ((N, k)) list each point's ``k`` nearest points
    including itself first (at distance 0), as umap-learn's tables do; an index of -1 is a
    missing neighbour.
    """
    dist = np.ascontiguousarray(knn_dist, dtype=np.float32)
    idx = np.asarray(knn_idx)
    n, k = dist.shape
    sigma, rho = _smooth_knn_dist(dist, float(k), float(local_connectivity))
    excess = dist - rho[:, None]
    with np.errstate(over="ignore"):
        weight = np.exp(-(excess / sigma[:, None]))
    weight[(excess <= 0) | (sigma[:, None] == 0)] = 1.0
    weight[idx == np.arange(n)[:, None]] = 0.0
    kept = idx != -1
    rows = np.broadcast_to(np.arange(n)[:, None], idx.shape)[kept]
    w = scipy.sparse.coo_matrix((weight[kept], (rows, idx[kept])), shape=(n, n))
    w.eliminate_zeros()
    wt = w.transpose()
    both = w.multiply(wt)
    graph = set_op_mix_ratio * (w + wt - both) + (1.0 - set_op_mix_ratio) * both
    graph = scipy.sparse.csr_matrix(graph)
    graph.eliminate_zeros()
    return graph


@numba.njit(parallel=True, cache=True)
def _smooth_knn_dist(dist, k, local_connectivity):
    """(sigma, rho) per row, float32 (see the module docstring)."""
    n, width = dist.shape
    target = np.log2(k)
    rho = np.zeros(n, np.float32)
    sigma = np.zeros(n, np.float32)
    mean_all = np.mean(dist)
    index = int(np.floor(local_connectivity))
    fraction = local_connectivity - index
    for i in numba.prange(n):
        row = dist[i]
        positive = row[row > 0.0]
        if positive.shape[0] >= local_connectivity:
            if index > 0:
                rho[i] = positive[index - 1]
                if fraction > _TOLERANCE:
                    rho[i] += fraction * (positive[index] - positive[index - 1])
            else:
                rho[i] = fraction * positive[0]
        elif positive.shape[0] > 0:
            rho[i] = np.max(positive)
        lo, hi, mid = np.float32(0.0), np.float32(_FLOAT32_MAX), np.float32(1.0)
        for _ in range(64):
            total = np.float32(0.0)
            for j in range(1, width):
                d = row[j] - rho[i]
                total += np.exp(-(d / mid)) if d > 0 else np.float32(1.0)
            if np.fabs(total - target) < _TOLERANCE:
                break
            if total > target:
                hi = mid
                mid = (lo + hi) / np.float32(2.0)
            else:
                lo = mid
                if hi >= _FLOAT32_MAX:
                    mid *= np.float32(2.0)
                else:
                    mid = (lo + hi) / np.float32(2.0)
        sigma[i] = mid
        floor = _MIN_SCALE * (np.mean(row) if rho[i] > 0.0 else mean_all)
        if sigma[i] < floor:
            sigma[i] = floor
    return sigma, rho
