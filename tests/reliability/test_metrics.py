"""Representation metrics on too few, duplicate, constant or broken points: NaN with a reason."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer.activations import Activations
from explorer.errors import ArgumentError, DataError
from tests.reliability.catalogue import assert_clear_error, bad_input


def _metrics(x: torch.Tensor, **kw):
    kw.setdefault("n_boot", 10)
    return ex.representation_metrics(Activations({0: x}), device="cpu", **kw).set_index("metric")


@bad_input(
    "metrics",
    "intrinsic dimension of N = 10 points (fewer neighbours than MLE, LID, local PCA need)",
    "those estimators are NaN with status 'too few points ... needs k >= 10'; TwoNN and GRIDE (2 neighbours) stay",
)
def test_too_few_points_for_the_neighbourhood():
    torch.manual_seed(0)
    df = _metrics(torch.randn(10, 5), methods=["mle", "lid", "lpca", "twonn"])
    for m in ("mle", "lid", "lpca"):
        assert np.isnan(df.loc[m, "value"]) and "needs k >= 10" in df.loc[m, "status"]
    assert df.loc["twonn", "status"] == "ok" and df.loc["twonn", "value"] > 0


@bad_input(
    "metrics",
    "PHD on 10 points (its log-log fit gave -23 at N = 8)",
    "NaN with status 'too few points: ... PHD needs 32'",
)
def test_phd_too_few_points():
    torch.manual_seed(0)
    df = _metrics(torch.randn(10, 5), methods=["phd"])
    assert np.isnan(df.loc["phd", "value"]) and "PHD needs 32" in df.loc["phd", "status"]


@bad_input(
    "metrics",
    "an estimate that is not a dimension (<= 0 or not finite)",
    "NaN with status 'not a dimension: the estimate is ...'",
)
def test_non_positive_estimate_is_nan(monkeypatch):
    from explorer.kernel import dimension

    monkeypatch.setattr(dimension, "_twonn", lambda *a: -1.5)
    torch.manual_seed(0)
    df = _metrics(torch.randn(60, 5), methods=["twonn"])
    assert np.isnan(df.loc["twonn", "value"]) and np.isnan(df.loc["twonn", "ci_low"])
    assert df.loc["twonn", "status"] == "not a dimension: the estimate is -1.5"


@bad_input(
    "metrics",
    "every point the same row (all duplicates)",
    "neighbour-based metrics NaN ('too few distinct points'), spectra NaN ('no variance'), no exception",
)
def test_all_duplicates():
    df = _metrics(
        torch.randn(1, 6).repeat(40, 1), methods=["twonn", "mle", "effective_rank", "pca"]
    )
    assert df.value.drop("dse", errors="ignore").isna().all()
    assert "distinct points" in df.loc["twonn", "status"]
    assert "no variance" in df.loc["effective_rank", "status"]
    assert "no variance" in df.loc["pca_90", "status"]


@bad_input(
    "metrics",
    "a constant depth (dead ReLUs)",
    "participation ratio, effective rank, RankMe, pca_90.. NaN with status 'no variance' (pca_90 was 1)",
)
def test_constant_depth():
    df = _metrics(torch.zeros(40, 6), methods=["participation_ratio", "rankme", "pca"])
    assert df.value.isna().all() and df.status.str.contains("no variance").all()


@bad_input(
    "metrics",
    "a single point",
    "DataError: '1 points, at least 8 needed'",
)
def test_single_point():
    with pytest.raises(DataError) as excinfo:
        _metrics(torch.randn(1, 6))
    assert_clear_error(excinfo, "1 points", "at least 8")


@bad_input(
    "metrics",
    "NaN/Inf activations",
    "DataError naming the depth, the number of rows and the first ones",
)
def test_nan_rows():
    x = torch.randn(30, 6)
    x[[4, 7]] = float("nan")
    with pytest.raises(DataError) as excinfo:
        _metrics(x)
    assert_clear_error(excinfo, "depth 0", "2 rows", "[4, 7]")


@bad_input(
    "metrics",
    "n_boot=0 / n_boot=-5 / n_boot_spectral=0 / seed=-1",
    "ArgumentError naming the argument and its valid range",
)
@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"n_boot": 0}, "n_boot"),
        ({"n_boot": -5}, "n_boot"),
        ({"n_boot_spectral": 0}, "n_boot_spectral"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments(kw, name):
    with pytest.raises(ArgumentError) as excinfo:
        _metrics(torch.randn(30, 6), **kw)
    assert_clear_error(excinfo, name, ">= ")
