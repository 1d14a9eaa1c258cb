"""compare() and Comparison.intruders(): out-of-range arguments are refused before any work."""

from __future__ import annotations

import pytest
import torch

import explorer as ex
from explorer.errors import ArgumentError
from tests.reliability.catalogue import assert_clear_error, bad_input


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(12, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4))
    b = torch.nn.Sequential(torch.nn.Linear(12, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4))
    b.load_state_dict({k: v + 0.1 * torch.randn_like(v) for k, v in a.state_dict().items()})
    return ex.load(a, name="a"), ex.load(b, name="b")


@bad_input(
    "compare",
    "intruder_k=-1 / 0 (reported 0 intruders everywhere)",
    "ArgumentError: 'intruder_k=-1 is out of range: it must be >= 1'",
)
@pytest.mark.parametrize("k", [-1, 0])
def test_intruder_k_out_of_range(pair, k):
    with pytest.raises(ArgumentError) as excinfo:
        ex.compare(*pair, intruder_k=k, device="cpu")
    assert_clear_error(excinfo, f"intruder_k={k}", ">= 1")


@bad_input(
    "compare",
    "ks=[0, 4] / ks=[] / ks=4 (not a list)",
    "ArgumentError naming ks, the offending entry and the range",
)
@pytest.mark.parametrize(
    ("ks", "words"), [([0, 4], ("ks", "0", ">= 1")), ([], ("ks", "empty")), (4, ("ks", "sequence"))]
)
def test_bad_ks(pair, ks, words):
    with pytest.raises(ArgumentError) as excinfo:
        ex.compare(*pair, ks=ks, device="cpu")
    assert_clear_error(excinfo, *words)


@bad_input(
    "compare",
    "epsilon=0 / 1.5 / nan",
    "ArgumentError: epsilon must be in (0.0, 1.0] (a cosine threshold)",
)
@pytest.mark.parametrize("eps", [0.0, 1.5, float("nan")])
def test_bad_epsilon(pair, eps):
    with pytest.raises(ArgumentError) as excinfo:
        ex.compare(*pair, epsilon=eps, device="cpu")
    assert_clear_error(excinfo, "epsilon", "(0.0, 1.0]")


@bad_input(
    "compare",
    "method='svd' / seed=-3",
    "ArgumentError naming the argument and what is allowed",
)
@pytest.mark.parametrize(
    ("kw", "words"),
    [({"method": "svd"}, ("method", "'svd'", "randomized")), ({"seed": -3}, ("seed", "-3"))],
)
def test_bad_method_or_seed(pair, kw, words):
    with pytest.raises(ArgumentError) as excinfo:
        ex.compare(*pair, device="cpu", **kw)
    assert_clear_error(excinfo, *words)


@bad_input(
    "compare",
    "Comparison.intruders(k=-1) / (epsilon=2) / (side='up')",
    "ArgumentError naming the argument (k=-1 gave 0 intruders)",
)
@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"k": -1}, ("k=-1", ">= 1")),
        ({"epsilon": 2}, ("epsilon=2",)),
        ({"side": "up"}, ("side", "'up'")),
    ],
)
def test_intruders_bad_arguments(pair, kw, words):
    cmp = ex.compare(*pair, device="cpu")
    with pytest.raises(ArgumentError) as excinfo:
        cmp.intruders(**kw)
    assert_clear_error(excinfo, *words)
