"""Out-of-range arguments of spectra() and capture(): an ArgumentError before any work."""

from __future__ import annotations

import pytest
import torch

import explorer as ex
from explorer.errors import ArgumentError
from tests.reliability.catalogue import assert_clear_error, bad_input


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ex.load(
        torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)), name="m"
    )


@bad_input(
    "weights",
    "ex.spectra(ks=[0]) / ks=[-2, 4] / ks=[]",
    "ArgumentError naming ks and the range (>= 1)",
)
@pytest.mark.parametrize("ks", [[0], [-2, 4], []])
def test_spectra_bad_ks(model, ks):
    with pytest.raises(ArgumentError) as excinfo:
        ex.spectra(model, ks=ks, device="cpu")
    assert_clear_error(excinfo, "ks")


@bad_input(
    "probes and capture",
    "capture(batch_size=0 / max_points=0 / max_length=-1 / max_bytes=0 / seed=-1)",
    "ArgumentError naming the argument, its value and the range, before the model runs",
)
@pytest.mark.parametrize("arg", ["batch_size", "max_points", "max_length", "max_bytes", "seed"])
def test_capture_bad_arguments(model, arg):
    value = -1 if arg in ("max_length", "seed") else 0
    with pytest.raises(ArgumentError) as excinfo:
        ex.capture(model, torch.randn(20, 6), device="cpu", **{arg: value})
    assert_clear_error(excinfo, f"{arg}={value}", ">= ")


@bad_input(
    "projections",
    "Projection.quality(k=[0]) / k larger than N/2 / knn_k=N",
    "ArgumentError naming k or knn_k and the valid range for the number of points",
)
@pytest.mark.parametrize(
    ("kw", "name"), [({"k": [0]}, "k"), ({"k": [15]}, "k"), ({"k": [5], "knn_k": 30}, "knn_k")]
)
def test_quality_bad_arguments(kw, name):
    from explorer.activations import Activations
    from explorer.jobs import JobEngine

    p = ex.project(Activations({0: torch.randn(30, 5)}), engine=JobEngine(cache=False))
    with pytest.raises(ArgumentError) as excinfo:
        p.quality(**kw)
    assert_clear_error(excinfo, name)
