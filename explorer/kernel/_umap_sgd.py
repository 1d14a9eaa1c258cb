"""numba kernel of :func:`explorer.kernel.umap_layout`: one epoch of UMAP's SGD, parallel over
points and deterministic (imported lazily: importing numba takes a while).

Point ``j`` is moved only by the thread that owns it, along the edges ``(j, k)`` of its row of the
symmetric fuzzy graph (CSR, so each undirected edge is seen from both ends), against the positions
of the other points at the start of the epoch (``prev``), with negative samples drawn by a
counter-based hash of ``(seed, j, epoch, draw)``: no thread reads what another writes during an
epoch, so the result depends on the seed only, not on the number of threads or their timing.

The update of one sampled edge is umap-learn's (McInnes et al. 2018; ``optimize_layout_euclidean``):
with ``d2 = ||y_j - y_k||^2``, attraction ``y_j += alpha * clip(-2ab d2^(b-1) / (1 + a d2^b)
(y_j - y_k))`` and, for each of the edge's negative samples ``m``, repulsion
``y_j += alpha * clip(2 gamma b / ((0.001 + d2) (1 + a d2^b)) (y_j - y_m))``, ``clip`` to [-4, 4].
umap-learn also moves ``y_k`` by the opposite attraction (``move_other``) and meets every edge from
both ends; here ``k`` moves itself when its own row meets the edge, so the attraction is applied
with weight ``attract = 2`` to give every point the same pull per sample as there.

The negative samples of one sampled edge are all measured from the point's position after that
edge's attraction, and their moves are summed and applied together (umap-learn moves the point
after each): the samples no longer wait on each other, so the processor overlaps their powers and
divisions, ~20 % faster per epoch at 50,000 points, at the same quality (the tests against
umap-learn, ``benchmarks/projection_speed.py``).

The arithmetic is float32, as the positions are (float64 powers and divisions made an epoch ~1.5x
slower), and a negative sample is ``m = floor(h N / 2^32)`` from the high 32 bits ``h`` of the
hash (Lemire 2019: no 64-bit division; N < 2^32).
"""

from __future__ import annotations

import numba
import numpy as np

from explorer.kernel._random import GOLDEN, below, mix

_FOUR = np.float32(4.0)


@numba.njit(inline="always")
def _clip(v):
    return _FOUR if v > _FOUR else (-_FOUR if v < -_FOUR else v)


@numba.njit(parallel=True, fastmath=True, cache=True)
def sgd_epoch(
    y,
    prev,
    indptr,
    tail,
    epochs_per_sample,
    next_sample,
    epochs_per_negative,
    next_negative,
    a,
    b,
    gamma,
    alpha,
    attract,
    epoch,
    seed,
):
    """One epoch in place on ``y`` (float32, (N, dim)); ``prev`` is a copy of ``y`` before it."""
    n, dim = y.shape
    # float32 arithmetic throughout (float64 pow and division cost ~1.5x the time per epoch)
    a, b, gamma = np.float32(a), np.float32(b), np.float32(gamma)
    alpha = np.float32(alpha)
    pull = np.float32(attract) * alpha
    zero, one, two, tiny = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(0.001)
    base = mix(np.uint64(seed) * GOLDEN + np.uint64(epoch))
    steps = np.empty((n, dim), np.float32)
    for j in numba.prange(n):
        step = steps[j]  # the summed repulsion of one edge's negative samples
        stream = mix(base ^ (np.uint64(j) * GOLDEN))
        draw = np.uint64(0)
        for e in range(indptr[j], indptr[j + 1]):
            if next_sample[e] > epoch:
                continue
            k = tail[e]
            d2 = zero
            for d in range(dim):
                diff = y[j, d] - prev[k, d]
                d2 += diff * diff
            if d2 > zero:
                d2b = d2**b  # one power: d2^(b-1) = d2^b / d2
                coeff = -two * a * b * (d2b / d2) / (a * d2b + one)
                for d in range(dim):
                    y[j, d] += pull * _clip(coeff * (y[j, d] - prev[k, d]))
            next_sample[e] += epochs_per_sample[e]

            n_neg = int((epoch - next_negative[e]) / epochs_per_negative[e])
            for d in range(dim):
                step[d] = zero
            for _ in range(n_neg):
                draw += np.uint64(1)
                m = below(mix(stream + draw * GOLDEN), n)
                if m == j:
                    continue
                d2 = zero
                for d in range(dim):
                    diff = y[j, d] - prev[m, d]
                    d2 += diff * diff
                if d2 > zero:
                    coeff = two * gamma * b / ((tiny + d2) * (a * d2**b + one))
                    for d in range(dim):
                        step[d] += alpha * _clip(coeff * (y[j, d] - prev[m, d]))
            for d in range(dim):
                y[j, d] += step[d]
            next_negative[e] += n_neg * epochs_per_negative[e]
