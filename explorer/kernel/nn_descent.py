"""Approximate k nearest neighbours by NN-descent, seeded by random-projection trees or by a
previous neighbour graph; parallel, deterministic, and compiled once into numba's disk cache.

**NN-descent** (Dong, Charikar & Li 2011, "Efficient k-nearest neighbor graph construction for
generic similarity measures"): a neighbour of a neighbour is likely a neighbour. Each point keeps
its ``k`` best candidates found so far, sorted by (squared Euclidean distance, index). Each round:

1. every point ``v`` gathers its neighbours and reverse neighbours (the points that list ``v``),
   split into *new* (entered its list since ``v`` was last joined) and *old*, keeping at most
   ``max_candidates`` of each, chosen by a random priority (pynndescent's sampling);
2. the **local join**: every pair ``(p, q)`` of ``v``'s candidates with at least one new is
   measured, and ``q`` is offered to ``p``'s list and ``p`` to ``q``'s;
3. the round ends when fewer than ``delta * N * k`` offers changed a list, or after ``n_iters``.

**Initialisation**: the leaves of ``n_trees`` random-projection trees (Dasgupta & Freund 2008;
each node splits its points by the hyperplane halfway between two of them, drawn at random, down
to ``leaf_size`` points) join all their pairs, as in pynndescent, and lists still short are
filled with random points. ``start`` (e.g. the previous depth's neighbours) replaces the trees.

**Determinism**: random draws are hashes of ``(seed, counters)``; the offers of a block of
candidate lists are collected first and then applied, each list by one thread in the offers'
order, and a list keeps the ``k`` smallest (distance, index) pairs offered whatever their order,
so the result depends on the seed only, not on the number of threads (nor, but for the count
that stops the rounds, on the size of the blocks).

**Memory**, beyond the data: the candidate lists, ``8 m`` bytes a point (480 MB at a million
points), the neighbour lists and their reverse index, ``17 k`` bytes; the forest (``5 n_trees``
bytes a point, and its leaves padded to ``leaf_size``, about ``7 n_trees`` bytes a point as
they are ~58 % full) is freed before the rounds start. 1,000,000 x 32 with ``k = 14`` peaks at
0.95 GB above the process (2.2 GB when the candidates' priorities were held for all points and
the forest during the rounds).

The parameters default to umap-learn's for pynndescent (``n_trees = 5 + round(sqrt(N) / 20)``,
at most 64; ``n_iters = max(5, round(log2 N))``; ``max_candidates = 60``; pynndescent's
``leaf_size = max(60, min(256, 5 k))``). Unlike pynndescent, every kernel here is ``cache=True``:
a new process loads compiled code instead of compiling for ~40 s.
"""

from __future__ import annotations

import numba
import numpy as np

from explorer.kernel._random import GOLDEN, below, mix

__all__ = ["nn_descent"]

_NO_PRIORITY = np.uint64(0xFFFFFFFFFFFFFFFF)


def nn_descent(
    X: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    start: np.ndarray | None = None,
    n_trees: int | None = None,
    leaf_size: int | None = None,
    n_iters: int | None = None,
    max_candidates: int = 60,
    delta: float = 0.001,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` approximate nearest neighbours of each row of ``X`` other than itself.

    Parameters
    ----------
    X : float array (N, D)
        Euclidean distances; computed in float32.
    k : int
        ``1 <= k < N``.
    seed : int
    start : int array (N, >= k), optional
        Initial candidates per point (e.g. the previous depth's neighbours); entries that are
        negative, out of range or the point itself are ignored. Replaces the trees.
    n_trees, leaf_size, n_iters, max_candidates, delta
        See the module docstring.

    Returns
    -------
    (distances float32 (N, k), indices int64 (N, k)), each row sorted by distance.
    """
    x = np.ascontiguousarray(X, dtype=np.float32)
    n = x.shape[0]
    if x.ndim != 2 or not 1 <= k < n:
        raise ValueError(f"need an (N, D) array with N > k >= 1, got shape {x.shape} and k={k}")
    n_iters = max(5, int(round(np.log2(n)))) if n_iters is None else n_iters
    idx = np.full((n, k), -1, np.int32)
    dist = np.full((n, k), np.inf, np.float32)
    new = np.zeros((n, k), np.uint8)
    room = _OfferRoom()
    if start is not None:
        start = np.asarray(start)
        if start.ndim != 2 or start.shape[0] != n or start.shape[1] < k:
            raise ValueError(f"start has shape {start.shape}, expected ({n}, >= {k})")
        _from_graph(x, idx, dist, new, np.ascontiguousarray(start[:, :k], dtype=np.int64))
    else:
        trees = min(64, 5 + int(round(n**0.5 / 20))) if n_trees is None else n_trees
        leaf = max(60, min(256, 5 * k)) if leaf_size is None else leaf_size
        leaves = _forest(x, trees, max(leaf, 2), seed)
        _join_lists(x, idx, dist, new, leaves, np.empty((len(leaves), 0), np.int32), room)
        del leaves  # freed before the rounds allocate their candidate lists
    _fill_random(x, idx, dist, new, seed)
    # the candidate lists, filled anew each round in the same memory (fresh memory is slow to
    # touch: allocating them every round made the step 0.76 s per round at 200,000 x 32, not 0.34)
    fresh, old = (np.empty((n, max_candidates), np.int32) for _ in range(2))
    for round_ in range(n_iters):
        _candidates(idx, new, fresh, old, seed, round_)
        changed = _join_lists(x, idx, dist, new, fresh, old, room)
        if changed <= delta * n * k:
            break
    return np.sqrt(dist), idx.astype(np.int64)


def _join_lists(x, idx, dist, new, fresh, old, room, pairs_per_block: int = 1 << 21) -> int:
    """Local joins of the candidate lists (rows of ``fresh`` x (``fresh`` and ``old``)); returns
    the lists changed. The rows go in blocks whose joins measure at most ``pairs_per_block``
    pairs (a list of ``f`` new and ``o`` old candidates measures ``f (f - 1) / 2 + f o``), so the
    offers of a block fit in ``room`` (an :class:`_OfferRoom`) and few blocks are needed when
    the lists are short."""
    f = np.count_nonzero(fresh >= 0, axis=1).astype(np.int64)
    o = np.count_nonzero(old >= 0, axis=1).astype(np.int64)
    ends = np.cumsum(f * (f - 1) // 2 + f * o)  # pairs of the rows up to each
    changed, b0 = 0, 0
    while b0 < len(fresh):
        before = ends[b0 - 1] if b0 else 0
        b1 = max(b0 + 1, int(np.searchsorted(ends, before + pairs_per_block, side="right")))
        slots = np.concatenate([[0], ends[b0:b1] - before])  # row b0 + v: slots[v]:slots[v + 1]
        offers = room.at_least(max(slots[-1], pairs_per_block))
        counts = _offers(x, dist, fresh[b0:b1], old[b0:b1], slots, *offers)
        changed += _apply(idx, dist, new, numba.get_num_threads(), slots, *offers, counts)
        b0 = b1
    return changed


class _OfferRoom:
    """The offers of one block, (p, q, squared distance), in memory kept from block to block
    and round to round: fresh memory is slow to touch."""

    def __init__(self) -> None:
        self.p = self.q = np.empty(0, np.int32)
        self.d = np.empty(0, np.float32)

    def at_least(self, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self.p) < size:
            self.p, self.q = np.empty(size, np.int32), np.empty(size, np.int32)
            self.d = np.empty(size, np.float32)
        return self.p, self.q, self.d


@numba.njit(fastmath=True, cache=True)
def _sqdist(x, p, q):
    s = np.float32(0.0)
    for t in range(x.shape[1]):
        d = x[p, t] - x[q, t]
        s += d * d
    return s


@numba.njit(cache=True)
def _push(idx, dist, new, r, j, d):
    """Offer ``j`` at squared distance ``d`` to row ``r`` (sorted by (distance, index)), marked
    new; returns 1 if it entered. Also keeps candidate lists, with a priority for the distance."""
    last = idx.shape[1] - 1
    if d > dist[r, last] or (d == dist[r, last] and j >= idx[r, last]):
        return 0
    for t in range(last + 1):
        if idx[r, t] == j:
            return 0
        if idx[r, t] < 0:  # the empty places, all at the end
            break
    p = last
    while p > 0 and (dist[r, p - 1] > d or (dist[r, p - 1] == d and idx[r, p - 1] > j)):
        idx[r, p] = idx[r, p - 1]
        dist[r, p] = dist[r, p - 1]
        new[r, p] = new[r, p - 1]
        p -= 1
    idx[r, p] = j
    dist[r, p] = d
    new[r, p] = 1
    return 1


@numba.njit(parallel=True, cache=True)
def _from_graph(x, idx, dist, new, start):
    n = x.shape[0]
    for r in numba.prange(n):
        for t in range(start.shape[1]):
            j = start[r, t]
            if 0 <= j < n and j != r:
                _push(idx, dist, new, r, np.int32(j), _sqdist(x, r, j))


@numba.njit(parallel=True, cache=True)
def _fill_random(x, idx, dist, new, seed):
    """Fill the lists that are still short with random points."""
    n, k = idx.shape
    base = mix(np.uint64(seed) * GOLDEN + np.uint64(0x5EED))
    for r in numba.prange(n):
        draw = np.uint64(0)
        while idx[r, k - 1] < 0:
            draw += np.uint64(1)
            j = below(mix(base ^ (np.uint64(r) * GOLDEN) + draw * GOLDEN), n)
            if j != r:
                _push(idx, dist, new, r, np.int32(j), _sqdist(x, r, j))


@numba.njit(parallel=True, fastmath=True, cache=True)
def _offers(x, dist, fresh, old, slots, up_p, up_q, up_d):
    """The local join of each candidate list: the pairs (p, q, squared distance) that would
    enter p's or q's list as it stands, those of list ``v`` written to ``up_*`` from
    ``slots[v]`` on (room for all its pairs); returns their counts."""
    rows, m = fresh.shape
    m_old = old.shape[1]
    last = dist.shape[1] - 1
    counts = np.zeros(rows, np.int64)
    for v in numba.prange(rows):
        c = slots[v]
        for a in range(m):
            p = fresh[v, a]
            if p < 0:
                break
            for b in range(a + 1, m + m_old):
                q = fresh[v, b] if b < m else old[v, b - m]
                if q < 0:
                    if b < m:
                        continue
                    break
                if q == p:
                    continue
                d = _sqdist(x, p, q)
                if d < dist[p, last] or d < dist[q, last]:
                    up_p[c] = p
                    up_q[c] = q
                    up_d[c] = d
                    c += 1
        counts[v] = c - slots[v]
    return counts


@numba.njit(parallel=True, cache=True)
def _apply(idx, dist, new, parts, slots, up_p, up_q, up_d, counts):
    """Apply the offers to both ends' lists; returns how many offers entered a list. Each
    thread owns a range of lists and reads all the offers, applying those to its lists: a list
    meets its offers in the same order whatever the number of threads, and nothing is
    sorted or gathered one thread at a time (``parts``: the number of threads)."""
    n = idx.shape[0]
    entered = np.zeros(parts, np.int64)
    for t in numba.prange(parts):
        lo, hi = t * n // parts, (t + 1) * n // parts
        for v in range(len(counts)):
            for c in range(slots[v], slots[v] + counts[v]):
                p, q = up_p[c], up_q[c]
                if lo <= p < hi:
                    entered[t] += _push(idx, dist, new, p, q, up_d[c])
                if lo <= q < hi:
                    entered[t] += _push(idx, dist, new, q, p, up_d[c])
    return entered.sum()


@numba.njit(cache=True)
def _group(keys, n):
    """A counting sort of ``keys`` (in ``[0, n)``; negative ones are left out): ``(begin,
    order)`` with the positions of the keys equal to ``r`` at ``order[begin[r]:begin[r + 1]]``,
    in increasing order."""
    begin = np.zeros(n + 1, np.int64)
    for key in keys:
        if key >= 0:
            begin[key + 1] += 1
    for r in range(n):
        begin[r + 1] += begin[r]
    order = np.empty(begin[n], np.int64)
    fill = begin[:n].copy()
    for at in range(len(keys)):
        if keys[at] >= 0:
            order[fill[keys[at]]] = at
            fill[keys[at]] += 1
    return begin, order


@numba.njit(parallel=True, cache=True)
def _candidates(idx, new, fresh, old, seed, round_, rows_per_part=1024):
    """Each point's new and old candidates, written over ``fresh`` and ``old`` (N, m):
    neighbours and reverse neighbours, at most ``m`` of each, by a random priority per pair; the
    new ones taken from a point's own list are marked old there. A point's lists are chosen in
    scratch rows (candidates, priorities, :func:`_push`'s marks) that each part of
    ``rows_per_part`` points allocates once: nothing of size N x m but the results is held."""
    n, k = idx.shape
    m = fresh.shape[1]
    begin, order = _group(idx.ravel(), n)  # the lists that hold each point
    base = mix(np.uint64(seed) * GOLDEN + np.uint64(round_ + 1))
    for part in numba.prange((n + rows_per_part - 1) // rows_per_part):
        chosen = np.empty((2, m), np.int32)  # row 0: new candidates, row 1: old ones
        priority = np.empty((2, m), np.uint64)
        marks = np.empty((2, m), np.uint8)
        for v in range(part * rows_per_part, min(n, (part + 1) * rows_per_part)):
            chosen[:] = -1
            priority[:] = _NO_PRIORITY
            for e in range(k + begin[v + 1] - begin[v]):
                if e < k:
                    j, is_new = idx[v, e], new[v, e]
                else:
                    at = order[begin[v] + e - k]  # v is in list at // k, at place at % k
                    j, is_new = at // k, new[at // k, at % k]
                if j < 0:
                    continue
                lo, hi = min(v, j), max(v, j)
                pri = mix(base ^ (np.uint64(lo) * GOLDEN) ^ mix(np.uint64(hi) + GOLDEN))
                _push(chosen, priority, marks, 0 if is_new else 1, j, pri)
            fresh[v], old[v] = chosen[0], chosen[1]
    for v in numba.prange(n):
        for t in range(k):
            if new[v, t]:
                for s in range(m):
                    if fresh[v, s] == idx[v, t]:
                        new[v, t] = 0
                        break


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forest(x, n_trees, leaf_size, seed):
    """The leaves of ``n_trees`` random-projection trees, one row of point indices per leaf
    (padded with -1)."""
    n = x.shape[0]
    starts = np.zeros((n_trees, n), np.uint8)
    n_leaves = np.zeros(n_trees, np.int64)
    order = np.empty((n_trees, n), np.int32)
    for t in numba.prange(n_trees):
        _tree(x, order[t], starts[t], n_leaves, t, leaf_size, seed)
    leaves = np.full((n_leaves.sum(), leaf_size), -1, np.int32)
    row, place = -1, 0
    for t in range(n_trees):
        for i in range(n):
            if starts[t, i]:
                row, place = row + 1, 0
            leaves[row, place] = order[t, i]
            place += 1
    return leaves


@numba.njit(fastmath=True, cache=True)
def _tree(x, order, starts, n_leaves, tree, leaf_size, seed):
    """One tree, depth first: ``order`` ends up with the points grouped by leaf, a leaf's
    points being ``order[s:e]`` from a place ``s`` marked in ``starts`` to the next mark."""
    n, dim = x.shape
    for i in range(n):
        order[i] = i
    normal = np.empty(dim, np.float32)
    left = np.empty(n, np.uint8)
    spare = np.empty(n, np.int32)
    stack = np.empty((130, 2), np.int64)  # the smaller half is split first: depth <= log2(n)
    stack[0, 0], stack[0, 1] = 0, n
    top = 1
    nodes = np.uint64(0)
    base = mix(np.uint64(seed) * GOLDEN + np.uint64(tree) + np.uint64(0x7EE5))
    count = 0
    while top > 0:
        top -= 1
        s, e = stack[top, 0], stack[top, 1]
        if e - s <= leaf_size:
            starts[s] = 1
            count += 1
            continue
        nodes += np.uint64(1)
        h = mix(base ^ (nodes * GOLDEN))
        a = order[s + below(h, e - s)]
        b = order[s + below(mix(h), e - s)]
        offset = np.float32(0.0)
        for d in range(dim):
            normal[d] = x[a, d] - x[b, d]
            offset += normal[d] * (x[a, d] + x[b, d]) * np.float32(0.5)
        n_left = 0
        for i in range(s, e):
            margin = -offset
            for d in range(dim):
                margin += normal[d] * x[order[i], d]
            side = margin > 0 if margin != 0 else (mix(h + np.uint64(i)) >> np.uint64(63)) == 1
            left[i] = side
            n_left += side
        if n_left == 0 or n_left == e - s:  # no split (e.g. identical points): halve
            mid = s + (e - s) // 2
        else:
            lo, hi = s, s + n_left
            for i in range(s, e):
                if left[i]:
                    spare[lo] = order[i]
                    lo += 1
                else:
                    spare[hi] = order[i]
                    hi += 1
            for i in range(s, e):
                order[i] = spare[i]
            mid = s + n_left
        small, large = ((s, mid), (mid, e)) if mid - s <= e - mid else ((mid, e), (s, mid))
        stack[top, 0], stack[top, 1] = large
        stack[top + 1, 0], stack[top + 1, 1] = small
        top += 2
    n_leaves[tree] = count
