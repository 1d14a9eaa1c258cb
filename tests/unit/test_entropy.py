"""Diffusion spectral entropy: closed-form limits and a direct numpy implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.kernel.entropy import (
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
    diffusion_spectrum,
)


def _numpy_dse(x, sigma=10.0, t=1.0):
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / sigma)
    p = k / k.sum(1, keepdims=True)
    lam = np.linalg.eigvals(p)
    a = np.abs(lam) ** t
    q = a / a.sum()
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


def test_identical_points_have_zero_entropy():
    x = np.ones((30, 5))
    assert diffusion_spectral_entropy(x) == pytest.approx(0.0, abs=1e-9)


def test_separated_clusters_give_log_c():
    centres = np.eye(4) * 1000.0
    x = np.repeat(centres, 10, axis=0)
    y = np.repeat(np.arange(4), 10)
    assert diffusion_spectral_entropy(x) == pytest.approx(math.log(4), abs=1e-9)
    assert diffusion_spectral_mutual_information(x, y) == pytest.approx(math.log(4), abs=1e-9)


def test_far_apart_points_give_log_n():
    x = np.eye(25) * 100.0
    assert diffusion_spectral_entropy(x) == pytest.approx(math.log(25), abs=1e-9)


@pytest.mark.parametrize("t", [1.0, 2.0])
def test_matches_direct_formula(t):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, 6)) * 1.5
    assert diffusion_spectral_entropy(x, t=t) == pytest.approx(_numpy_dse(x, t=t), rel=1e-8)
    lam = diffusion_spectrum(x).numpy()
    assert lam[0] == pytest.approx(1.0, abs=1e-10) and np.all(np.abs(lam) <= 1 + 1e-10)


def test_subsample_is_seeded_and_tensor_input():
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.standard_normal((300, 4)), dtype=torch.float32)
    a = diffusion_spectral_entropy(x, max_points=100, seed=3)
    assert a == diffusion_spectral_entropy(x, max_points=100, seed=3)
    assert a != diffusion_spectral_entropy(x, max_points=100, seed=4)
    with pytest.raises(ValueError, match="labels for"):
        diffusion_spectral_mutual_information(x, np.zeros(10))
