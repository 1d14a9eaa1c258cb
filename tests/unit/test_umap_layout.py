"""explorer's UMAP (kernel.umap_layout, project(..., "umap")): determinism, quality vs umap-learn,
the cache, the numba warm-up. UMAP's numba code compiles once per machine (~30 s, then cached)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest
import torch

import explorer as ex
from explorer.cache import Cache
from explorer.jobs import JobEngine, JobError
from explorer.kernel import knn_accuracy
from explorer.projection import import_umap, project, warm_umap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target


@pytest.fixture
def engine(tmp_path):
    eng = JobEngine(cache=Cache(tmp_path / "results"))
    yield eng
    eng.shutdown()


def test_warm_up_compiles_into_the_disk_cache():
    """Each kernel's compiled code is in the index of numba's disk cache where that kernel
    looks for it (explorer's cache directory, unless a module was imported before
    ``use_numba_cache``, as test collection may do)."""
    from explorer.kernel import _umap_sgd, fuzzy_graph, nn_descent

    seconds = warm_umap(force=True)
    assert seconds > 0
    kernels = (_umap_sgd.sgd_epoch, nn_descent._offers, nn_descent._apply, nn_descent._from_graph)
    for kernel in (*kernels, fuzzy_graph._smooth_knn_dist):
        index = Path(kernel._cache._cache_file._index_path)
        assert index.is_file(), f"{kernel.__name__} is not in numba's disk cache ({index})"
    assert warm_umap() is None, "a second warm-up should find the stamp and compile nothing"


def test_same_seed_same_layout_at_any_thread_count(digits):
    from explorer.kernel.umap_layout import umap_layout

    x = digits[0][:600]
    before = numba.get_num_threads()
    runs = {}
    try:
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            for search in ("exact", "nndescent"):
                runs[threads, search] = umap_layout(x, seed=3, n_epochs=60, neighbor_search=search)
    finally:
        numba.set_num_threads(before)
    for search in ("exact", "nndescent"):
        np.testing.assert_array_equal(runs[1, search], runs[numba.config.NUMBA_NUM_THREADS, search])
    other = umap_layout(x, seed=4, n_epochs=60)
    assert not np.array_equal(runs[1, "exact"], other)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_quality_matches_umap_learn_on_the_digits(digits, dims):
    """Mean over three seeds of trustworthiness (k = 10) and leave-one-out 10-NN label accuracy
    of the 1-, 2- and 3-D layouts: explorer's UMAP within 0.01 of umap-learn's (seeded, the
    reference)."""
    from sklearn.manifold import trustworthiness

    from explorer.kernel.umap_layout import umap_layout

    x, y = digits
    umap = import_umap()
    ours, ref = [], []
    for seed in (0, 1, 2):
        low = umap_layout(x, dims, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low_ref = umap.UMAP(n_components=dims, random_state=seed).fit_transform(x)
        for layout, out in ((low, ours), (low_ref, ref)):
            out.append((trustworthiness(x, layout, n_neighbors=10), knn_accuracy(layout, y, 10)))
    ours, ref = np.mean(ours, 0), np.mean(ref, 0)
    assert ours[0] >= ref[0] - 0.01, (ours, ref)  # trustworthiness
    assert ours[1] >= ref[1] - 0.01, (ours, ref)  # 10-NN label accuracy
    assert ours[0] > (0.95 if dims == 1 else 0.98) and ours[1] > 0.95


def test_explorer_s_umap_runs_without_umap_learn(digits, monkeypatch):
    """Neighbours, graph, spectral start and layout are explorer's own: nothing imports
    umap-learn (or pynndescent), which GPU images such as the H200's do not have, neither does
    the numba warm-up of ``explorer demo``; only ``implementation="umap-learn"`` needs it, and
    says so when it is missing."""
    from explorer.kernel.umap_layout import umap_layout

    for name in ("umap", "umap.umap_", "umap.spectral", "pynndescent"):
        monkeypatch.setitem(sys.modules, name, None)  # `import umap` now raises ImportError
    x = digits[0][:400]
    for search in ("exact", "nndescent"):
        assert umap_layout(x, n_epochs=5, neighbor_search=search).shape == (400, 2)
    two_classes = np.concatenate([x[:200], x[200:] + 1000])  # several components
    assert np.isfinite(umap_layout(two_classes, n_epochs=5)).all()
    assert warm_umap(force=True) > 0  # `explorer demo --build-only` compiles the same code
    acts = ex.Activations({0: torch.as_tensor(x), 1: torch.as_tensor(two_classes)})
    layout = project(acts, "umap", cache=False, n_epochs=5)
    assert all(np.isfinite(layout.coords[d]).all() for d in (0, 1))
    with pytest.raises(JobError, match="MissingDependencyError: .*`pip install umap-learn`"):
        project(acts, "umap", cache=False, implementation="umap-learn", n_epochs=5)


def test_far_apart_components_are_placed_by_their_distances_without_a_warning(digits):
    """The digits' ten classes moved far apart along a curve (centroid distances 150 to 4,000):
    the neighbour graph falls into components that umap-learn places around a spectral
    embedding of their centroids with affinities exp(-d^2), all 0 here. Ours scales the
    distances first (kernel.spectral_init): no "Graph is not fully connected" warning, the classes' places follow their
    distances (Spearman's rho of the pairwise class-centroid distances, input vs layout, 0.49 to
    0.72 over seeds 0-4, after the layout's 200 epochs moved them from the start's 0.91;
    umap-learn -0.12 to 0.19), trustworthiness within 0.01 of umap-learn's."""
    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr
    from sklearn.manifold import trustworthiness

    from explorer.kernel.umap_layout import umap_layout

    x, y = digits
    along = np.arange(10, dtype=np.float32)
    x = x.copy()
    x[:, 0] += 150 * along[y]
    x[:, 1] += 30 * along[y] ** 2

    def class_distances(points):
        return pdist(np.stack([points[y == c].mean(0) for c in range(10)]))

    umap = import_umap()
    rhos = []
    for seed in (0, 1):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            low = umap_layout(x, seed=seed)
        assert not [w for w in caught if "not fully connected" in str(w.message)]
        rhos.append(spearmanr(class_distances(x), class_distances(low))[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low_ref = umap.UMAP(random_state=seed).fit_transform(x)
        ref = trustworthiness(x, low_ref, n_neighbors=10)
        assert trustworthiness(x, low, n_neighbors=10) >= ref - 0.01
    assert np.mean(rhos) > 0.35, rhos  # 0.58 here; umap-learn's -0.05


def test_a_cached_layout_is_read_back_unchanged(digits, engine):
    acts = ex.Activations(
        {0: torch.from_numpy(digits[0][:500]), 1: torch.from_numpy(digits[0][500:1000])}
    )
    first = project(acts, "umap", engine=engine, seed=5, n_epochs=50)
    assert first.job.cached == set()
    again = project(acts, "umap", engine=engine, seed=5, n_epochs=50)
    assert again.job.cached == {0, 1}
    for d in (0, 1):
        assert again.raw[d].dtype == np.float32
        np.testing.assert_array_equal(again.raw[d], first.raw[d])
        np.testing.assert_array_equal(again.coords[d], first.coords[d])
    other = project(acts, "umap", engine=engine, seed=6, n_epochs=50, depths=[0])
    assert other.job.cached == set()  # the seed is part of the key


def test_options_umap_learn_has_and_we_do_not_name_the_way_out(digits, engine):
    acts = ex.Activations({0: torch.from_numpy(digits[0][:200])})
    with pytest.raises(JobError, match="implementation='umap-learn'"):
        project(acts, "umap", engine=engine, metric="cosine")
    p = project(acts, "umap", engine=engine, implementation="umap-learn", n_epochs=20)
    assert p.raw[0].shape == (200, 2)


def test_nn_descent_is_reproducible(digits):
    from explorer.kernel.umap_layout import umap_layout

    x = digits[0]
    runs = [umap_layout(x, seed=1, n_epochs=30, neighbor_search="nndescent") for _ in range(2)]
    np.testing.assert_array_equal(*runs)
    with pytest.raises(ValueError, match="neighbor_search"):
        umap_layout(x, neighbor_search="annoy")


def test_warm_epochs_follow_how_many_neighbours_changed():
    from explorer.kernel.umap_layout import warm_epochs

    idx = np.arange(40).reshape(10, 4)
    assert warm_epochs(idx, idx, 200) == 25  # nothing changed: the floor
    assert warm_epochs(idx, idx + 100, 200) == 200  # everything changed: every epoch
    half_of_one_in_ten = idx.copy()
    half_of_one_in_ten[0, :2] = [98, 99]  # 2 of 40 pairs changed: 5 % -> a quarter of 200
    assert warm_epochs(half_of_one_in_ten, idx, 200) == 50
    assert warm_epochs(half_of_one_in_ten, idx, 200, min_epochs=10) == 50
    assert warm_epochs(idx, idx, 20) == 20  # never more than asked
    with pytest.raises(ValueError, match="previous_neighbors"):
        warm_epochs(idx, idx[:, :2], 200)


def test_warm_start_from_the_previous_depth_runs_fewer_epochs_at_equal_quality(monkeypatch):
    """Two depths whose neighbours barely change (clusters scaled, a little noise added): with
    init_previous the second depth runs fewer epochs and keeps a cold start's quality (within
    0.005: restarting the learning rate at 1 instead of resuming the schedule lost 0.007-0.011)."""
    from sklearn.manifold import trustworthiness

    import explorer.kernel.umap_layout as ul

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 1200)
    x0 = (rng.normal(size=(6, 24)) * 4)[y] + rng.normal(size=(1200, 24))
    x1 = 1.5 * x0 + 0.05 * rng.normal(size=x0.shape)
    acts = ex.Activations(
        {0: torch.tensor(x0, dtype=torch.float32), 1: torch.tensor(x1, dtype=torch.float32)}
    )
    used = []
    real = ul.warm_epochs
    monkeypatch.setattr(ul, "warm_epochs", lambda *a, **k: used.append(real(*a, **k)) or used[-1])
    chained = project(acts, "umap", init_previous=True, cache=False)
    assert chained.init_previous and chained._provenance()["init_previous"]
    warm = chained.raw[1]
    assert len(used) == 1 and used[0] < 100, used
    cold = project(acts, "umap", depths=[1], cache=False).raw[1]
    for layout in (warm, cold):
        assert layout.shape == (1200, 2)
    tw, tc = (trustworthiness(x1, v, n_neighbors=10) for v in (warm, cold))
    aw, ac = (knn_accuracy(v, y, 10) for v in (warm, cold))
    assert tw >= tc - 0.005 and aw >= ac - 0.005, (tw, tc, aw, ac)


def test_nn_descent_from_the_previous_depths_neighbours():
    """Started from the exact neighbours of a slightly moved copy of the points, NN-descent keeps
    them where they are still right: recall at least as high as from scratch, same seed same
    result, and a start of the wrong shape is refused."""
    from explorer.kernel.neighbors import knn
    from explorer.kernel.umap_layout import search_neighbors

    rng = np.random.default_rng(0)
    x = torch.from_numpy((rng.normal(size=(1500, 32)) * rng.uniform(0.5, 2, 32)).astype(np.float32))
    moved = x + 0.01 * torch.from_numpy(rng.normal(size=x.shape).astype(np.float32))
    truth = knn(x, 14)[1].numpy()
    start = knn(moved, 14)[1].numpy()

    def recall(idx):
        return np.mean([len(np.intersect1d(a, b)) / 14 for a, b in zip(idx, truth, strict=True)])

    cold = search_neighbors(x, 15, seed=2, how="nndescent")[1].numpy()
    warm = search_neighbors(x, 15, seed=2, how="nndescent", start=start)[1].numpy()
    again = search_neighbors(x, 15, seed=2, how="nndescent", start=start)[1].numpy()
    np.testing.assert_array_equal(warm, again)
    assert recall(warm) >= max(recall(cold), recall(start)) - 1e-9 and recall(warm) > 0.95
    with pytest.raises(ValueError, match="start has shape"):
        search_neighbors(x, 15, how="nndescent", start=start[:, :5])


def test_a_warm_depth_after_a_cached_one_is_the_same_as_in_one_run(engine):
    """The neighbours NN-descent starts from are cached with the previous depth's layout, so
    depth 1 computed after a cached depth 0 equals depth 1 of an uninterrupted run."""
    rng = np.random.default_rng(1)
    x0 = (rng.normal(size=(8, 16)) * 3)[rng.integers(0, 8, 900)] + rng.normal(size=(900, 16))
    x1 = 1.2 * x0 + 0.1 * rng.normal(size=x0.shape)
    acts = ex.Activations(
        {0: torch.tensor(x0, dtype=torch.float32), 1: torch.tensor(x1, dtype=torch.float32)}
    )
    opts = {"init_previous": True, "neighbor_search": "nndescent", "seed": 3, "n_epochs": 60}
    first = project(acts, "umap", depths=[0], engine=engine, **opts)
    assert first.job.cached == set() and first.raw[0].dtype == np.float32
    resumed = project(acts, "umap", engine=engine, **opts)
    assert resumed.job.cached == {0}
    whole = project(acts, "umap", cache=False, **opts)
    np.testing.assert_array_equal(resumed.raw[1], whole.raw[1])


def test_one_two_or_three_components(digits):
    """The layout kernel holds a point in three scalars: 1 to 3 components, more is refused
    with the way out. In 3-D the digits keep their classes apart as in 2-D."""
    from explorer.kernel.umap_layout import umap_layout

    x, y = digits[0][:800], digits[1][:800]
    for k in (1, 3):
        out = umap_layout(x, k, seed=0, n_epochs=100)
        assert out.shape == (800, k) and out.dtype == np.float32 and np.isfinite(out).all()
    assert knn_accuracy(out, y, 10) > 0.9
    with pytest.raises(ValueError, match="implementation='umap-learn'"):
        umap_layout(x, 4)
