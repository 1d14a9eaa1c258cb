"""Diffusion spectral entropy (DSE) and diffusion spectral mutual information (DSMI).

.. math:: K_{ij} = \\exp(-\\lVert x_i - x_j \\rVert^2 / \\sigma), \\quad P = D^{-1} K, \\quad
          p_i = \\frac{|\\lambda_i|^t}{\\sum_j |\\lambda_j|^t}, \\quad
          \\mathrm{DSE} = -\\sum_i p_i \\log p_i

with ``D = diag(K 1)`` and ``lambda`` the eigenvalues of the diffusion matrix ``P``; defaults
``sigma = 10``, ``t = 1``, at most 10,000 points (a seeded subsample). ``P`` is similar to the
symmetric ``D^{-1/2} K D^{-1/2}``, so its eigenvalues are real and come from ``eigvalsh`` of that
matrix (float64, on the tensor's device). Limits: ``N`` identical points give one eigenvalue 1 and
DSE = 0; ``c`` far-apart groups of identical points give ``c`` eigenvalues 1, DSE = ``log c``;
``N`` points all far apart (``||x_i - x_j||^2 >> sigma``) give ``P = I``, DSE = ``log N``.

.. math:: \\mathrm{DSMI}(X; Y) = \\mathrm{DSE}(X) - \\sum_y P(Y = y)\\, \\mathrm{DSE}(X \\mid Y = y)

Reference: Liao, Ma, Krishnaswamy et al., "Assessing Neural Network Representations During
Training Using Noise-Resilient Diffusion Spectral Entropy", 2023.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "diffusion_spectral_entropy",
    "diffusion_spectral_mutual_information",
    "diffusion_spectrum",
]

MAX_POINTS = 10_000


def _points(X) -> torch.Tensor:
    t = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if t.ndim != 2 or t.shape[0] < 1:
        raise ValueError(
            f"expected a non-empty (N, D) matrix of points, got shape {tuple(t.shape)}"
        )
    return t.to(torch.float64)


def _subsample(t: torch.Tensor, max_points: int, seed: int) -> torch.Tensor:
    if t.shape[0] <= max_points:
        return t
    sel = np.sort(np.random.default_rng(seed).choice(t.shape[0], max_points, replace=False))
    return t[torch.as_tensor(sel, device=t.device)]


def diffusion_spectrum(X, *, sigma: float = 10.0) -> torch.Tensor:
    """Eigenvalues of the diffusion matrix ``P = D^{-1} K`` of ``X`` (all points), descending."""
    t = _points(X)
    d2 = torch.cdist(t, t).square_()
    k = torch.exp(-d2 / sigma)
    s = k.sum(1).rsqrt()
    m = s.unsqueeze(1) * k * s.unsqueeze(0)
    return torch.linalg.eigvalsh(m).flip(-1)


def _entropy(lam: torch.Tensor, t: float) -> float:
    a = lam.abs() ** t
    p = a / a.sum()
    return float(-torch.special.xlogy(p, p).sum())


def diffusion_spectral_entropy(
    X, *, sigma: float = 10.0, t: float = 1.0, max_points: int = MAX_POINTS, seed: int = 0
) -> float:
    """Diffusion spectral entropy of the points ``X`` (module docstring for the formula).

    Parameters
    ----------
    X : array or tensor (N, D)
    sigma : float, default 10
        Kernel scale: ``K_ij = exp(-||x_i - x_j||^2 / sigma)`` (not squared, as in REFERENCES.md).
    t : float, default 1
        Diffusion time (power of the eigenvalues).
    max_points : int, default 10,000
        Larger inputs are subsampled (seeded by ``seed``) to this many points.
    """
    x = _subsample(_points(X), max_points, seed)
    return _entropy(diffusion_spectrum(x, sigma=sigma), t)


def diffusion_spectral_mutual_information(
    X, labels, *, sigma: float = 10.0, t: float = 1.0, max_points: int = MAX_POINTS, seed: int = 0
) -> float:
    """DSMI: ``DSE(X) - sum_y P(y) DSE(X | Y = y)`` with class frequencies ``P(y)``.

    ``X`` and every class are subsampled to ``max_points`` (seeded).
    """
    x = _points(X)
    y = np.asarray(labels)
    if len(y) != x.shape[0]:
        raise ValueError(f"{len(y)} labels for {x.shape[0]} points")
    total = diffusion_spectral_entropy(x, sigma=sigma, t=t, max_points=max_points, seed=seed)
    classes, counts = np.unique(y, return_counts=True)
    cond = 0.0
    for c, n in zip(classes, counts, strict=True):
        rows = torch.as_tensor(np.flatnonzero(y == c), device=x.device)
        h = diffusion_spectral_entropy(x[rows], sigma=sigma, t=t, max_points=max_points, seed=seed)
        cond += n / len(y) * h
    return total - cond
