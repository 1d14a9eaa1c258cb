"""Exact blocked kNN vs scikit-learn, duplicate detection, leave-one-out k-NN accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from explorer.kernel.neighbors import dedupe, find_duplicates, knn, knn_accuracy, with_self


def _reference(x: np.ndarray, k: int):
    return NearestNeighbors(n_neighbors=k).fit(x.astype(np.float64)).kneighbors()


@pytest.mark.parametrize("n", [50, 1500, 2100])  # one tile, ragged tiles
def test_knn_matches_sklearn_exactly(n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((n, 40)) * rng.uniform(0.5, 3, 40) + 7).astype(np.float32)
    d, i = knn(x, 12)
    dr, ir = _reference(x, 12)
    assert d.dtype == torch.float32 and i.dtype == torch.int64 and d.shape == (n, 12)
    np.testing.assert_allclose(d.numpy(), dr, rtol=2e-6, atol=1e-6)
    assert (i.numpy() == ir).mean() > 0.999  # only exact ties may differ
    assert (np.diff(d.numpy(), axis=1) >= 0).all()


def test_knn_queries_float64_and_half():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((800, 30))
    dr, ir = _reference(x, 5)
    q = np.arange(0, 800, 9)
    d, i = knn(torch.as_tensor(x), 5, queries=q)
    assert d.dtype == torch.float64
    np.testing.assert_allclose(d.numpy(), dr[q], rtol=1e-12)
    np.testing.assert_array_equal(i.numpy(), ir[q])
    d16, _ = knn(torch.as_tensor(x, dtype=torch.float16), 5)
    assert d16.dtype == torch.float32


@pytest.mark.parametrize("precision", ["tf32", "fp32"])
def test_row_blocks_in_every_precision_give_the_exact_neighbours(precision):
    """The candidate search of the CUDA path (one addmm per block) run on the CPU: with its
    margin, the exact recomputation finds sklearn's neighbours."""
    from explorer.kernel.neighbors import _candidates_rows, _refine

    rng = np.random.default_rng(3)
    n = 2053  # prime: the columns are padded with points at infinity to 2,560
    x = torch.as_tensor((rng.standard_normal((n, 40)) + 5).astype(np.float32))
    x = x - x.mean(0)
    rows = torch.arange(n)
    d, i = _refine(x, rows, _candidates_rows(x, rows, 10 + 16, precision), 10)
    dr, ir = _reference(x.numpy(), 10)
    np.testing.assert_allclose(d.numpy(), dr, rtol=2e-5, atol=1e-5)
    assert (i.numpy() == ir).mean() > 0.999


@pytest.mark.parametrize(
    ("size", "kc", "groups"), [(1024, 18, 8), (2**16, 30, 32), (2**20, 30, 128)]
)
def test_group_minima_give_the_top_k_of_wide_rows(size, kc, groups):
    """The kc smallest entries of a row lie in the kc groups with the smallest minima; wide rows
    (a CUDA block's 1M columns) take ~sqrt(size / kc) groups, so top-k runs on ~sqrt(size kc)."""
    from explorer.kernel.neighbors import _groups, _tile_topk

    assert _groups(size, kc) == groups
    assert _groups(size + 1, kc) == 1  # odd: a plain top-k (_candidates_rows pads instead)
    d2 = torch.rand(3, size, generator=torch.Generator().manual_seed(size))
    values, positions = _tile_topk(d2, kc, 1)
    expected = d2.topk(kc, dim=1, largest=False).values
    torch.testing.assert_close(values.sort(1).values, expected, rtol=0, atol=0)
    torch.testing.assert_close(d2.gather(1, positions), values, rtol=0, atol=0)


def test_cuda_blocks_grow_with_free_memory(monkeypatch):
    """64 rows per block keep the product memory bound at 1M points; the CUDA path takes as many
    rows as a quarter of the free memory holds at 8 bytes per product, 64 to 4,096."""
    from explorer.kernel import neighbors

    for free, n, rows in [(140e9, 1_000_000, 4096), (16e9, 1_000_000, 500), (1e9, 10**7, 64)]:
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device, f=free: (int(f), int(f)))
        assert neighbors._block_rows(n, n, torch.device("cuda")) == rows
    assert neighbors._block_rows(100, 100, torch.device("cuda")) == 100


def test_with_self_follows_umap_learns_convention():
    dist = torch.tensor([[1.0, 2.0], [0.5, 3.0], [0.5, 1.0]])
    idx = torch.tensor([[1, 2], [2, 0], [1, 0]])
    i, d = with_self(dist, idx)
    np.testing.assert_array_equal(i[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(d[:, 0], 0)
    np.testing.assert_array_equal(i[:, 1:], idx.numpy())


def test_knn_bad_k():
    with pytest.raises(ValueError, match="k must be between"):
        knn(np.zeros((5, 2)), 5)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        knn(np.zeros(5), 1)


def test_duplicates_exact_jittered_and_large_groups():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1000, 20)).astype(np.float32)
    eps = np.finfo(np.float32).eps
    jit = x[:100] * (1 + eps * rng.standard_normal((100, 20)).astype(np.float32))
    copies = np.repeat(x[500:501], 30, axis=0)  # a group far larger than k + 1
    data = np.concatenate([x, jit, copies])
    first = find_duplicates(data)
    assert first.n_duplicates > 100
    dup = dedupe(data)
    assert dup.n_duplicates == 130
    assert dup.keep[:1000].all() and not dup.keep[1000:].any()
    np.testing.assert_array_equal(dup.indices, np.arange(1000))
    assert 0 < dup.tol < 1e-3
    assert dedupe(x).n_duplicates == 0


def test_knn_accuracy_leave_one_out():
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((3, 10)) * 20
    y = np.repeat(np.arange(3), 40)
    x = centres[y] + rng.standard_normal((120, 10))
    assert knn_accuracy(x, y, 5) == 1.0
    y_bad = rng.permutation(y)
    ref = NearestNeighbors(n_neighbors=5).fit(x).kneighbors()[1]
    votes = np.array([np.bincount(y_bad[r], minlength=3) for r in ref])
    clear = np.sort(votes, 1)[:, -1] > np.sort(votes, 1)[:, -2]  # no tie
    pred = votes.argmax(1)
    ours = knn_accuracy(x, y_bad, 5)
    assert abs(ours - np.mean(pred == y_bad)) <= np.mean(~clear)
    with pytest.raises(ValueError, match="labels for"):
        knn_accuracy(x, y[:-1])
