"""Exact k-nearest neighbours by blocked matrix products, duplicate detection, k-NN label accuracy.

Distances are Euclidean. Candidates come from squared distances written as products,

.. math:: \\lVert x - y \\rVert^2 = \\lVert x \\rVert^2 + \\lVert y \\rVert^2 - 2\\, x \\cdot y
          \\quad (\\text{clamped at } 0),

computed one block of rows at a time, so nothing ``N x N`` is ever held, with ``torch.topk`` per
block. The data are centred first (distances do not change; the cancellation in the expansion
shrinks). The expansion loses accuracy for close pairs (its absolute error is about
``eps * (|x|^2 + |y|^2)``), so ``k + margin`` candidates are kept and their distances are then
recomputed exactly as ``||x - y||`` (float32 for float32/float16/bfloat16 input, float64 for
float64 input) and re-sorted: the returned distances are exact, and near-duplicate pairs get
distances of the size of their true separation, not of the rounding noise.

* CPU: float32 (float64 for float64 input). The block of rows ``I`` is multiplied only with the
  points after it, ``X[i0:]``, and its top-k is taken along both axes: along rows for the points
  of ``I``, along columns for the later points, which are merged into a running top-k. This halves
  the products; on a 2-core AVX2 CPU 50,000 x 384 with ``k = 2`` takes ~10 s (products ~75 %).
* CUDA: all rows against all points, in blocks of up to 4,096 rows (as many as a quarter of the
  free memory holds: fewer rows leave the product memory bound, each block reading all of ``X``),
  each block one ``addmm``, with the products in TF32 (``precision="tf32"``, default) and a
  larger candidate margin, then the exact float32 recomputation (``precision="fp32"`` for
  full-precision products). On an H200, 1M x 768 mixture data, TF32 found all the neighbours
  full float32 products find (20,000 queries, k = 15) in a fifth of the time; bfloat16 products
  found 53 % and were no faster, so they are not offered. At 1M points the top-k, not the products,
  is the cost: it runs on ~sqrt(N kc) group minima and members per row, not on N entries (the
  columns padded with points at infinity so that any N splits into groups).

Self-pairs are excluded by index, so a point's exact duplicate is its nearest neighbour at
distance 0. Ties are broken arbitrarily.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from explorer.memory_budget import available_bytes

__all__ = ["Duplicates", "dedupe", "find_duplicates", "knn", "knn_accuracy"]

#: Default relative tolerance of :func:`find_duplicates`: a pair closer than this times the median
#: non-zero nearest-neighbour distance is a duplicate.
DUPLICATE_RTOL = 1e-5

# elements of one block of products (2**25 float32 = 128 MiB)
_BLOCK_ELEMS = 1 << 25
_CPU_MARGIN = 4
# candidate rows of all N columns are padded to a multiple of this (see _candidates_rows)
_PAD_COLS = 512


def _as_tensor(X) -> torch.Tensor:
    t = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if t.ndim != 2:
        raise ValueError(f"expected an (N, D) matrix of points, got shape {tuple(t.shape)}")
    return t


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _block_rows(n_rows: int, n_cols: int, device: torch.device) -> int:
    """Rows per block of products with ``n_cols`` columns.

    CPU: a block of at most 128 MiB, 64 to 2,048 rows. CUDA: as many rows as a quarter of the
    free memory (:func:`~explorer.memory_budget.available_bytes`) holds at 8 bytes per product (a float32 block, plus the group minima and
    gathers), 64 to 4,096. The block's product reads all of ``x`` once, so a block of ``m`` rows
    does ``2 m D`` flops per 4 bytes read: 64 rows (the CPU rule at 1M points) keep the product
    memory bound at about 10 s for 1M x 768 on an H200, ~1,000 rows make it compute bound."""
    cols = max(n_cols, 1)
    if device.type == "cuda":
        free = available_bytes(device)
        return int(max(64, min(n_rows, free // 4 // (8 * cols), 4096)))
    return int(max(64, min(n_rows, _BLOCK_ELEMS // cols, 2048)))


def knn(
    X,
    k: int,
    *,
    queries=None,
    precision: str = "tf32",
    margin: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest neighbours of every point (or of ``X[queries]``) among the rows of ``X``.

    Parameters
    ----------
    X : array or tensor, shape (N, D)
        The points; runs on the tensor's device. float16/bfloat16 input is computed in float32.
    k : int
        Number of neighbours, ``1 <= k <= N - 1``.
    queries : int array, optional
        Row indices of ``X`` whose neighbours are wanted (default: all rows). A query point is
        never its own neighbour.
    precision : {"tf32", "fp32"}
        CUDA only: precision of the candidate products (the returned distances are always
        recomputed exactly). Ignored on the CPU.
    margin : int, optional
        Extra candidates kept for the exact recomputation (default 4 on the CPU and for "fp32",
        ``max(16, k)`` for "tf32").

    Returns
    -------
    distances : tensor (Q, k)
        Euclidean distances, ascending along each row, in float32 (float64 for float64 input).
    indices : tensor (Q, k), int64
        Row indices into ``X``.
    """
    t = _as_tensor(X)
    n = t.shape[0]
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be between 1 and N - 1 = {n - 1}, got {k}")
    dtype = _compute_dtype(t)
    x = t.to(dtype)
    x = x - x.mean(0, keepdim=True)
    cuda = x.device.type == "cuda"
    low = cuda and precision == "tf32" and dtype == torch.float32
    if precision not in ("tf32", "fp32"):
        raise ValueError(f"precision must be 'tf32' or 'fp32', got {precision!r}")
    if margin is None:
        margin = max(16, k) if low else _CPU_MARGIN
    kc = min(k + margin, n - 1)
    if queries is None and not cuda:
        cand = _candidates_symmetric(x, kc)
        rows = torch.arange(n, device=x.device)
    else:
        rows = (
            torch.arange(n, device=x.device)
            if queries is None
            else torch.as_tensor(queries, device=x.device).long().reshape(-1)
        )
        cand = _candidates_rows(x, rows, kc, precision if low else "fp32")
    return _refine(x, rows, cand, k)


def with_self(dist: torch.Tensor, idx: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A :func:`knn` result in umap-learn's precomputed-kNN convention (cuML and explorer's fuzzy
    graph follow it): column 0 is the point itself at distance 0. Returns ``(indices int64,
    distances float32)`` as numpy."""
    n = idx.shape[0]
    self_idx = torch.arange(n, device=idx.device).unsqueeze(1)
    idx = torch.cat([self_idx, idx.long()], 1)
    dist = torch.cat([torch.zeros_like(dist[:, :1]), dist], 1)
    return idx.cpu().numpy(), dist.cpu().float().numpy()


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(1)


def _candidates_rows(x: torch.Tensor, rows: torch.Tensor, kc: int, precision: str):
    """Indices (Q, kc) of the kc smallest expanded distances from ``x[rows]`` to all of ``x``.

    Each block's ``|y|^2 - 2 x.y`` is one ``addmm`` (the norms added by the product itself, no
    separate pass over the block), the row's own ``|x|^2`` left out (it does not change the
    row's ranking).
    """
    n = x.shape[0]
    cols, norms = x, _sq_norms(x)
    # columns padded to a multiple of _PAD_COLS with points at infinity (zero vectors, |y|^2 =
    # inf), so that the group minima of _tile_topk apply to any N (a prime N would leave a plain
    # top-k over whole rows)
    pad = (-n) % _PAD_COLS if n >= 4 * _PAD_COLS else 0
    if pad:
        cols = torch.cat([x, x.new_zeros(pad, x.shape[1])])
        norms = torch.cat([norms, norms.new_full((pad,), float("inf"))])
    cols_t = cols.T
    out = torch.empty(len(rows), kc, dtype=torch.long, device=x.device)
    step = _block_rows(len(rows), n, x.device)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        for s in range(0, len(rows), step):
            r = rows[s : s + step]
            d2 = torch.addmm(norms, x[r], cols_t, alpha=-2)
            d2[torch.arange(len(r), device=x.device), r] = float("inf")
            out[s : s + step] = _tile_topk(d2, kc, 1)[1]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return out


def _merge(vals, idx, new_vals, new_idx, kc: int):
    v = torch.cat([vals, new_vals], 1)
    i = torch.cat([idx, new_idx], 1)
    top = v.topk(kc, dim=1, largest=False, sorted=False)
    return top.values, i.gather(1, top.indices)


def _groups(size: int, kc: int) -> int:
    """Number of interleaved groups a tile side of ``size`` is reduced over (1 = plain top-k):
    a power of two that divides ``size``, leaves groups of at least ``4 kc`` entries, and is
    near ``sqrt(size / kc)`` for wide rows (top-k then runs on ``size / g`` minima and on the
    ``kc g`` entries of the chosen groups, both ~``sqrt(size kc)``), at least 16 if it fits."""
    g = 1 << (int(max(16.0, math.sqrt(size / kc))).bit_length() - 1)
    while g > 1 and (size % g or size // g < 4 * kc):
        g //= 2
    return g


def _tile_topk(d2: torch.Tensor, kc: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The kc smallest entries of a tile along ``dim`` (values, positions along ``dim``).

    The tile side is split into ``g`` interleaved groups and reduced by ``amin`` over them first
    (a vectorised pass); the kc smallest entries lie in the kc groups with the smallest minima
    (any entry outside them has kc smaller group minima below it), so top-k runs on ``1/g`` of
    the tile and on the ``kc * g`` entries of the chosen groups.
    """
    size = d2.shape[dim]
    g = _groups(size, kc)
    if g == 1:
        top = d2.topk(kc, dim=dim, largest=False, sorted=False)
        return top.values, top.indices
    w = size // g
    if dim == 1:
        grp = d2.view(d2.shape[0], g, w).amin(1).topk(kc, dim=1, largest=False, sorted=False)
        pos = (grp.indices.unsqueeze(2) + torch.arange(0, size, w, device=d2.device)).flatten(1)
    else:
        grp = d2.view(g, w, d2.shape[1]).amin(0).topk(kc, dim=0, largest=False, sorted=False)
        steps = torch.arange(0, size, w, device=d2.device).view(g, 1, 1)
        pos = (grp.indices.unsqueeze(0) + steps).flatten(0, 1)
    top = d2.gather(dim, pos).topk(kc, dim=dim, largest=False, sorted=False)
    return top.values, pos.gather(dim, top.indices)


def _candidates_symmetric(x: torch.Tensor, kc: int, tile: int = 1024):
    """Candidate indices (N, kc), every product computed once.

    Tiles ``(I, J)`` with ``J >= I`` of ``tile x tile`` (cache sized): the top-k along rows gives
    candidates to the points of ``I``, along columns to those of ``J`` (for ``J > I``).
    """
    n = x.shape[0]
    norms = _sq_norms(x)
    xt = x.T.contiguous()
    best_v = torch.full((n, kc), float("inf"), dtype=x.dtype, device=x.device)
    best_i = torch.zeros((n, kc), dtype=torch.long, device=x.device)
    for i0 in range(0, n, tile):
        i1 = min(i0 + tile, n)
        vals, idx = [best_v[i0:i1]], [best_i[i0:i1]]
        for j0 in range(i0, n, tile):
            j1 = min(j0 + tile, n)
            d2 = torch.addmm(norms[j0:j1].unsqueeze(0), x[i0:i1], xt[:, j0:j1], alpha=-2)
            d2.add_(norms[i0:i1].unsqueeze(1))
            if j0 == i0:
                d2.diagonal().fill_(float("inf"))
            kr = min(kc, j1 - j0)
            v, p = _tile_topk(d2, kr, 1)
            vals.append(v)
            idx.append(p + j0)
            if j0 > i0:
                v, p = _tile_topk(d2, min(kc, i1 - i0), 0)
                best_v[j0:j1], best_i[j0:j1] = _merge(
                    best_v[j0:j1], best_i[j0:j1], v.T, p.T + i0, kc
                )
        v, i = torch.cat(vals, 1), torch.cat(idx, 1)
        top = v.topk(kc, dim=1, largest=False, sorted=False)
        best_i[i0:i1] = i.gather(1, top.indices)
    return best_i


def _refine(x: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor, k: int):
    """Exact distances to the candidates, sorted; keep the first k."""
    dist = torch.empty(cand.shape, dtype=x.dtype, device=x.device)
    step = max(1, _BLOCK_ELEMS // 4 // max(1, cand.shape[1] * x.shape[1]))
    for s in range(0, len(rows), step):
        q = x[rows[s : s + step]].unsqueeze(1)
        dist[s : s + step] = torch.linalg.vector_norm(x[cand[s : s + step]] - q, dim=2)
    order = dist.argsort(dim=1, stable=True)[:, :k]
    return dist.gather(1, order), cand.gather(1, order)


class Duplicates:
    """Result of :func:`find_duplicates`.

    Attributes
    ----------
    keep : ndarray of bool, shape (N,)
        True for the points kept: one representative (the lowest index) of every group of
        duplicates, and every point that has none.
    n_duplicates : int
        ``N - keep.sum()``, the number of points removed.
    tol : float
        The absolute distance below which two points were taken as duplicates.
    """

    def __init__(self, keep: np.ndarray, tol: float):
        self.keep = keep
        self.tol = tol
        self.n_duplicates = int(len(keep) - keep.sum())

    @property
    def indices(self) -> np.ndarray:
        """Indices of the kept points, ascending."""
        return np.flatnonzero(self.keep)

    def __repr__(self) -> str:
        return f"Duplicates(n_points={len(self.keep)}, n_duplicates={self.n_duplicates})"


def _duplicate_tol(r1: torch.Tensor, rtol: float) -> float:
    nz = r1[r1 > 0]
    return float(nz.median()) * rtol if len(nz) else 0.0


def find_duplicates(
    X, *, rtol: float = DUPLICATE_RTOL, k: int = 8, neighbors=None, tol: float | None = None
) -> Duplicates:
    """Exact and near duplicate points.

    Two points are duplicates when their distance is at most

    .. math:: \\mathrm{tol} = \\mathrm{rtol} \\cdot \\operatorname{median}_i \\{ r_1(i) : r_1(i) > 0 \\}

    with ``r_1(i)`` the distance from point ``i`` to its nearest neighbour (exact copies have
    ``r_1 = 0``). The default ``rtol = 1e-5`` is far below any distance between distinct points
    of a sample (for points on a d-dimensional manifold a fraction of about ``rtol^d`` of the
    nearest-neighbour distances falls below it), far above float32 rounding of a pair
    (``~1e-7`` of the coordinates' size; a copy jittered at float32 epsilon is caught). Pairs
    within ``tol`` among each point's ``k`` nearest neighbours are linked and every connected
    group keeps its lowest index. A group of more than ``k + 1`` copies can leave copies that
    were not linked; :func:`dedupe` therefore repeats until none is left.

    Parameters
    ----------
    X : array or tensor, shape (N, D)
    rtol : float
        Tolerance relative to the median non-zero nearest-neighbour distance.
    k : int
        Neighbours searched for duplicates.
    neighbors : (distances, indices), optional
        A precomputed :func:`knn` of ``X`` (any number of columns) to reuse.
    tol : float, optional
        An absolute tolerance; overrides ``rtol``.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t = _as_tensor(X)
    n = t.shape[0]
    if neighbors is None:
        neighbors = knn(t, min(k, n - 1))
    dist, idx = (v.cpu() for v in neighbors)
    if tol is None:
        tol = _duplicate_tol(dist[:, 0], rtol)
    close = dist <= tol
    if not bool(close.any()):
        return Duplicates(np.ones(n, dtype=bool), tol)
    rows = torch.arange(n).unsqueeze(1).expand_as(idx)[close].numpy()
    cols = idx[close].numpy()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    first = np.full(comp.max() + 1, n)
    np.minimum.at(first, comp, np.arange(n))
    return Duplicates(first[comp] == np.arange(n), tol)


def dedupe(X, *, rtol: float = DUPLICATE_RTOL, k: int = 8) -> Duplicates:
    """Find all duplicates of ``X`` (:func:`find_duplicates`, repeated until the kept points have
    none, with the tolerance of the first pass).

    Returns
    -------
    Duplicates
        ``keep`` (mask), ``indices`` (kept rows), ``n_duplicates``, ``tol``.
    """
    t = _as_tensor(X)
    keep = np.ones(t.shape[0], dtype=bool)
    tol = None
    while keep.sum() > 1:
        kept = np.flatnonzero(keep)
        dup = find_duplicates(t[torch.as_tensor(kept, device=t.device)], rtol=rtol, k=k, tol=tol)
        tol = dup.tol
        if dup.n_duplicates == 0:
            break
        keep[kept[~dup.keep]] = False
    return Duplicates(keep, tol or 0.0)


def knn_accuracy(X, labels, k: int = 10, *, neighbors=None) -> float:
    """Leave-one-out k-NN accuracy of ``labels`` in the space of ``X``.

    Each point is classified by a majority vote of its ``k`` nearest other points (ties go to
    the class whose votes have the smallest summed rank, i.e. the nearer ones); the result is the
    fraction classified correctly. Duplicates are not removed: a copy votes for its twin.

    Parameters
    ----------
    X : array or tensor, shape (N, D)
    labels : array, shape (N,)
        Any hashable values.
    k : int, default 10
    neighbors : (distances, indices), optional
        A precomputed :func:`knn` of ``X`` with at least ``k`` columns.
    """
    _, codes = np.unique(np.asarray(labels), return_inverse=True)
    codes = codes.reshape(-1)
    t = _as_tensor(X)
    if len(codes) != t.shape[0]:
        raise ValueError(f"{len(codes)} labels for {t.shape[0]} points")
    if neighbors is None:
        neighbors = knn(t, min(k, t.shape[0] - 1))
    idx = neighbors[1][:, :k].cpu().numpy()
    votes = codes[idx]
    n_cls = codes.max() + 1
    score = np.zeros((len(codes), n_cls))
    # one vote per neighbour, minus a tie-breaking fraction that favours nearer neighbours
    weight = 1.0 - np.arange(idx.shape[1]) / (idx.shape[1] * (idx.shape[1] + 1.0))
    np.add.at(score, (np.arange(len(codes))[:, None], votes), weight[None, :])
    return float(np.mean(score.argmax(1) == codes))
