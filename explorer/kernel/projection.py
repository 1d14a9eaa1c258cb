"""Linear projection and rigid alignment of point clouds: PCA, orthogonal Procrustes, displacement.

* **PCA** (Pearson 1901; Jolliffe 2002). ``X`` (N x D) is centred, ``X_c = X - 1 mean(X)``; with
  the covariance ``C = X_c^T X_c / (N - 1) = V diag(lambda) V^T`` (eigenvalues descending), the
  coordinates are ``Y = X_c V_k`` and the explained variance ratio of component ``j`` is
  ``lambda_j / tr(C)``. ``tr(C) = ||X_c||_F^2 / (N - 1)`` is exact whichever solver ran.
* **Orthogonal Procrustes** (Schönemann 1966). For centred ``A`` (source) and ``B`` (target),
  ``R = U V^T`` from ``svd(A^T B) = U S V^T`` minimises ``||A R - B||_F`` over orthogonal ``R``
  (rotations and reflections); same convention as ``scipy.linalg.orthogonal_procrustes``.
* **Displacement**: the mean Euclidean distance ``(1/N) sum_i ||a_i - b_i||`` between the
  positions of the same points in two layouts.

Every function takes numpy arrays or torch tensors, runs on the tensor's device and returns the
input's kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.kernel.spectra import _tensor
from explorer.kernel.subspaces import seeded_svd_lowrank

__all__ = ["PCAResult", "displacement", "pca", "procrustes", "procrustes_rotation"]

#: ``solver="auto"`` takes the exact eigendecomposition when ``min(N, D)`` is at most this.
EXACT_MAX = 2048


@dataclass(frozen=True)
class PCAResult:
    """What :func:`pca` returns.

    Attributes
    ----------
    coords : (N, k) float32
        ``X_c V_k``, the centred points in the principal axes.
    explained_variance : (k,) float64
        ``lambda_1 >= ... >= lambda_k``, eigenvalues of the covariance (``1/(N - 1)``).
    explained_variance_ratio : (k,)
        ``lambda_j / tr(C)``.
    components : (k, D)
        The principal axes as rows (scikit-learn's ``components_``), sign-normalised so that the
        entry of largest magnitude of each row is positive.
    mean : (D,)
        The column means that were subtracted.
    solver : str
        ``"covariance"``, ``"gram"`` (exact) or ``"randomized"``.
    """

    coords: np.ndarray | torch.Tensor
    explained_variance: np.ndarray | torch.Tensor
    explained_variance_ratio: np.ndarray | torch.Tensor
    components: np.ndarray | torch.Tensor
    mean: np.ndarray | torch.Tensor
    solver: str


def _compute(x: torch.Tensor) -> torch.Tensor:
    """float64 on the CPU, float32 on an accelerator (float16/bfloat16 input is upcast)."""
    return x.to(torch.float64 if x.device.type == "cpu" else torch.float32)


def _wide(device: torch.device) -> torch.dtype:
    """The dtype variances are solved and returned in: float64, where the device has it."""
    return torch.float64 if device.type in ("cpu", "cuda") else torch.float32


def _eigh64(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``eigh`` of the symmetric ``m`` solved in float64 (:func:`_wide`) whatever the precision
    it was formed in: eigenvalues float64, eigenvectors in ``m``'s dtype. cuSOLVER's float32
    ``eigh`` of the exactly rounded matrix gave relative eigenvalue errors of 1.4e-5 (256 x 256)
    and 8.5e-5 (300 x 300) on an H200, where forming the product in float32 costs 1e-7; in
    float64 the solve, at most 2048 x 2048 here, is a small part of the product's cost."""
    w, v = torch.linalg.eigh(m.to(_wide(m.device)))
    return w, v.to(m.dtype)


def _check(x: torch.Tensor, name: str, min_rows: int = 2) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an (N, D) matrix, got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name}: need at least {min_rows} points, got {x.shape[0]}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: holds NaN/Inf values")


def pca(
    X,
    n_components: int = 2,
    *,
    solver: str = "auto",
    seed: int = 0,
    n_oversamples: int = 10,
    n_iter: int = 4,
) -> PCAResult:
    """Principal component analysis of the centred rows of ``X``, on ``X``'s device.

    ``X_c = X - mean``; ``C = X_c^T X_c / (N - 1) = V diag(lambda) V^T``; coordinates
    ``Y = X_c V_k``; explained variance ratio ``lambda_j / tr(C)`` (Pearson 1901; Jolliffe 2002,
    "Principal Component Analysis"). Same numbers as ``sklearn.decomposition.PCA`` (including its
    sign convention, ``svd_flip`` on the components).

    Parameters
    ----------
    X : array or tensor, shape (N, D)
    n_components : int
        ``1 <= k <= min(N, D)``; 2 or 3 for a picture.
    solver : {"auto", "exact", "randomized"}
        ``"exact"``: ``eigh`` of the D x D covariance, or of the N x N Gram matrix ``X_c X_c^T``
        when N < D (``Y = U_k diag(sqrt(mu_k))``, same eigenvalues). ``"randomized"``:
        ``torch.svd_lowrank`` of ``X_c`` with ``k + n_oversamples`` columns and ``n_iter`` power
        iterations (Halko, Martinsson & Tropp 2011), seeded by ``seed``. ``"auto"``: exact when
        ``min(N, D) <= 2048``.
    seed : int
        Seed of the randomised solver's test matrix (the exact solvers are deterministic).

    Computed in float64 on the CPU. On a GPU the products and coordinates are float32 and the
    exact solvers' eigendecomposition float64 (float32's costs up to ~1e-4 of each variance);
    coordinates are returned as float32, variances as float64.
    """
    x, from_numpy = _tensor(X)
    _check(x, "pca")
    x = _compute(x)
    n, d = x.shape
    if not 1 <= n_components <= min(n, d):
        raise ValueError(f"n_components must be between 1 and min(N, D) = {min(n, d)}")
    if solver not in ("auto", "exact", "randomized"):
        raise ValueError(f"solver must be 'auto', 'exact' or 'randomized', got {solver!r}")
    if solver == "auto":
        solver = "exact" if min(n, d) <= EXACT_MAX else "randomized"
    k = n_components
    mean = x.mean(0)
    xc = x - mean
    total = (xc * xc).sum().to(_wide(x.device)) / (n - 1)
    if solver == "randomized":
        q = min(k + n_oversamples, n, d)
        u, s, v = seeded_svd_lowrank(xc, q, n_iter, seed)
        lam = s[:k].to(_wide(x.device)) ** 2 / (n - 1)
        comps = v[:, :k]
    elif d <= n:
        solver = "covariance"
        evals, evecs = _eigh64(xc.T @ xc)
        lam = evals.flip(0)[:k].clamp_min(0) / (n - 1)
        comps = evecs.flip(1)[:, :k]
    else:
        solver = "gram"
        evals, evecs = _eigh64(xc @ xc.T)
        mu = evals.flip(0)[:k].clamp_min(torch.finfo(evals.dtype).tiny)
        comps = (xc.T @ evecs.flip(1)[:, :k]) / mu.sqrt().to(x.dtype)
        lam = mu / (n - 1)
    # scikit-learn's svd_flip (u_based_decision=False): the largest |entry| of each axis is > 0
    pivot = comps.abs().argmax(0)
    signs = torch.sign(comps[pivot, torch.arange(k, device=x.device)])
    signs[signs == 0] = 1
    comps = comps * signs
    coords = (xc @ comps).to(torch.float32)

    def out(t: torch.Tensor):
        return t.cpu().numpy() if from_numpy else t

    return PCAResult(
        coords=out(coords),
        explained_variance=out(lam),
        explained_variance_ratio=out(lam / total),
        components=out(comps.T.contiguous()),
        mean=out(mean),
        solver=solver,
    )


def procrustes_rotation(source, target):
    """The orthogonal ``R`` (D x D) minimising ``||A R - B||_F`` for the centred ``A``, ``B``.

    ``R = U V^T`` from ``svd(A^T B) = U S V^T`` (Schönemann 1966); ``R`` may be a reflection.
    Equals ``scipy.linalg.orthogonal_procrustes(A, B)[0]`` for the centred inputs.
    """
    a, b, from_numpy = _pair(source, target)
    r = _rotation(a - a.mean(0), b - b.mean(0))
    return r.cpu().numpy() if from_numpy else r


def procrustes(source, target):
    """``source`` rotated/reflected (and translated) onto ``target``: ``(A - a) R + b``.

    ``a``, ``b`` are the column means of source and target, ``R`` is
    :func:`procrustes_rotation`: the rigid motion (with reflection) that minimises the summed
    squared distance ``sum_i ||(s_i - a) R + b - t_i||^2`` between the same points in the two
    layouts (Schönemann 1966). **No scaling**: distances within the source layout are kept
    exactly, so the spread of a layout (PCA's coordinates are in the units of the
    representation) stays visible. Rows of ``source`` and ``target`` are the same points.

    Returns the aligned source in its dtype (float32 stays float32) and kind (array or tensor).
    """
    src, from_numpy = _tensor(source)
    a, b, _ = _pair(src, target)
    a_mean, b_mean = a.mean(0), b.mean(0)
    ac = a - a_mean
    out = (ac @ _rotation(ac, b - b_mean) + b_mean).to(src.dtype)
    return out.cpu().numpy() if from_numpy else out


def displacement(a, b) -> float:
    """Mean point displacement ``(1/N) sum_i ||a_i - b_i||_2`` between two layouts of N points."""
    x, y, _ = _pair(a, b)
    return float(torch.linalg.vector_norm(x - y, dim=1).mean())


def _pair(source, target) -> tuple[torch.Tensor, torch.Tensor, bool]:
    a, from_numpy = _tensor(source)
    b, _ = _tensor(target)
    _check(a, "source", 1)
    _check(b, "target", 1)
    if a.shape != b.shape:
        raise ValueError(f"source {tuple(a.shape)} and target {tuple(b.shape)} differ in shape")
    a = _compute(a)
    return a, _compute(b).to(a.device), from_numpy


def _rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(a.T @ b)
    return u @ vh
