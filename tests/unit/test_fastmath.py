"""The vectorisable float32 power of the UMAP kernel against float64 ``x**b``."""

import numba
import numpy as np
import pytest

from explorer.kernel._fastmath import exp2f, log2f, powf
from explorer.kernel.umap_layout import ab_params


@numba.njit(fastmath=True)
def _apply(f, x, b):
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = f(x[i], b)
    return out


@numba.njit(inline="always", fastmath=True)
def _log2(x, b):
    return log2f(x)


@numba.njit(inline="always", fastmath=True)
def _exp2(x, b):
    return exp2f(x)


@numba.njit(inline="always", fastmath=True)
def _pow(x, b):
    return powf(x, b)


# every float32 in a wide range of squared distances, and the ends of the mantissa's halves
_X = np.concatenate(
    [np.logspace(-12, 8, 400_001), [1.0, 2.0, 0.5, np.sqrt(2.0), 1.9999999, 1e-4, 1e4]]
).astype(np.float32)


# (a, b) of UMAP's curve from tight to loose: b from ~0.58 to ~1.93
@pytest.mark.parametrize("spread, min_dist", [(1.0, 0.0), (1.0, 0.1), (1.0, 0.5), (3.0, 1.0)])
def test_powf_matches_float64_power(spread, min_dist):
    b = np.float32(ab_params(spread, min_dist)[1])
    got = _apply(_pow, _X, b).astype(np.float64)
    want = _X.astype(np.float64) ** np.float64(b)
    rel = np.abs(got - want) / want
    assert rel.max() < 6e-6  # b log2 x rounded in float32, |log2 x| <= 40
    near = (_X >= 1e-4) & (_X <= 1e4)  # where UMAP's squared distances lie
    assert rel[near].max() < 2e-6


def test_log2f_and_exp2f_match_numpy():
    got = _apply(_log2, _X, np.float32(0)).astype(np.float64)
    want = np.log2(_X.astype(np.float64))
    assert np.abs(got - want).max() < 4e-6  # |log2 x| <= 40: float32 rounding of e + log2 m
    y = np.linspace(-125, 125, 100_001).astype(np.float32)
    got = _apply(_exp2, y, np.float32(0)).astype(np.float64)
    assert np.allclose(got, np.exp2(y.astype(np.float64)), rtol=3e-7, atol=0)


def test_powf_of_zero_and_of_huge_values_stays_finite():
    b = np.float32(0.9)
    edge = np.array([0.0, 1e-45, 3e38, np.float32(np.inf)], dtype=np.float32)
    got = _apply(_pow, edge, b)
    assert np.all(np.isfinite(got))
    assert got[0] < 1e-30 and got[1] < 1e-30
    assert got[2] == pytest.approx(3e38**0.9, rel=1e-5)
