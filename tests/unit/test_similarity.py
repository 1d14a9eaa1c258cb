"""Linear CKA vs the HSIC closed form, its invariances, the debiased estimator, ex.similarity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import explorer as ex
import explorer.kernel.similarity as sim
from explorer.kernel import cka


def _hsic(k, g):
    n = len(k)
    h = np.eye(n) - 1.0 / n
    return np.trace(k @ h @ g @ h) / (n - 1) ** 2


def _hsic_unbiased(k, g):
    """Song et al. 2012, eq. 5, on Gram matrices with their diagonals zeroed."""
    n = len(k)
    k, g = k - np.diag(np.diag(k)), g - np.diag(np.diag(g))
    one = np.ones(n)
    return (
        np.trace(k @ g)
        + (one @ k @ one) * (one @ g @ one) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * one @ k @ g @ one
    ) / (n * (n - 3))


def _cka_gram(x, y, unbiased=False):
    f = _hsic_unbiased if unbiased else _hsic
    k, g = x @ x.T, y @ y.T
    return f(k, g) / np.sqrt(f(k, k) * f(g, g))


def _data(seed=0, n=40, d1=7, d2=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d1))
    y = x[:, :d2] @ rng.standard_normal((d2, d2)) + 0.5 * rng.standard_normal((n, d2))
    return x, y


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 60))
def test_cka_matches_the_hsic_closed_form(seed, n):
    x, y = _data(seed, n)
    assert cka(x, y) == pytest.approx(_cka_gram(x, y), rel=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 60))
def test_debiased_cka_matches_the_unbiased_hsic_formula(seed, n):
    x, y = _data(seed, n)
    assert cka(x, y, debiased=True) == pytest.approx(_cka_gram(x, y, unbiased=True), rel=1e-9)


def test_cka_invariances_and_symmetry():
    x, y = _data(1)
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((7, 7)))
    assert cka(x, x @ q) == pytest.approx(1.0, rel=1e-12)
    assert cka(x, 3.5 * x) == pytest.approx(1.0, rel=1e-12)
    assert cka(x, x + 10.0) == pytest.approx(1.0, rel=1e-12)
    assert cka(x, y) == pytest.approx(cka(y, x), rel=1e-12)
    assert cka(x, y, debiased=True) == pytest.approx(cka(y, x, debiased=True), rel=1e-12)
    assert 0 < cka(x, y) < 1


def test_cka_accumulated_over_row_blocks_equals_one_block(monkeypatch):
    x, y = _data(3, n=500, d1=30, d2=20)
    whole = cka(x, y), cka(x, y, debiased=True)
    monkeypatch.setattr(sim, "_BLOCK_ELEMENTS", 50 * 7)  # 7 rows per block, a ragged last one
    assert cka(x, y) == pytest.approx(whole[0], rel=1e-12)
    assert cka(x, y, debiased=True) == pytest.approx(whole[1], rel=1e-12)


def test_float32_and_float16_inputs():
    x, y = _data(4, n=300)
    ref = cka(x, y)
    assert cka(x.astype(np.float32), y.astype(np.float32)) == pytest.approx(ref, rel=1e-6)
    xt = torch.as_tensor(x, dtype=torch.float16)
    yt = torch.as_tensor(y, dtype=torch.float16)
    assert cka(xt, yt) == pytest.approx(ref, abs=2e-3)


def test_bad_inputs_say_what_is_wrong():
    x, _ = _data()
    with pytest.raises(ValueError, match="same points"):
        cka(x, x[:-1])
    with pytest.raises(ValueError, match="at least 4"):
        cka(x[:3], x[:3])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cka(bad, x)
    assert np.isnan(cka(np.ones((10, 3)), x[:10]))


def _acts(seed, n=60):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n, 8))
    states = {
        d: torch.as_tensor(np.tanh(base @ rng.standard_normal((8, 8)) * d)) for d in (1, 2, 3)
    }
    return ex.Activations(
        states, {"text": np.array([f"p{i}" for i in range(n)])}, {"checkpoint": f"m{seed}"}
    )


def test_similarity_depth_by_depth():
    a, b = _acts(0), _acts(1)
    self_sim = ex.similarity(a)
    assert self_sim.shape == (3, 3)
    np.testing.assert_allclose(np.diag(self_sim), 1.0, rtol=1e-12)
    np.testing.assert_allclose(self_sim.values, self_sim.values.T)
    cross = ex.similarity(a, b, debiased=True)
    assert cross.index.name == "depth_a" and cross.columns.name == "depth_b"
    assert cross.loc[2, 3] == pytest.approx(cka(a[2], b[3], debiased=True), rel=1e-12)
    assert cross.attrs["a"] == "m0" and cross.attrs["n_points"] == 60


def test_similarity_refuses_different_points():
    a = _acts(0)
    with pytest.raises(ValueError, match="60 and 50 points"):
        ex.similarity(a, _acts(1, n=50))
    other = _acts(1)
    other.labels["text"] = other.labels["text"][::-1].copy()
    with pytest.raises(ValueError, match="'text' labels differ"):
        ex.similarity(a, other)
