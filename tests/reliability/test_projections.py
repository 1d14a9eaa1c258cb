"""Projections on degenerate depths: never a crash (t-SNE segfaulted on a constant depth)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer.activations import Activations
from explorer.errors import ArgumentError, DataError
from explorer.jobs import JobEngine, JobError
from tests.reliability.catalogue import assert_clear_error, bad_input, run_isolated

# the cases that segfaulted run in one fresh interpreter (importing explorer and scikit-learn
# takes most of the time); a crash fails the case that crashed and those after it
_SCENARIOS = {
    "constant": ("torch.zeros(30, 16)", "{}"),
    "duplicates": ("torch.randn(1, 16).repeat(30, 1)", "{}"),
    "tiny": ("torch.randn(30, 16) * 1e-30", "{}"),
    "huge": ("torch.randn(30, 16) * 1e30", "{}"),
    "init_previous": ("torch.randn(30, 16)", "{'init_previous': True}"),
}
_ISOLATED = """
import sys, numpy as np, torch
import explorer as ex
from explorer.activations import Activations
from explorer.jobs import JobEngine
torch.manual_seed(0)
for name, (y, kw) in SCENARIOS.items():
    states = {1: eval(y)}
    if name == "init_previous":
        states[0] = torch.zeros(30, 16)
    p = ex.project(Activations(states), "tsne", engine=JobEngine(cache=False), max_iter=250, **eval(kw))
    print(name, p.status[1], float(np.abs(p.raw[1]).max()), bool(np.isfinite(p.coords[1]).all()))
    sys.stdout.flush()
"""


@pytest.fixture(scope="module")
def tsne_isolated() -> dict[str, list[str]]:
    done = run_isolated(f"SCENARIOS = {_SCENARIOS!r}\n" + _ISOLATED, timeout=180)
    out = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line.strip()}
    out["_crash"] = [str(done.returncode), done.stderr[-2000:]]
    return out


def _tsne_isolated(results: dict, name: str) -> list[str]:
    assert name in results, f"crashed (rc {results['_crash'][0]}): {results['_crash'][1]}"
    return results[name]


def _acts(y: torch.Tensor, n: int = 60) -> Activations:
    torch.manual_seed(0)
    return Activations({0: torch.randn(n, 16), 1: y})


def _project(acts, method="pca", **kw):
    return ex.project(acts, method, engine=JobEngine(cache=False), **kw)


@bad_input(
    "projections",
    "t-SNE of a depth whose activations are constant (dead ReLUs)",
    "no crash (scikit-learn's t-SNE segfaulted): the depth's status is 'constant', its points sit at one place",
)
def test_tsne_constant_depth_does_not_crash(tsne_isolated):
    status, spread, finite = _tsne_isolated(tsne_isolated, "constant")
    assert (status, float(spread), finite) == ("constant", 0.0, "True")


@bad_input(
    "projections",
    "t-SNE of a depth where every point is the same row (all duplicates)",
    "status 'constant', no crash",
)
def test_tsne_all_duplicates(tsne_isolated):
    status, spread, _ = _tsne_isolated(tsne_isolated, "duplicates")
    assert (status, float(spread)) == ("constant", 0.0)


@bad_input(
    "projections",
    "t-SNE of a depth whose values are tiny (1e-30: float32 distances underflow to 0)",
    "laid out like the rescaled data (no segfault), status 'ok'",
)
def test_tsne_tiny_values(tsne_isolated):
    status, spread, finite = _tsne_isolated(tsne_isolated, "tiny")
    assert status == "ok" and float(spread) > 0 and finite == "True"


@bad_input(
    "projections",
    "t-SNE of a depth whose values are huge (1e30: float32 distances overflow)",
    "laid out like the rescaled data (was a silent all-zero layout), status 'ok'",
)
def test_tsne_huge_values(tsne_isolated):
    status, spread, finite = _tsne_isolated(tsne_isolated, "huge")
    assert status == "ok" and float(spread) > 0 and finite == "True"


@bad_input(
    "projections",
    "t-SNE with init_previous after a constant depth (the initialisation would be 0/0)",
    "the method's own initialisation is used, no crash",
)
def test_tsne_init_previous_after_constant_depth(tsne_isolated):
    status, spread, finite = _tsne_isolated(tsne_isolated, "init_previous")
    assert status == "ok" and float(spread) > 0 and finite == "True"


@bad_input(
    "projections",
    "UMAP of a constant depth",
    "status 'constant' without calling umap-learn, the other depths laid out",
)
def test_umap_constant_depth_not_handed_to_umap(monkeypatch):
    import explorer.projection as projection

    monkeypatch.setattr(projection, "_umap", lambda data, *a: np.asarray(data)[:, :2].copy())
    p = _project(_acts(torch.full((60, 16), 3.0)), "umap")
    assert p.status == {0: "ok", 1: "constant"}
    assert np.array_equal(p.raw[1], np.zeros((60, 2), np.float32))


def _groups_far_apart(groups: int, copies: int, gap: float) -> torch.Tensor:
    """``groups`` random rows in 16 dimensions scaled by ``gap``, each repeated ``copies``
    times."""
    torch.manual_seed(1)
    return (torch.randn(groups, 16) * gap).repeat_interleave(copies, 0)


@bad_input(
    "projections",
    "UMAP of clusters far apart (its neighbour graph falls apart into components)",
    "no scikit-learn 'Graph is not fully connected' warning (umap-learn gives one); the "
    "clusters placed by their distances",
)
def test_umap_far_apart_clusters_no_warning():
    import warnings

    from scipy.spatial.distance import pdist
    from scipy.stats import spearmanr

    centres = _groups_far_apart(12, 40, 1000.0)
    y = centres + torch.randn(12 * 40, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = _project(_acts(y, 480), "umap", n_epochs=30)
    places = p.raw[1].reshape(12, 40, 2).mean(1)
    assert p.status[1] == "ok" and np.isfinite(p.raw[1]).all()
    rho = spearmanr(pdist(centres[::40].numpy()), pdist(places))[0]
    assert rho > 0.5, rho  # 0.80 measured


@bad_input(
    "projections",
    "UMAP of a depth of thousands of groups of duplicates (input embeddings of a model without "
    "position embeddings repeat every token)",
    "laid out in seconds: past 2,048 groups they are placed by their centroids' principal "
    "components, never a dense groups x groups matrix",
)
def test_umap_many_groups_of_duplicates(monkeypatch):
    from explorer.kernel import spectral_init

    monkeypatch.setattr(spectral_init, "_SPECTRAL_PLACES_MAX", 20)  # 30 groups count as many
    y = _groups_far_apart(30, 16, 1.0)
    p = _project(_acts(y, 480), "umap", n_epochs=30)
    assert p.status[1] == "ok" and np.isfinite(p.raw[1]).all()
    places = p.raw[1].reshape(30, 16, 2).mean(1)
    assert len(np.unique(places.round(3), axis=0)) == 30


@bad_input(
    "projections",
    "PCA of a constant depth",
    "status 'constant', coordinates at one place and explained variance 0 (no 0/0)",
)
def test_pca_constant_depth():
    p = _project(_acts(torch.full((60, 16), -2.0)))
    assert p.status[1] == "constant"
    assert np.array_equal(p.explained_variance_ratio[1], np.zeros(2))
    assert np.isfinite(p.coords[1]).all()


@bad_input(
    "projections",
    "a depth holding NaN/Inf (overflowed model)",
    "DataError naming the depth and the rows, inside the job's JobError; the other depths are kept",
)
@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_nan_depth(method, monkeypatch):
    import explorer.projection as projection

    # the check runs before any third-party routine: a stand-in layout keeps this fast
    stand_in = lambda data, *a: np.asarray(data, np.float32)[:, :2].copy()  # noqa: E731
    monkeypatch.setattr(projection, "_umap", stand_in)
    monkeypatch.setattr(projection, "_tsne", stand_in)
    y = torch.randn(60, 16)
    y[3, 2] = float("inf")
    with pytest.raises(JobError) as excinfo:
        _project(_acts(y), method)
    err = excinfo.value.errors[1]
    assert isinstance(err, DataError) and "depth 1" in str(err) and "[3]" in str(err)
    assert list(excinfo.value.results) == [0]


@bad_input(
    "projections",
    "UMAP of 3 points (its spectral initialisation needs n_components + 2)",
    "DataError up front naming the points needed, no raw scipy TypeError",
)
def test_umap_too_few_points():
    with pytest.raises(DataError) as excinfo:
        _project(Activations({0: torch.randn(3, 8)}), "umap")
    assert_clear_error(excinfo, "umap", "at least 4 points", "3")


@bad_input(
    "projections",
    "t-SNE in 3-D of 3 points",
    "DataError up front naming the points needed",
)
def test_tsne_3d_too_few_points():
    with pytest.raises(DataError) as excinfo:
        _project(Activations({0: torch.randn(3, 8)}), "tsne", n_components=3)
    assert_clear_error(excinfo, "at least 4 points")


@bad_input(
    "projections",
    "PCA in 2-D of a depth with 1 feature",
    "DataError naming the features and suggesting n_components=1 or UMAP",
)
def test_pca_fewer_features_than_components():
    with pytest.raises(DataError) as excinfo:
        _project(Activations({0: torch.randn(20, 1)}))
    assert_clear_error(excinfo, "1", "features", "n_components")


@bad_input(
    "projections",
    "method='umap ' / n_components=4 / seed=-1",
    "ArgumentError naming the argument, the value and what is allowed",
)
@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"method": "umap "}, ("method", "'umap '", "tsne")),
        ({"n_components": 4}, ("n_components", "2 or 3", "4")),
        ({"seed": -1}, ("seed", "-1", "2**32")),
    ],
)
def test_bad_arguments(kw, words):
    acts = _acts(torch.randn(60, 16))
    with pytest.raises(ArgumentError) as excinfo:
        _project(acts, **{"method": "pca", **kw})
    assert_clear_error(excinfo, *words)
