"""UMAP (McInnes, Healy & Melville 2018) with exact or NN-descent neighbours and a parallel,
seeded layout, every compiled part in numba's disk cache.

:func:`umap_layout` is umap-learn's algorithm, rewritten where that makes it faster or
reproducible and checked against umap-learn's own functions in the tests:

1. **neighbours**: the exact k nearest neighbours of :func:`explorer.kernel.knn` (blocked matrix
   products on the data's device) up to 20,000 points on the CPU and at any size on a GPU;
   above that on the CPU, where the exact search grows as N^2 (50,000 x 384 on 2 cores: 15 s
   exact, 2.5 to 4.5 s by NN-descent), :func:`explorer.kernel.nn_descent.nn_descent` (umap-learn's
   pynndescent settings, seeded, thread-count independent, and able to start from the previous
   depth's neighbours);
2. **graph**: :func:`explorer.kernel.fuzzy_graph.fuzzy_graph`, the numbers of umap-learn's
   ``fuzzy_simplicial_set`` (smooth k-NN distances, fuzzy union ``A + A^T - A o A^T``); edges
   below ``max w / n_epochs`` are pruned;
3. **initialisation**: umap-learn's spectral layout (:mod:`explorer.kernel.spectral_init`: the
   same eigenvectors found with at most 32 Lanczos vectors, not ``sqrt(N)``: ~10x faster at 200,000
   points, and many components placed by scaled centroid distances), PCA, or a given layout,
   scaled to coordinates in [-10, 10];
4. **layout**: the stochastic gradient descent of ``optimize_layout_euclidean`` (same edge
   sampling schedule, same attraction and repulsion, same clipping and learning-rate decay
   ``alpha_n = alpha_0 (1 - n / n_epochs)``), run parallel over points by a numba kernel in which
   each point is moved only by its own thread, against the other points' positions at the start
   of the epoch, a point's negative samples of one epoch summed from one position in vector code,
   and the schedule kept in float32 (:mod:`explorer.kernel._umap_sgd`); 1 to 3 components.

umap-learn's pynndescent cannot use numba's disk cache and compiles for ~40 s in every new
process; nothing here does after the first run on a machine.

**What the seed guarantees**: exact neighbours and the graph are deterministic; NN-descent, the
spectral initialisation and the layout's negative samples are seeded, and every random draw is a
counter-based hash of ``(seed, ...)`` with no thread reading another's writes within a step. The
same input, options and seed therefore give the same layout bit for bit whatever the number of
threads (``NUMBA_NUM_THREADS``) or their timing, on the same machine and library versions
(floating-point reductions in BLAS and ARPACK may differ between CPUs). umap-learn itself is
reproducible only single-threaded (``random_state`` set forces ``n_jobs=1``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["ab_params", "epochs_per_sample", "search_neighbors", "umap_layout", "warm_epochs"]

#: Above this many points on the CPU, ``neighbor_search="auto"`` uses NN-descent.
_EXACT_MAX_CPU = 20_000

#: Fraction of changed neighbours from which a warm start runs every epoch (see warm_epochs).
_FULL_CHANGE = 0.2


def umap_layout(
    X,
    n_components: int = 2,
    *,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    spread: float = 1.0,
    n_epochs: int | None = None,
    init: str | np.ndarray = "spectral",
    seed: int = 0,
    learning_rate: float = 1.0,
    repulsion_strength: float = 1.0,
    negative_sample_rate: int = 5,
    local_connectivity: float = 1.0,
    set_op_mix_ratio: float = 1.0,
    neighbors: tuple | None = None,
    neighbor_search: str = "auto",
    previous_neighbors: np.ndarray | None = None,
    min_epochs: int = 25,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """A UMAP layout of the rows of ``X`` (see the module docstring for what differs from
    umap-learn and what the seed guarantees).

    Parameters
    ----------
    X : array or tensor, shape (N, D)
        The neighbours are searched on the tensor's device; the rest runs on the CPU.
    n_components : {1, 2, 3}
    n_neighbors, min_dist, spread, learning_rate, repulsion_strength, negative_sample_rate,
    local_connectivity, set_op_mix_ratio
        As in ``umap.UMAP`` (``n_neighbors`` counts the point itself, as there).
    n_epochs : int, optional
        200, or for one component up to 10,000 points umap-learn's 500. umap-learn runs 500
        below 10,000 points in any dimension, but in 2-D 200 keep the quality on small sets: on
        scikit-learn's digits (1,797 points) trustworthiness (k = 10) 0.9888 and 10-NN label
        accuracy 0.9889, vs 0.9885/0.9878 for umap-learn's parallel mode. A 1-D layout needs the
        500: 0.9538/0.9605 at 200 epochs, 0.9761/0.9855 at 500, 0.9695/0.9861 for umap-learn
        (``tests/unit/test_umap_layout.py`` checks 1 to 3 components within 0.01).
    init : {"spectral", "pca"} or array (N, n_components)
        ``"spectral"``: umap-learn's spectral layout of the graph (see above); ``"pca"``: the
        first principal components; both scaled to [-10, 10] with seeded noise of 1e-4. An array
        is used as given (e.g. the layout of the previous depth).
    seed : int
    neighbors : (distances, indices), optional
        A precomputed :func:`explorer.kernel.knn` of ``X`` with ``n_neighbors - 1`` columns.
    neighbor_search : {"auto", "exact", "nndescent"}
        ``"auto"``: exact on a GPU or up to 20,000 points, NN-descent above (see above).
    previous_neighbors : int array (N, >= n_neighbors - 1), optional
        With an array ``init`` (a warm start from the previous depth's layout): that depth's
        neighbour indices. The layout then runs :func:`warm_epochs` epochs (fewer the fewer
        neighbours changed) instead of ``n_epochs``: the last of the ``n_epochs`` schedule, so
        the learning rate starts at ``learning_rate * epochs / n_epochs`` and decays to 0 (a warm
        start at the full rate shakes the layout up and, in 50 epochs, settles it worse:
        trustworthiness 0.936 vs 0.945 cold, 0.946 resumed, on the two-depth set of
        ``tests/unit/test_umap_layout.py``).
    min_epochs : int, default 25
        The fewest epochs of a warm start.
    progress : callable, optional
        ``progress(fraction)`` with the fraction of the work done (the neighbours count as 20 %,
        the graph and initialisation as 10 %, each epoch as its share of the rest).

    Returns
    -------
    ndarray (N, n_components), float32
    """
    from explorer.kernel._umap_sgd import sgd_epoch
    from explorer.kernel.fuzzy_graph import fuzzy_graph
    from explorer.kernel.neighbors import with_self

    report = progress or (lambda fraction: None)
    t = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    n = t.shape[0]
    if not 2 <= n_neighbors <= n:
        raise ValueError(f"n_neighbors must be between 2 and N = {n}, got {n_neighbors}")
    if not 1 <= n_components <= 3:
        raise ValueError(
            f"n_components must be 1, 2 or 3, got {n_components} (umap-learn lays out more: "
            "implementation='umap-learn')"
        )
    if n_epochs is None:
        n_epochs = 500 if n_components == 1 and n <= 10_000 else 200
    dist, idx = neighbors or search_neighbors(t, n_neighbors, seed, neighbor_search)
    knn_idx, knn_dist = with_self(dist[:, : n_neighbors - 1], idx[:, : n_neighbors - 1])
    report(0.2)
    run = n_epochs  # a warm start runs the last `run` epochs of the n_epochs schedule
    if previous_neighbors is not None and not isinstance(init, str):
        run = warm_epochs(knn_idx[:, 1:], previous_neighbors, n_epochs, min_epochs)

    rng = np.random.RandomState(seed)
    data = t.detach().cpu().to(torch.float32).numpy()
    graph = fuzzy_graph(
        knn_idx,
        knn_dist,
        set_op_mix_ratio=set_op_mix_ratio,
        local_connectivity=local_connectivity,
    )
    graph.data[graph.data < graph.data.max() / float(n_epochs)] = 0.0
    graph.eliminate_zeros()
    graph.sort_indices()
    y = _initial(data, graph, n_components, init, rng)
    report(0.3)

    a, b = ab_params(spread, min_dist)
    # the schedule in float32 and the edges' ends in int32: 16 bytes per edge instead of 40
    # streamed every epoch (~10 % of an epoch at 50,000 points); float32 rounding moves a sample
    # to the next epoch only where umap-learn's float64 schedule puts it within ~1e-3 of one
    eps = epochs_per_sample(graph.data, n_epochs)
    eps_neg = (eps / negative_sample_rate).astype(np.float32)
    eps = eps.astype(np.float32)
    next_sample, next_neg = eps.copy(), eps_neg.copy()
    indptr = graph.indptr.astype(np.int64)
    tail = graph.indices.astype(np.int32)
    prev = np.empty_like(y)
    for epoch in range(run):
        alpha = learning_rate * (run - epoch) / n_epochs
        np.copyto(prev, y)
        sgd_epoch(
            y, prev, indptr, tail, eps, next_sample, eps_neg, next_neg,
            float(a), float(b), float(repulsion_strength), alpha, 2.0, epoch, seed,
        )  # fmt: skip
        if epoch % 10 == 9:
            report(0.3 + 0.7 * (epoch + 1) / run)
    report(1.0)
    return y


def search_neighbors(
    t: torch.Tensor,
    n_neighbors: int,
    seed: int = 0,
    how: str = "auto",
    start: np.ndarray | None = None,
):
    """The ``n_neighbors - 1`` nearest neighbours of each row of ``t`` other than itself, as
    tensors (distances, indices): exact (:func:`explorer.kernel.knn`) or by NN-descent; ``how``
    as ``neighbor_search`` of :func:`umap_layout`.

    ``start`` (int array (N, >= n_neighbors - 1), e.g. the previous depth's neighbours): NN-descent
    starts from these candidates instead of random-projection trees, which shares the search
    between depths whose neighbours changed little. On two depths of 50,000 noisy clusters in 384
    dimensions (``benchmarks/projection_pictures.py``, 2 cores) the first depth takes 4.5 s
    (recall 0.736; pynndescent 2.8 s, 0.760) and the second, started from the first's, 1.3 s
    (recall 0.747; pynndescent from the same start and its trees, 7.2 s, 0.766). The exact
    search ignores it."""
    from explorer.kernel.neighbors import knn

    if how not in ("auto", "exact", "nndescent"):
        raise ValueError(f"neighbor_search must be 'auto', 'exact' or 'nndescent', got {how!r}")
    if how == "auto":
        how = "exact" if t.device.type == "cuda" or len(t) <= _EXACT_MAX_CPU else "nndescent"
    if how == "exact":
        return knn(t, n_neighbors - 1)
    return _nndescent(t, n_neighbors, seed, start)


def warm_epochs(idx, previous_idx, n_epochs: int, min_epochs: int = 25) -> int:
    """Epochs for a layout that starts from the previous depth's: fewer the fewer neighbours
    changed between the depths.

    With ``c`` the fraction of neighbour pairs that changed, ``c = 1 - mean_i |N(i) & N'(i)| / k``
    (``N(i)``, ``N'(i)``: point i's ``k`` neighbours at this and at the previous depth), the
    layout runs ``clip(round(n_epochs * c / 0.2), min_epochs, n_epochs)`` epochs: all of them
    from 20 % changed on. Measured (200 epochs, trustworthiness k = 10, against a cold spectral
    start at the same depth): the clusters of ``benchmarks/projection_pictures.py`` (3,000
    points, c = 0) lose at most 0.0015 at 50 epochs; the digits demo's hidden layers (450 points,
    c = 0.22 to 0.34) lose up to 0.019 at 100 epochs, so there every epoch runs (both with the
    learning rate restarted at 1). With the schedule resumed (:func:`umap_layout`), 25 epochs
    keep it: -0.0016 to +0.0011 on the two-depth set of ``tests/unit/test_umap_layout.py``
    (1,200 points) and on those clusters (5,000 points), two seeds each.
    """
    idx = np.asarray(idx)
    prev = np.asarray(previous_idx)
    k = idx.shape[1]
    if prev.shape[0] != idx.shape[0] or prev.shape[1] < k:
        raise ValueError(
            f"previous_neighbors has shape {prev.shape}, expected ({len(idx)}, >= {k})"
        )
    both = np.concatenate([idx, prev[:, :k]], axis=1)
    both.sort(axis=1)
    kept = np.count_nonzero(both[:, 1:] == both[:, :-1]) / idx.size
    epochs = round(n_epochs * (1.0 - kept) / _FULL_CHANGE)
    return int(min(n_epochs, max(min(min_epochs, n_epochs), epochs)))


def _nndescent(t: torch.Tensor, n_neighbors: int, seed: int, start: np.ndarray | None = None):
    """NN-descent's neighbours without the point itself: (distances, indices) as tensors;
    ``start`` as in :func:`search_neighbors`."""
    from explorer.kernel.nn_descent import nn_descent

    data = t.detach().cpu().to(torch.float32).numpy()
    dist, idx = nn_descent(data, n_neighbors - 1, seed=seed, start=start)
    return torch.from_numpy(dist), torch.from_numpy(idx)


def ab_params(spread: float, min_dist: float) -> tuple[float, float]:
    """``(a, b)`` of the low-dimensional similarity ``1 / (1 + a d^(2b))``: the least-squares fit
    (``scipy.optimize.curve_fit``) to ``1`` for ``d < min_dist`` and
    ``exp(-(d - min_dist) / spread)`` beyond, at 300 points of ``[0, 3 spread]`` (umap-learn's
    ``find_ab_params``)."""
    from scipy.optimize import curve_fit

    d = np.linspace(0, spread * 3, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = curve_fit(lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b)), d, target)
    return float(a), float(b)


def epochs_per_sample(weights: np.ndarray, n_epochs: int) -> np.ndarray:
    """Epochs between two samples of each edge: ``max w / w`` (umap-learn's
    ``make_epochs_per_sample``: an edge of the largest weight is sampled every epoch, one of
    weight ``w`` ``n_epochs w / max w`` times in all); -1 for an edge never sampled."""
    samples = n_epochs * (weights / weights.max())
    out = np.full(len(weights), -1.0)
    out[samples > 0] = float(n_epochs) / samples[samples > 0].astype(np.float64)
    return out


def _initial(data, graph, n_components, init, rng) -> np.ndarray:
    if not isinstance(init, str):
        y = np.array(init, dtype=np.float32, copy=True)
        if y.shape != (len(data), n_components):
            raise ValueError(f"init has shape {y.shape}, expected {(len(data), n_components)}")
        return np.ascontiguousarray(y)
    if init == "spectral":
        from explorer.kernel.spectral_init import spectral_init

        y = spectral_init(graph, n_components, data, rng)
    elif init == "pca":
        from explorer.kernel.projection import pca

        y = pca(torch.from_numpy(data), n_components).coords.numpy()
    else:
        raise ValueError(f"init must be 'spectral', 'pca' or an array, got {init!r}")
    y = (y * (10.0 / np.abs(y).max())).astype(np.float32)
    return y + rng.normal(scale=1e-4, size=y.shape).astype(np.float32)
