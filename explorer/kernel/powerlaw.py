"""Power-law fit of a spectrum's tail: Clauset, Shalizi & Newman's method, vectorised.

For each candidate ``xmin`` (every distinct value but the largest) the continuous maximum-likelihood
exponent of ``p(x) ~ x^-alpha`` on ``x >= xmin`` is

.. math:: \\hat\\alpha = 1 + n \\Big/ \\sum_{x_i \\ge x_{min}} \\ln(x_i / x_{min})

and the Kolmogorov-Smirnov distance between the fitted CDF ``1 - (x / xmin)^(1 - alpha)`` and the
empirical CDF of the tail is ``D``; the fit keeps the ``xmin`` with the smallest ``D`` (the first
one on ties). This is what the ``powerlaw`` package's ``Fit(data)`` and WeightWatcher 0.7.7's
default fit (``pl_package='ww'``, ``fix_fingers=False``, ``xmax=None``) do; both compare the CDFs at
the tail's points with the empirical CDF taken just below each point, ``(j - i) / n`` for the
``j``-th sorted value of a tail starting at index ``i`` (with ties: the index of the first equal
value), and so does this module, so the three agree to rounding.

All candidates are evaluated at once: the exponents from suffix sums of ``log x`` and the KS
distances from one ``(candidates x points)`` block per chunk of candidates, on the data's device.
There is no Python loop over candidates.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = ["PowerLawFit", "fit_powerlaw"]

NO_FIT = "no fit: fewer than 2 distinct values above the floor"

# elements of one (batch, candidates, points) block: small enough to stay in cache on a CPU
# (2**17 float64 = 1 MiB), large on a GPU (2**24 = 128 MiB) where launches are the cost
_BLOCK_CPU = 1 << 17
_BLOCK_GPU = 1 << 24


class PowerLawFit(NamedTuple):
    """Result of :func:`fit_powerlaw` (arrays for a stack of spectra, numbers for one).

    Attributes
    ----------
    alpha : float
        The exponent, ``1 + n / sum ln(x_i / xmin)`` over the tail (NaN when there is no fit).
    xmin : float
        The start of the tail, the candidate with the smallest KS distance.
    D : float
        The KS distance of the chosen fit.
    n_tail : int
        Number of values ``>= xmin`` (WeightWatcher's ``num_pl_spikes``); 0 when there is no fit.
    sigma : float
        Standard error of alpha, ``(alpha - 1) / sqrt(n_tail)`` (Clauset et al., eq. 3.2).
    status : str
        ``"ok"`` or why there is no fit (:data:`NO_FIT`); a stack has one status per spectrum.
    """

    alpha: object
    xmin: object
    D: object
    n_tail: object
    sigma: object
    status: object


def fit_powerlaw(x, *, floor=0.0, min_tail: int = 2) -> PowerLawFit:
    """Fit a power law to the tail of ``x`` with ``xmin`` chosen by the minimum KS distance.

    Parameters
    ----------
    x : array or tensor, shape (k,) or (B, k)
        The values (an ESD, any order), or a stack of ``B`` of them fitted independently.
    floor : float or array of shape (B,), default 0
        Values ``<= floor`` are left out (always those ``<= 0``). ``explorer.spectra`` passes the
        eigensolver's noise floor ``k * eps * lambda_max``, so eigenvalues that are numerically zero
        are not fitted; WeightWatcher drops eigenvalues ``<= 1e-5`` (an absolute threshold).
    min_tail : int, default 2
        Smallest tail considered. With the rule that the largest distinct value is never a
        candidate, the default is exactly the ``powerlaw`` package's candidate set.

    Returns
    -------
    PowerLawFit
        ``alpha, xmin, D, n_tail, sigma, status``. A spectrum with fewer than 2 distinct values
        above the floor has no candidate: its fit is flagged (``status`` says why), its numbers
        are NaN and ``n_tail`` is 0; nothing is raised, so one bad spectrum in a stack does not
        stop the others.

    References
    ----------
    Clauset, Shalizi & Newman, "Power-law distributions in empirical data", SIAM Review 2009;
    Alstott, Bullmore & Plenz, "powerlaw: a Python package for analysis of heavy-tailed
    distributions", PLoS ONE 2014; Martin & Mahoney, JMLR 2021 (the ESD tail as a quality measure).
    """
    from_numpy = not isinstance(x, torch.Tensor)
    t = torch.as_tensor(np.asarray(x)) if from_numpy else x
    if t.ndim not in (1, 2):
        raise ValueError(f"fit_powerlaw takes shape (k,) or (B, k), got {tuple(t.shape)}")
    single = t.ndim == 1
    t = t.reshape(1, -1) if single else t
    fl = torch.as_tensor(floor, dtype=torch.float64, device=t.device).reshape(-1)
    alpha, xmin, d, n_tail, ok = fit_sorted(
        t.to(torch.float64).sort(-1).values, fl, min_tail=min_tail
    )
    sigma = (alpha - 1) / n_tail.clamp_min(1).to(alpha).sqrt()
    status = tuple("ok" if v else NO_FIT for v in ok.tolist())
    if single:
        return PowerLawFit(
            alpha.item(), xmin.item(), d.item(), int(n_tail.item()), sigma.item(), status[0]
        )
    conv = (lambda v: v.cpu().numpy()) if from_numpy else (lambda v: v)
    return PowerLawFit(conv(alpha), conv(xmin), conv(d), conv(n_tail), conv(sigma), status)


def fit_sorted(x: torch.Tensor, floor: torch.Tensor, *, min_tail: int = 2):
    """The batched fit on ascending rows ``x`` (B, k) in float64: ``(alpha, xmin, D, n_tail, ok)``.

    ``floor`` is a scalar or one value per row. Rows without a candidate get NaN and ``n_tail`` 0.
    """
    b, k = x.shape
    dev = x.device
    valid = (x > floor.reshape(-1, 1)) & (x > 0)
    lx = torch.log(torch.where(valid, x, torch.ones_like(x)))
    suffix = lx.flip(-1).cumsum(-1).flip(-1)  # sum_{j >= i} ln x_j
    idx = torch.arange(k, device=dev)
    n = (k - idx).to(x.dtype)  # tail sizes
    denom = suffix - n * lx  # sum_{j >= i} ln(x_j / x_i)
    alpha = 1 + n / denom
    first = torch.ones_like(valid)
    first[:, 1:] = x[:, 1:] != x[:, :-1]
    cand = valid & first & (x < x[:, -1:]) & (n >= min_tail) & (denom > 0)
    left = torch.searchsorted(x.contiguous(), x.contiguous(), side="left").to(x.dtype)

    ks_d = torch.full((b, k), float("inf"), dtype=x.dtype, device=dev)
    rows = cand.any(0).nonzero().flatten()
    if rows.numel():
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        block = _BLOCK_CPU if dev.type == "cpu" else _BLOCK_GPU
        step = max(1, block // max(1, b * k))
        for a in range(lo, hi, step):  # chunks of candidates, bounded memory
            z = min(hi, a + step)
            # the tail of candidate i is x[i:], so the block only needs columns a.. (j >= i)
            y = lx[:, None, a:] - lx[:, a:z, None]
            y.mul_(1 - alpha[:, a:z, None])
            torch.expm1(y, out=y)  # fitted CDF = -expm1((1 - alpha) ln(x_j / x_i))
            emp = (left[:, None, a:] - idx[a:z, None].to(x.dtype)) / n[a:z, None]
            y.add_(emp).abs_()  # |fitted - empirical|
            y.masked_fill_(idx[None, None, a:] < idx[None, a:z, None], 0.0)
            ks_d[:, a:z] = torch.where(cand[:, a:z], y.amax(-1), ks_d[:, a:z])
    best = ks_d.argmin(-1, keepdim=True)
    ok = cand.any(-1)
    nan = torch.full((b,), float("nan"), dtype=x.dtype, device=dev)
    a_best = torch.where(ok, alpha.gather(-1, best).squeeze(-1), nan)
    x_best = torch.where(ok, x.gather(-1, best).squeeze(-1), nan)
    d_best = torch.where(ok, ks_d.gather(-1, best).squeeze(-1), nan)
    n_tail = torch.where(ok, k - best.squeeze(-1), torch.zeros_like(best.squeeze(-1)))
    return a_best, x_best, d_best, n_tail, ok
