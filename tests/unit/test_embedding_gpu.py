"""The GPU layout engines on CPU torch (TorchDR runs there), and the choice of engine.

The TorchDR tests run on small data (240 points) in one torch thread and skip when torchdr is not
installed; quality on a Gaussian mixture: trustworthiness at k = 10 at least 0.9 and within 0.03
of PCA's or better, 10-NN label accuracy of the layout within 0.05 of the full space's. The GPU
tests (tests/gpu/test_projection_gpu.py) compare with the CPU reference at scale.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from sklearn.manifold import trustworthiness

import explorer.kernel.embedding_gpu as eg
import explorer.projection_gpu as pg
from explorer.activations import Activations
from explorer.cache import Cache
from explorer.errors import ArgumentError, MissingDependencyError
from explorer.jobs import JobEngine
from explorer.kernel.neighbors import knn, knn_accuracy
from explorer.kernel.projection import pca
from explorer.projection import project

needs_torchdr = pytest.mark.skipif(
    "torchdr" not in eg.available_gpu_engines(), reason="torchdr is not installed"
)


@pytest.fixture
def one_thread():
    # torch's thread pool on a busy CPU turns each small op into a ~20 ms wait
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mixture(n=240, d=24, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centers = rng.normal(size=(classes, d)) * 3.0
    points = centers[labels] + rng.normal(size=(n, d))
    return torch.tensor(points, dtype=torch.float32), labels


def _check_quality(x, labels, z):
    X = x.numpy()
    tw = trustworthiness(X, z, n_neighbors=10)
    tw_pca = trustworthiness(X, pca(x, 2).coords.numpy(), n_neighbors=10)
    assert tw >= 0.9 and tw >= tw_pca - 0.03, (tw, tw_pca)
    assert knn_accuracy(z, labels, k=10) >= knn_accuracy(X, labels, k=10) - 0.05


@needs_torchdr
@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_torchdr_layout_on_cpu_is_good_seeded_and_uses_the_kernel_knn(
    method, one_thread, monkeypatch
):
    x, labels = _mixture()
    calls = []

    def spy(X, k, **kw):
        calls.append(k)
        return knn(X, k, **kw)

    monkeypatch.setattr(eg, "knn", spy)
    run = eg.umap_gpu if method == "umap" else eg.tsne_gpu
    steps = {"n_epochs": 200} if method == "umap" else {"max_iter": 400}
    z = run(x, seed=3, engine="torchdr", **steps)
    assert z.shape == (240, 2) and z.dtype == torch.float32 and torch.isfinite(z).all()
    # UMAP: n_neighbors - 1 others; t-SNE: 3 * perplexity (perplexity 30 here)
    assert calls == ([14] if method == "umap" else [90])
    _check_quality(x, labels, z.numpy())
    again = run(x, seed=3, engine="torchdr", **steps)
    torch.testing.assert_close(again, z)


@needs_torchdr
def test_torchdr_umap_leaves_the_global_generator_alone(one_thread):
    x, _ = _mixture(n=60)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    eg.umap_gpu(x, seed=0, engine="torchdr", n_epochs=5)
    torch.testing.assert_close(torch.rand(3), expected)


@needs_torchdr
def test_umap_init_keeps_the_layout_scale(one_thread):
    x, labels = _mixture()
    start = pca(x, 2).coords.numpy() * 5
    z = eg.umap_gpu(x, seed=0, engine="torchdr", n_epochs=1, init=start)
    # one epoch: the layout is still the start, at its own scale (not TorchDR's 1e-4)
    assert 0.5 < z[:, 0].std().item() / start[:, 0].std() < 2.0


@needs_torchdr
def test_project_with_the_torchdr_engine_on_cpu_reads_its_cache_back(one_thread, tmp_path):
    x, labels = _mixture(n=120)
    acts = Activations({0: x, 1: x * 2 + 1}, labels={"label": labels})
    engine = JobEngine(cache=Cache(tmp_path / "results"))
    try:
        opts = {"gpu_engine": "torchdr", "n_epochs": 30}
        first = project(acts, "umap", device="cpu", engine=engine, **opts)
        again = project(acts, "umap", device="cpu", engine=engine, **opts)
    finally:
        engine.shutdown()
    assert first.options["gpu_engine"] == "torchdr"
    for d in acts.depths:
        assert first.raw[d].shape == (120, 2) and first.raw[d].dtype == np.float32
        np.testing.assert_array_equal(again.raw[d], first.raw[d])  # read back unchanged


@needs_torchdr
def test_project_with_the_torchdr_engine_starts_each_depth_from_the_previous(
    one_thread, monkeypatch
):
    x, labels = _mixture(n=120)
    acts = Activations({0: x, 1: x + 0.01}, labels={"label": labels})
    starts = []

    def spy(x, n_components, *, init, **kw):
        starts.append(None if init is None else np.array(init))
        return eg.umap_gpu(x, n_components, init=init, **kw)

    monkeypatch.setattr(pg, "umap_gpu", spy)
    engine = JobEngine(cache=False)
    try:
        opts = {"gpu_engine": "torchdr", "n_epochs": 2}
        p = project(acts, "umap", device="cpu", engine=engine, init_previous=True, **opts)
    finally:
        engine.shutdown()
    assert starts[0] is None
    np.testing.assert_array_equal(starts[1], p.raw[0])


def test_engine_choice(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(eg, "available_gpu_engines", lambda: ["torchdr", "cuml"])
    assert pg.layout_engine("umap", "cuda", cuda, {}) == "torchdr"
    assert pg.layout_engine("tsne", "auto", cuda, {}) == "torchdr"
    assert pg.layout_engine("umap", "cuda", cuda, {"gpu_engine": "cuml"}) == "cuml"
    assert pg.layout_engine("umap", "auto", cpu, {}) is None  # the CPU reference
    assert pg.layout_engine("umap", "cpu", cpu, {"gpu_engine": "torchdr"}) == "torchdr"
    assert pg.layout_engine("umap", "cuda", cuda, {"gpu_engine": "torchdr"}) == "torchdr"
    assert pg.layout_engine("pca", "cuda", cuda, {}) is None
    with pytest.raises(ValueError, match="umap' and 'tsne' only"):
        pg.layout_engine("pca", "cuda", cuda, {"gpu_engine": "torchdr"})
    with pytest.raises(ValueError, match="gpu_engine='cuml': cuML runs on CUDA only"):
        pg.layout_engine("umap", "cpu", cpu, {"gpu_engine": "cuml"})
    with pytest.raises(ValueError, match="gpu_engine='rapids': .*one of"):
        pg.layout_engine("umap", "cuda", cuda, {"gpu_engine": "rapids"})
    with pytest.raises(ValueError, match="one of"):
        eg.choose_gpu_engine("rapids")
    monkeypatch.setattr(eg, "available_gpu_engines", lambda: ["cuml"])
    assert pg.layout_engine("umap", "cuda", cuda, {}) == "cuml"
    with pytest.raises(MissingDependencyError):  # cuML alone cannot serve the CPU
        pg.layout_engine("umap", "cpu", cpu, {"gpu_engine": "torchdr"})


def test_no_engine_installed(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(eg, "available_gpu_engines", lambda: [])
    # asked for by name: an explorer error that says what to install
    with pytest.raises(MissingDependencyError, match=r"pip install 'torchdr>=0.5,<0.6'"):
        pg.layout_engine("umap", "cuda", cuda, {})
    with pytest.raises(MissingDependencyError, match="not installed"):
        pg.layout_engine("umap", "cpu", torch.device("cpu"), {"gpu_engine": "torchdr"})
    # "auto" on a CUDA machine: the CPU reference, with a warning that says what to install
    with pytest.warns(UserWarning, match="torchdr"):
        assert pg.layout_engine("umap", "auto", cuda, {}) is None


def test_bad_input():
    with pytest.raises(ValueError, match="at least 4 points"):
        eg.umap_gpu(torch.zeros(3, 5), engine="torchdr")


@needs_torchdr
def test_torchdr_neighbourhoods_of_a_few_points(one_thread):
    """TorchDR asks for fewer than N - 1 neighbours: the default shrinks to N - 2 for fewer than
    17 points, and a larger n_neighbors is explorer's error with the bound, not TorchDR's."""
    x = torch.randn(5, 4)
    assert eg.umap_gpu(x, engine="torchdr", n_epochs=5).shape == (5, 2)
    with pytest.raises(ArgumentError, match="between 2 and 3 for 5 points"):
        eg.umap_gpu(x, n_neighbors=4, engine="torchdr")


@needs_torchdr
def test_torchdr_options_are_checked(one_thread):
    """TorchDR drops keywords it does not know: a misspelt option would be ignored silently.
    Options explorer sets itself (epochs, seed) say what to pass instead."""
    x, _ = _mixture(60, 8)
    with pytest.raises(ArgumentError, match=r"takes no option \['n_neighbours'\]"):
        eg.umap_gpu(x, engine="torchdr", n_neighbours=10)
    with pytest.raises(ArgumentError, match=r"sets torchdr.UMAP's \['max_iter'\].*n_epochs"):
        eg.umap_gpu(x, engine="torchdr", max_iter=10)
    with pytest.raises(ArgumentError, match=r"\['random_state'\].*seed="):
        eg.tsne_gpu(x, engine="torchdr", random_state=1)
    with pytest.raises(ArgumentError, match=r"takes no option \['perplexty'\]"):
        eg.tsne_gpu(x, engine="torchdr", perplexty=5)
    with pytest.warns(UserWarning, match="integer part of the perplexity: 7, not 7.5"):
        eg.tsne_gpu(x, engine="torchdr", perplexity=7.5, max_iter=10)
    # TorchDR's own names, its base classes' and the scikit-learn aliases it reads
    z = eg.umap_gpu(x, engine="torchdr", n_epochs=5, negative_sample_rate=2, learning_rate=0.5)
    assert z.shape == (60, 2) and torch.isfinite(z).all()


@pytest.fixture
def fake_cuml(monkeypatch):
    """cuML runs on CUDA only, never here: a stand-in records what explorer hands it."""
    seen = {}

    class Estimator:
        def __init__(self, **params):
            seen.clear()
            seen.update(params)

        def fit_transform(self, x):
            return np.zeros((x.shape[0], seen["n_components"]), np.float32)

    manifold = types.ModuleType("cuml.manifold")
    manifold.UMAP = manifold.TSNE = Estimator
    cuml = types.ModuleType("cuml")
    cuml.manifold = manifold
    monkeypatch.setitem(sys.modules, "cuml", cuml)
    monkeypatch.setitem(sys.modules, "cuml.manifold", manifold)
    monkeypatch.setattr(eg, "choose_gpu_engine", lambda engine, device: "cuml")
    return seen


def test_cuml_gets_the_kernel_knn_with_the_point_itself_first(fake_cuml):
    x, _ = _mixture(100, 8)
    dist, idx = knn(x, 9)
    z = eg.umap_gpu(x, seed=3, n_neighbors=10, engine="cuml", spread=2.0)
    assert z.shape == (100, 2) and z.dtype == torch.float32
    got_idx, got_dist = fake_cuml["precomputed_knn"]
    np.testing.assert_array_equal(got_idx[:, 0], np.arange(100))
    np.testing.assert_array_equal(got_idx[:, 1:], idx.numpy())
    np.testing.assert_allclose(got_dist[:, 1:], dist.numpy())
    assert (fake_cuml["n_neighbors"], fake_cuml["random_state"], fake_cuml["spread"]) == (
        10,
        3,
        2.0,
    )
    assert "init" not in fake_cuml  # cuML's spectral start
    start = np.ones((100, 2), np.float32)
    eg.tsne_gpu(x, seed=4, perplexity=5.0, engine="cuml", init=start)
    assert fake_cuml["n_neighbors"] == 16 and fake_cuml["precomputed_knn"][0].shape == (100, 16)
    np.testing.assert_array_equal(fake_cuml["init"], start)
    for bad in ({"random_state": 1}, {"precomputed_knn": None}):
        with pytest.raises(ArgumentError, match="explorer sets cuml.manifold"):
            eg.umap_gpu(x, engine="cuml", **bad)
    with pytest.raises(ArgumentError, match="init is a starting layout"):
        eg.umap_gpu(x, engine="cuml", init="random")
