"""``project`` on the demo's digits MLPs: alignment, quality, streaming, cache, two checkpoints.

Measured here (2 cores, digits-clean, 450 probe points, depths 0..4): PCA mean displacement
between consecutive depths 15.2 unaligned vs 5.4 aligned; t-SNE 23.7 vs 10.7; UMAP (depths 1..4)
10.9 vs 6.3. t-SNE trustworthiness (k = 10) 0.97-0.99, PCA 0.77-0.92.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import explorer as ex
from explorer import demo
from explorer.cache import Cache, cache_root
from explorer.jobs import JobEngine
from explorer.projection import project, project_pair


@pytest.fixture(scope="module")
def probe():
    return demo.probe("digits")


@pytest.fixture(scope="module")
def acts(probe):
    return ex.capture(demo.load("digits-clean"), probe, progress=False)


@pytest.fixture(scope="module")
def acts_noisy(probe):
    return ex.capture(demo.load("digits-noisy"), probe, progress=False)


@pytest.fixture
def engine(tmp_path):
    eng = JobEngine(cache=Cache(tmp_path / "results"))
    yield eng
    eng.shutdown()


def _assert_alignment_helps(p):
    """Procrustes minimises the summed squared displacement between consecutive depths (the
    mean distance that ``p.displacement`` reports usually follows, but need not: a UMAP started
    from the previous depth's layout is nearly aligned already)."""
    disp = p.displacement
    assert len(disp) == len(p.depths) - 1
    for d, prev in zip(disp.depth, disp.previous_depth, strict=True):
        aligned = np.sum((p.coords[d] - p.coords[prev]) ** 2)
        unaligned = np.sum((p.raw[d] - p.coords[prev]) ** 2)
        assert aligned <= unaligned * (1 + 1e-6), (d, aligned, unaligned)


def test_pca_aligned_across_depth(acts, engine):
    p = project(acts, "pca", engine=engine)
    assert p.depths == acts.depths == [0, 1, 2, 3, 4]
    for d in p.depths:
        assert p.coords[d].dtype == np.float32 and p.coords[d].shape == (450, 2)
    np.testing.assert_array_equal(p.coords[0], p.raw[0])  # the first depth is the reference
    _assert_alignment_helps(p)
    assert p.displacement.attrs["aligned"] < 0.5 * p.displacement.attrs["unaligned"]
    assert p.array().shape == (5, 450, 2)
    q = p.quality()
    assert list(q.depth) == p.depths and (q.n_points == 450).all()
    for col in ["trustworthiness_5", "trustworthiness_10", "trustworthiness_15"]:
        assert q[col].between(0.7, 1.0).all(), q[col]
    assert (q.knn_accuracy_full > 0.9).all()
    assert (q.knn_accuracy_layout < q.knn_accuracy_full).all()  # 2-D loses label information
    assert q.explained_variance.between(0, 1).all()
    assert q.knn_accuracy_full.iloc[-2] > q.knn_accuracy_full.iloc[0]  # depth helps
    f = p.frame()
    assert list(f.columns) == ["depth", "point", "x", "y", "label"] and len(f) == 5 * 450
    np.testing.assert_array_equal(f[f.depth == 3][["x", "y"]].to_numpy(), p.coords[3])
    assert f.attrs["method"] == "pca" and f.attrs["seed"] == 0


def test_three_components_and_no_alignment(acts, engine):
    p = project(acts, "pca", n_components=3, align=False, depths=[1, 3], engine=engine)
    assert p.coords[3].shape == (450, 3) and "z" in p.frame().columns
    np.testing.assert_array_equal(p.coords[3], p.raw[3])
    ratio = p.explained_variance_ratio[3]
    assert ratio.shape == (3,) and np.all(np.diff(ratio) <= 0)


def test_rerun_reads_the_cache_and_a_change_recomputes(acts, engine):
    first = project(acts, "pca", engine=engine)
    assert first.job.cached == set()
    again = project(acts, "pca", engine=engine)
    assert again.job.cached == set(acts.depths)
    for d in acts.depths:
        np.testing.assert_array_equal(again.coords[d], first.coords[d])
    other = project(acts, "pca", depths=[2, 4], n_components=3, engine=engine)
    assert other.job.cached == set()


def test_tsne_alignment_reduces_displacement(acts, engine):
    p = project(acts, "tsne", depths=[3, 4], engine=engine, max_iter=250)
    _assert_alignment_helps(p)
    q = p.quality(k=(10,))
    assert (q.trustworthiness_10 > 0.9).all()
    assert (q.knn_accuracy_layout > 0.85).all()


def test_background_streams_depths_and_cancels(acts, engine):
    seen = []
    p = project(acts, "pca", engine=engine, background=True, cache=False, solver="exact")
    p.job.on_part(lambda d, v: seen.append(d))
    p.wait(30)
    assert seen == acts.depths and sorted(p.coords) == acts.depths

    # cancelled while its first depth runs: no other depth starts
    slow = JobEngine(cache=False, max_workers=1)
    try:
        p = project(acts, "tsne", engine=slow, background=True, max_iter=250)
        p.job.cancel()
        assert p.job.wait(60)
        assert p.job.state == "cancelled" and len(p.coords) <= 1
    finally:
        slow.shutdown()


def test_two_checkpoints_side_by_side(acts, acts_noisy, engine):
    pair = project_pair(acts, acts_noisy, "pca", engine=engine)
    assert pair.names == ("digits-clean", "digits-noisy")
    disp = pair.displacement
    assert (disp.aligned <= disp.unaligned * (1 + 1e-6)).all()
    assert disp.aligned.iloc[0] == pytest.approx(0.0, abs=1e-5)  # same inputs at depth 0
    f = pair.frame()
    assert set(f.checkpoint) == set(pair.names) and len(f) == 2 * 5 * 450
    with pytest.raises(ValueError, match="same probe"):
        project_pair(acts, ex.Activations({d: acts[d][:100] for d in acts.depths}))
    with pytest.raises(ValueError, match="foreground"):
        project_pair(acts, acts_noisy, background=True)


def test_bad_arguments(acts):
    with pytest.raises(ValueError, match="method"):
        project(acts, "mds")
    with pytest.raises(ValueError, match="n_components"):
        project(acts, n_components=4)
    with pytest.raises(ValueError, match="init_previous"):
        project(acts, init_previous=True)
    with pytest.raises(KeyError, match="not captured"):
        project(acts, depths=[9])
    with pytest.raises(KeyError, match="topic"):
        project(acts, labels="topic")


@pytest.mark.slow
def test_umap_initialised_from_the_previous_depth(acts, engine):
    """The one UMAP test of the demo: ~40 s the first time on a machine, ~15 s once numba's
    cache in the explorer cache dir is warm."""
    user_dir = os.environ.get("NUMBA_CACHE_DIR")
    p = project(acts, "umap", depths=[2, 3], init_previous=True, engine=engine)
    _assert_alignment_helps(p)
    assert p.coords[3].dtype == np.float32 and p.coords[3].shape == (450, 2)
    q = p.quality(k=(10,))
    assert (q.trustworthiness_10 > 0.9).all() and (q.knn_accuracy_layout > 0.85).all()
    import numba

    # numba caches umap's compiled code on disk (explorer's cache dir unless the user set one)
    assert numba.config.CACHE_DIR == (user_dir or str(cache_root() / "numba"))
    assert any(Path(numba.config.CACHE_DIR).rglob("*.nbi"))
