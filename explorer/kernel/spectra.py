"""Spectra of one matrix: the ESD of a weight matrix and the numbers that summarise it.

Conventions (see REFERENCES.md, "Spectra of one matrix"):

* The **ESD** (empirical spectral density) of an ``m x n`` matrix ``W`` is the set of eigenvalues
  of its Gram matrix on the smaller side, ``W^T W`` (``n x n``) when ``m >= n`` and ``W W^T``
  (``m x m``) otherwise, so there are ``k = min(m, n)`` of them. The non-zero eigenvalues of both
  Gram matrices are the same, ``lambda_i = s_i^2`` with ``s_i`` the singular values of ``W``. There
  is **no** ``1/N`` normalisation: this is what WeightWatcher 0.7.7 reports by default (its
  ``normalize`` option is off and ``spectral_norm`` is ``lambda_max`` of ``W^T W``), so ``alpha``,
  ``xmin`` and ``alpha_weighted`` compare one to one.
* Eigenvalues are computed by ``torch.linalg.eigvalsh`` of the Gram matrix in the requested dtype
  (float64 by default), clipped at 0 and sorted in descending order; singular values are their
  square roots. This is ~10x faster than ``svdvals`` on an H100 (4096 x 4096), ~3x on a CPU at
  384 x 384, but it squares the condition number: an eigenvalue is known to about
  ``k * eps * lambda_max`` absolute, so singular values below
  ``s_1 * sqrt(k * eps)`` are not resolved (``3e-7 s_1`` in float64, ``7e-3 s_1`` in float32 for
  ``k = 384``). :func:`gram_resolved` tells whether a spectrum is resolved down to its smallest
  value; ``explorer.spectra`` recomputes unresolved matrices with ``svdvals``.
* Every function takes numpy arrays or torch tensors, runs on the tensor's device, reduces over the
  last axis (so a stack of spectra is handled at once) and returns a Python number for a single
  spectrum, else an array of the input's kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from explorer.kernel.linalg import eigvalsh

__all__ = [
    "alpha_weighted",
    "condition",
    "effective_rank",
    "energy_top_k",
    "esd",
    "gram",
    "gram_resolved",
    "mp_edge",
    "n_spikes",
    "numerical_rank",
    "participation_ratio",
    "rankme",
    "rankme_from_singular_values",
    "singular_values",
    "stable_rank",
]

#: An eigenvalue of the Gram matrix is "resolved" when it exceeds this many times
#: ``k * eps * lambda_max`` (numpy's rank tolerance for a symmetric k x k matrix).
RESOLVE_FACTOR = 10.0


# -- plumbing ---------------------------------------------------------------------------------------
def _tensor(x, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, bool]:
    """``(tensor, came_from_numpy)``; non-float input becomes float64."""
    from_numpy = not isinstance(x, torch.Tensor)
    t = torch.as_tensor(np.asarray(x)) if from_numpy else x
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    return t, from_numpy


def _out(t: torch.Tensor, from_numpy: bool):
    """A 0-d result becomes a Python number; the rest keeps the kind of the input."""
    if t.ndim == 0:
        return t.item()
    return t.cpu().numpy() if from_numpy else t


def _dtype(dtype) -> torch.dtype:
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.replace("torch.", ""), None)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, not {dtype!r}")
    return dtype


def _shape_mn(shape) -> tuple[int, int]:
    m, n = (int(v) for v in tuple(shape)[-2:])
    return m, n


# -- the ESD ----------------------------------------------------------------------------------------
def gram(W, *, dtype=torch.float64):
    """The Gram matrix of ``W`` on its smaller side, in ``dtype``.

    Parameters
    ----------
    W : array or tensor, shape (..., m, n)
        One matrix or a stack of same-shape matrices.
    dtype : torch.float64 or torch.float32
        The precision of the product (the matrix is converted first).

    Returns
    -------
    G : array or tensor, shape (..., k, k), k = min(m, n)
        ``W^T W`` if ``m >= n``, else ``W W^T``.
    """
    t, from_numpy = _tensor(W, _dtype(dtype))
    if t.ndim < 2:
        raise ValueError(f"gram needs a matrix (..., m, n), got shape {tuple(t.shape)}")
    m, n = t.shape[-2:]
    g = t.mT @ t if m >= n else t @ t.mT
    return _out(g, from_numpy)


def _esd_from_gram(g: torch.Tensor) -> torch.Tensor:
    lam = eigvalsh(g)  # ascending
    return lam.flip(-1).clamp_min_(0.0)


def esd(W, *, dtype=torch.float64):
    """Eigenvalues of the Gram matrix of ``W`` (the empirical spectral density), descending.

    .. math:: \\lambda_i = \\mathrm{eig}_i(W^\\top W) = s_i(W)^2, \\quad i = 1..\\min(m, n)

    computed as ``eigvalsh`` of the Gram matrix on the smaller side (:func:`gram`) and clipped at 0.
    No ``1/N`` normalisation (WeightWatcher's default convention).

    Parameters
    ----------
    W : array or tensor, shape (..., m, n)
        One matrix or a stack of same-shape matrices; runs on the tensor's device.
    dtype : torch.float64 or torch.float32
        Precision of the Gram product and of the eigensolver. Eigenvalues carry an absolute error
        of about ``k * eps * lambda_1``; see :func:`gram_resolved`.

    Returns
    -------
    lam : array or tensor, shape (..., min(m, n))
        Non-negative, in descending order.
    """
    t, from_numpy = _tensor(W, _dtype(dtype))
    if t.ndim < 2:
        raise ValueError(f"esd needs a matrix (..., m, n), got shape {tuple(t.shape)}")
    m, n = t.shape[-2:]
    g = t.mT @ t if m >= n else t @ t.mT
    return _out(_esd_from_gram(g), from_numpy)


def singular_values(W, *, dtype=torch.float64):
    """Singular values of ``W``, descending, as square roots of :func:`esd`.

    Parameters
    ----------
    W : array or tensor, shape (..., m, n)
    dtype : torch.float64 or torch.float32

    Returns
    -------
    s : array or tensor, shape (..., min(m, n))
        Relative accuracy is good down to ``s_1 * sqrt(k * eps)``; below that use
        ``torch.linalg.svdvals``.
    """
    t, from_numpy = _tensor(W, _dtype(dtype))
    lam = esd(t, dtype=dtype)
    return _out(lam.sqrt(), from_numpy)


def gram_resolved(lam, k: int | None = None, dtype=None):
    """Whether the smallest eigenvalue of a Gram-computed ESD is above the solver's noise floor.

    ``lam_min > RESOLVE_FACTOR * k * eps * lam_max`` (numpy's rank tolerance for a symmetric
    ``k x k`` matrix, times 10). ``eigvalsh`` of a Gram matrix carries an absolute error below
    ``k * eps * lam_max`` (measured: at most ``0.13 k eps lam_max`` on random and ill-conditioned
    matrices, tests/unit/test_spectra_kernel.py), so when this holds every eigenvalue is within
    10 % relative in the worst case (1.3 % as measured; singular values half that), and the
    numerical rank and condition number can be read from the ESD. A zero spectrum counts as
    resolved.

    Parameters
    ----------
    lam : array or tensor, shape (..., k)
    k : int, optional
        Size of the Gram matrix (default: ``lam.shape[-1]``).
    dtype : torch dtype, optional
        Precision the ESD was computed in (default: that of ``lam``).
    """
    t, from_numpy = _tensor(lam)
    k = t.shape[-1] if k is None else int(k)
    eps = torch.finfo(dtype or t.dtype).eps
    top = t.amax(-1)
    ok = (t.amin(-1) > RESOLVE_FACTOR * k * eps * top) | (top <= 0)
    return _out(ok, from_numpy)


# -- summaries of a spectrum --------------------------------------------------------------------------
def stable_rank(s):
    """Stable rank ``||W||_F^2 / ||W||_2^2 = sum_i s_i^2 / s_1^2``.

    Scale invariant, between 1 and the rank. NaN for a zero matrix.

    Parameters
    ----------
    s : array or tensor, shape (..., k)
        Singular values (any order).

    References
    ----------
    Rudelson & Vershynin, "Sampling from large matrices: an approach through geometric functional
    analysis", J. ACM 2007.
    """
    t, f = _tensor(s)
    sq = t * t
    return _out(sq.sum(-1) / sq.amax(-1), f)


def effective_rank(s):
    """Effective rank (Roy & Vetterli): the exponential of the Shannon entropy of ``s / sum(s)``.

    .. math:: \\mathrm{erank} = \\exp\\Big(-\\sum_i p_i \\log p_i\\Big), \\quad
              p_i = s_i / \\sum_j s_j, \\quad 0 \\log 0 = 0

    Between 1 (rank one) and ``k`` (all singular values equal); scale invariant. NaN for a zero
    matrix. Note WeightWatcher's ``entropy`` column is a different quantity (entropy of ``s_i^2``
    normalised by ``log(rank)``).

    Parameters
    ----------
    s : array or tensor, shape (..., k)
        Singular values (any order, non-negative).

    References
    ----------
    Roy & Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007.
    """
    t, f = _tensor(s)
    p = t / t.sum(-1, keepdim=True)
    h = -torch.special.xlogy(p, p).sum(-1)
    return _out(h.exp(), f)


def participation_ratio(lam):
    """Participation ratio ``(sum_i lambda_i)^2 / sum_i lambda_i^2`` of eigenvalues ``lambda``.

    On an ESD, ``lambda_i = s_i^2``; on a covariance, its eigenvalues. Between 1 and ``k``; scale
    invariant; NaN when all eigenvalues are 0.

    Parameters
    ----------
    lam : array or tensor, shape (..., k)
        Eigenvalues (non-negative, any order).

    References
    ----------
    Gao, Trautmann, Yu, Santhanam, Ryu, Shenoy & Ganguli, "A theory of multineuronal
    dimensionality, dynamics and measurement", bioRxiv 2017.
    """
    t, f = _tensor(lam)
    return _out(t.sum(-1) ** 2 / (t * t).sum(-1), f)


def numerical_rank(s, shape, dtype=None):
    """Number of singular values above ``tol = s_1 * max(m, n) * eps`` (numpy's default rule).

    Parameters
    ----------
    s : array or tensor, shape (..., k)
        Singular values. They must be accurate down to ``tol``: from ``svdvals``, or from a Gram
        ESD for which :func:`gram_resolved` holds.
    shape : tuple
        ``(m, n)`` of the matrix (the last two entries are used).
    dtype : torch dtype, optional
        The dtype whose machine epsilon is used: the precision the spectrum was computed in
        (default: that of ``s``).

    Returns
    -------
    int, or an integer array for a stack. 0 for a zero matrix.
    """
    t, f = _tensor(s)
    m, n = _shape_mn(shape)
    eps = torch.finfo(dtype or t.dtype).eps
    tol = t.amax(-1, keepdim=True) * max(m, n) * eps
    return _out((t > tol).sum(-1), f)


def condition(s, shape, dtype=None):
    """Condition number ``s_1 / s_min`` where it is defined.

    ``s_1 / s_k`` (``k = min(m, n)``) when the matrix has full numerical rank
    (:func:`numerical_rank`), ``inf`` when it is rank deficient, NaN for a zero matrix.

    Parameters
    ----------
    s : array or tensor, shape (..., k)
        Singular values, accurate down to the rank tolerance (see :func:`numerical_rank`).
    shape : tuple
        ``(m, n)`` of the matrix.
    dtype : torch dtype, optional
        Precision used for the rank tolerance (default: that of ``s``).
    """
    t, f = _tensor(s)
    m, n = _shape_mn(shape)
    eps = torch.finfo(dtype or t.dtype).eps
    top = t.amax(-1)
    rank = (t > top.unsqueeze(-1) * max(m, n) * eps).sum(-1)
    full = (rank == min(m, n)) & (t.shape[-1] >= min(m, n))
    c = torch.where(full, top / t.amin(-1), torch.full_like(top, float("inf")))
    c = torch.where(top > 0, c, torch.full_like(top, float("nan")))
    return _out(c, f)


def energy_top_k(s, ks: Sequence[int] = (1, 5, 10)):
    """Share of the squared Frobenius norm in the ``k`` largest singular values, for each ``k``.

    .. math:: E_k = \\sum_{i \\le k} s_i^2 \\Big/ \\sum_i s_i^2

    ``E_k = 1`` for ``k >= min(m, n)``; NaN for a zero matrix.

    Parameters
    ----------
    s : array or tensor, shape (..., k)
        Singular values (any order).
    ks : sequence of int
        The cut-offs, each >= 1.

    Returns
    -------
    array or tensor, shape (..., len(ks))
    """
    t, f = _tensor(s)
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"energy_top_k needs k >= 1, got {ks}")
    sq = (t * t).sort(-1, descending=True).values
    cum = sq.cumsum(-1)
    idx = torch.tensor([min(k, t.shape[-1]) - 1 for k in ks], device=t.device)
    out = cum.index_select(-1, idx) / cum[..., -1:]
    return out.cpu().numpy() if f else out


def rankme(Z, *, center: bool = True, eps: float = 1e-7, dtype=torch.float64):
    """RankMe of an embedding matrix: the effective rank with Garrido et al.'s epsilon.

    .. math:: \\mathrm{RankMe}(Z) = \\exp\\Big(-\\sum_k p_k \\log p_k\\Big), \\quad
              p_k = \\frac{s_k(Z)}{\\lVert s(Z) \\rVert_1} + \\varepsilon

    over the ``min(N, D)`` singular values of the ``N x D`` embedding matrix.

    Parameters
    ----------
    Z : array or tensor, shape (..., N, D)
        Embeddings, one row per point.
    center : bool, default True
        Subtract the mean over points first (explorer's convention for representations; the paper
        applies RankMe to the raw embeddings, pass ``center=False`` for that).
    eps : float, default 1e-7
        The paper's epsilon.
    dtype : torch.float64 or torch.float32
        Precision of the spectrum (computed through the Gram matrix, :func:`singular_values`).

    References
    ----------
    Garrido, Balestriero, Najman & LeCun, "RankMe: Assessing the downstream performance of
    pretrained self-supervised representations by their rank", ICML 2023.
    """
    t, f = _tensor(Z, _dtype(dtype))
    if center:
        t = t - t.mean(-2, keepdim=True)
    return _out(_rankme(singular_values(t, dtype=dtype), eps), f)


def rankme_from_singular_values(s, *, eps: float = 1e-7):
    """:func:`rankme` from the singular values of the (centred) embedding matrix."""
    t, f = _tensor(s)
    return _out(_rankme(t, eps), f)


def _rankme(s: torch.Tensor, eps: float) -> torch.Tensor:
    p = s / s.sum(-1, keepdim=True) + eps
    return (-(p * p.log()).sum(-1)).exp()


# -- random-matrix reference and the heavy-tail summary -----------------------------------------------
def mp_edge(lam, shape):
    """Marchenko-Pastur bulk edge for the ESD of an ``m x n`` matrix, in the units of :func:`esd`.

    For ``X = W^T W / N`` with ``W`` of ``N x M`` (``N >= M``), i.i.d. entries of variance ``v`` and
    ``Q = N / M``, the bulk of ``X``'s eigenvalues ends at ``v (1 + 1/sqrt(Q))^2``. The ESD here is
    not divided by ``N``, so the edge is

    .. math:: \\lambda_+ = N v (1 + \\sqrt{M/N})^2 = v (\\sqrt{m} + \\sqrt{n})^2 .

    The element variance is estimated from the matrix itself, ``v = ||W||_F^2 / (m n) =
    sum(lambda) / (m n)`` (entries assumed centred). Spikes inflate this estimate, so the edge errs
    high and the spike count (:func:`n_spikes`) errs low.

    Parameters
    ----------
    lam : array or tensor, shape (..., k)
        The ESD (eigenvalues of ``W^T W``).
    shape : tuple
        ``(m, n)`` of ``W``.

    References
    ----------
    Marchenko & Pastur, "Distribution of eigenvalues for some sets of random matrices", Mat. Sb.
    1967; Martin & Mahoney, "Implicit self-regularization in deep neural networks", JMLR 2021.
    """
    t, f = _tensor(lam)
    return _out(_mp_edge(t, *_shape_mn(shape)), f)


def _mp_edge(t: torch.Tensor, m: int, n: int) -> torch.Tensor:
    return t.sum(-1) / (m * n) * (m**0.5 + n**0.5) ** 2


def n_spikes(lam, shape):
    """Number of ESD eigenvalues above the Marchenko-Pastur bulk edge :func:`mp_edge`.

    Parameters
    ----------
    lam : array or tensor, shape (..., k)
    shape : tuple
        ``(m, n)`` of ``W``.
    """
    t, f = _tensor(lam)
    edge = _mp_edge(t, *_shape_mn(shape))
    return _out((t > edge.unsqueeze(-1)).sum(-1), f)


def alpha_weighted(alpha, lam_max):
    """``alpha * log10(lambda_max)`` (Martin & Mahoney's weighted alpha, WeightWatcher's column).

    References
    ----------
    Martin, Peng & Mahoney, "Predicting trends in the quality of state-of-the-art neural networks
    without access to training or testing data", Nature Communications 2021.
    """
    a, f = _tensor(alpha)
    lm, _ = _tensor(lam_max)
    return _out(a * torch.log10(lm.to(a)), f)
