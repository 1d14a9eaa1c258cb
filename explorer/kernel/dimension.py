"""Intrinsic dimension of a point cloud: TwoNN, MLE, local PCA, GRIDE, PHD, pointwise LID, and
linear baselines, with bootstrap confidence intervals (REFERENCES.md, "Intrinsic dimension").

Every neighbour-based estimator first removes exact and near duplicate points
(:func:`explorer.kernel.neighbors.dedupe`; a duplicate has ``r_1 = 0`` and sends ``mu = r_2/r_1``
to infinity: with 10 % jittered copies scikit-dimension's TwoNN reports 0.16 for a 10-sphere),
then computes one exact k-NN graph (:func:`explorer.kernel.neighbors.knn`) that all of them share.
Each function takes an ``(N, D)`` numpy array or torch tensor (any float dtype; float16/bfloat16
are computed in float32) and runs on the tensor's device; the classes follow scikit-learn
(``fit(X)`` returns ``self`` with ``dimension_``, ``n_samples_``, ``n_points_`` (after removing
duplicates), ``n_duplicates_``).

Uncertainty (:func:`bootstrap`): for neighbour-based estimators, resamples are subsets of 80 %
of the points drawn without replacement (a resample with replacement would plant duplicates).
The k-NN graph of a subset is obtained from the full graph without new distance computations:
the k nearest neighbours of ``x`` within a subset ``S`` are the first ``k`` members of ``S`` in
``x``'s full neighbour list, which is exact whenever the list holds at least ``k`` of them (the
full graph is computed with ``ceil(1.5 k) + 8`` neighbours; the rare rows that fall short are
recomputed exactly against ``S``). So 200 resamples cost 200 sorts of an ``N x K`` index array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.kernel.linalg import eigvalsh
from explorer.kernel.neighbors import DUPLICATE_RTOL, dedupe, find_duplicates, knn

__all__ = [
    "GRIDE",
    "MLE",
    "PHD",
    "Bootstrap",
    "LocalPCA",
    "NeighbourGraph",
    "TwoNN",
    "bootstrap",
    "covariance_spectrum",
    "gride",
    "lid",
    "lpca",
    "mle",
    "neighbour_graph",
    "pca_dimension",
    "phd",
    "size_curve",
    "twonn",
]

#: Fewest points a neighbour-based estimate is computed on.
MIN_POINTS = 8


# -- input and the shared neighbour graph ------------------------------------------------------------
def as_points(X, *, min_points: int = 2) -> torch.Tensor:
    """``X`` as an ``(N, D)`` floating tensor (float32 for half precision), validated."""
    t = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X))
    if t.ndim != 2:
        raise ValueError(f"expected an (N, D) matrix of points, got shape {tuple(t.shape)}")
    if not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32 if t.is_floating_point() else torch.float64)
    if t.shape[0] < min_points:
        raise ValueError(f"need at least {min_points} points, got {t.shape[0]}")
    bad = ~torch.isfinite(t).all(1)
    if bool(bad.any()):
        rows = torch.nonzero(bad).squeeze(1)[:5].tolist()
        raise ValueError(f"{int(bad.sum())} rows hold NaN or inf (first: {rows}); drop them first")
    return t


@dataclass
class NeighbourGraph:
    """Exact k-NN graph of the distinct points of a sample.

    Attributes
    ----------
    x : tensor (n, D)
        The distinct points (duplicates removed), in the input's order.
    dist, idx : tensors (n, K)
        Distances (ascending, float64) and indices into ``x`` of the K nearest neighbours.
    kept : ndarray of int
        Row indices of ``x`` in the input.
    n_samples : int
        Points in the input.
    n_duplicates : int
        Points removed as duplicates.
    """

    x: torch.Tensor
    dist: torch.Tensor
    idx: torch.Tensor
    kept: np.ndarray
    n_samples: int
    n_duplicates: int

    @property
    def n_points(self) -> int:
        return self.x.shape[0]

    def sub(self, rows, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact k-NN graph ``(dist, idx)`` of the subset ``x[rows]`` (indices into the subset).

        Derived from the full graph: the k nearest members of the subset in each row's list;
        rows with fewer than k of them in the list are recomputed exactly.
        """
        rows = torch.as_tensor(rows, device=self.idx.device).long()
        n = self.n_points
        pos = torch.full((n,), -1, dtype=torch.long, device=self.idx.device)
        pos[rows] = torch.arange(len(rows), device=self.idx.device)
        nbr = pos[self.idx[rows]]  # -1 outside the subset
        inside = nbr >= 0
        order = torch.sort((~inside).to(torch.uint8), dim=1, stable=True).indices[:, :k]
        d = self.dist[rows].gather(1, order)
        i = nbr.gather(1, order)
        short = inside.sum(1) < k
        if bool(short.any()):
            q = torch.nonzero(short).squeeze(1)
            dq, iq = knn(self.x[rows], k, queries=q)
            d[q], i[q] = dq.to(d.dtype), iq
        return d, i


def neighbour_graph(X, k: int, *, rtol: float = DUPLICATE_RTOL, dedup: bool = True):
    """Remove duplicates of ``X`` and compute the exact ``k``-NN graph of what is left.

    Parameters
    ----------
    X : array or tensor (N, D)
    k : int
        Neighbours per point (capped at the number of distinct points - 1).
    rtol : float
        Duplicate tolerance, relative to the median non-zero nearest-neighbour distance
        (:func:`explorer.kernel.neighbors.find_duplicates`).
    dedup : bool
        Remove duplicates (default); ``False`` keeps every point (zero distances stay).

    Returns
    -------
    NeighbourGraph
    """
    t = as_points(X, min_points=MIN_POINTS)
    n = t.shape[0]
    kept = np.arange(n)
    dist, idx = knn(t, min(k, n - 1))
    if dedup and find_duplicates(t, rtol=rtol, neighbors=(dist, idx)).n_duplicates:
        kept = dedupe(t, rtol=rtol).indices
        if len(kept) < MIN_POINTS:
            raise ValueError(
                f"only {len(kept)} distinct points among {n} (need {MIN_POINTS}): "
                "the sample is almost all duplicates"
            )
        t = t[torch.as_tensor(kept, device=t.device)]
        dist, idx = knn(t, min(k, len(kept) - 1))
    return NeighbourGraph(t, dist.double(), idx, kept, n, n - len(kept))


# -- estimators on a neighbour graph (distances ascending, float64) ----------------------------------
def _twonn(dist: torch.Tensor, discard_fraction: float, method: str) -> float:
    mu = dist[:, 1] / dist[:, 0]
    mu = mu[torch.isfinite(mu)]
    n = len(mu)
    n_keep = int(n * (1 - discard_fraction))
    if n_keep < 2:
        raise ValueError("fewer than 2 points left to estimate the dimension")
    log_mu = mu.sort().values[:n_keep].log()
    if method == "mle":
        return float((n_keep - 1) / (log_mu.sum() + (n - n_keep) * log_mu[-1]))
    if method != "linear":
        raise ValueError(f"method must be 'linear' or 'mle', got {method!r}")
    f_emp = torch.arange(1, n_keep + 1, dtype=log_mu.dtype, device=log_mu.device) / n
    y = -torch.log1p(-f_emp)
    return float((log_mu * y).sum() / (log_mu * log_mu).sum())


def _mle_k(dist: torch.Tensor, k: int) -> float:
    logs = torch.log(dist[:, k - 1 : k] / dist[:, : k - 1]).sum(1)
    return float((k - 1) / logs.mean())


def _mle(dist: torch.Tensor, ks: Sequence[int]) -> float:
    return float(np.mean([_mle_k(dist, k) for k in ks]))


def _lid(dist: torch.Tensor, k: int) -> torch.Tensor:
    return k / torch.log(dist[:, k - 1 : k] / dist[:, :k]).sum(1)


def _gride_solve(log_mu: torch.Tensor, n1: int, n2: int) -> float:
    """Root of the GRIDE score (DADApy's conventions, as scikit-dimension's GRIDE)."""
    log_mu = log_mu[torch.isfinite(log_mu) & (log_mu > 0)]
    mu = log_mu.exp()
    q50, q95 = torch.quantile(mu, torch.tensor([0.5, 0.95], dtype=mu.dtype, device=mu.device))
    log_mu = log_mu[mu < 20 * (q95 - q50) + q50]
    n = len(log_mu)
    if n < 2:
        return float("nan")
    s_log = float(log_mu.sum())
    if n2 - n1 == 1:  # closed form: (n - 1) / ((n2 - 1) * sum log mu)
        return (n - 1) / ((n2 - 1) * s_log)
    lm = log_mu.cpu().numpy()
    c = n2 - n1 - 1

    def score(d: float) -> tuple[float, float]:
        e = -np.expm1(-d * lm)
        slope = -(n - 1) / d**2 - c * np.sum((lm / (2 * np.sinh(d * lm / 2))) ** 2)
        return (n - 1) / d + c * np.sum(lm / e) - (n2 - 1) * s_log, slope

    # the score falls from +inf (d -> 0) to -n1 sum log mu (d -> inf): one root; Newton's method
    # kept inside a bracket that bisection shrinks whenever a step would leave it. Since
    # lm / (1 - exp(-d lm)) >= lm, the score is >= (n - 1) / d - n1 sum log mu: the root is at
    # least (n - 1) / (n1 sum log mu), and Newton starts there.
    lo = (n - 1) / (n1 * s_log)
    hi = 2 * lo
    while score(hi)[0] > 0:
        lo, hi = hi, 2 * hi
    d = lo
    for _ in range(200):
        f, df = score(d)
        if f > 0:
            lo = d
        else:
            hi = d
        step = d - f / df
        new = step if lo < step < hi else (lo + hi) / 2
        if abs(new - d) <= 1e-13 * d:
            return float(new)
        d = new
    return float(d)


def _gride(dist: torch.Tensor, scales: Sequence[int]) -> np.ndarray:
    return np.array(
        [_gride_solve(torch.log(dist[:, 2 * s - 1] / dist[:, s - 1]), s, 2 * s) for s in scales]
    )


def _gride_scales(k_available: int, range_max: int) -> list[int]:
    top = min(range_max, k_available)
    return [2**i for i in range(int(math.log2(top)))] if top >= 2 else []


# -- local PCA -----------------------------------------------------------------------------------------
def _local_spectra(x: torch.Tensor, idx: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Eigenvalues (descending) of the covariance of each point's neighbourhood ``x[idx[i]]``."""
    k, dim = idx.shape[1], x.shape[1]
    side = min(k, dim)
    out = torch.empty(idx.shape[0], side, dtype=dtype, device=x.device)
    step = max(1, (1 << 24) // (k * dim))
    for s in range(0, idx.shape[0], step):
        z = x[idx[s : s + step]].to(dtype)
        z = z - z.mean(1, keepdim=True)
        g = z @ z.mT if k <= dim else z.mT @ z
        out[s : s + step] = eigvalsh(g).flip(-1).clamp_min(0) / (k - 1)
    return out


def _lpca_counts(lam: torch.Tensor, ver: str, alpha: float, fraction: float) -> torch.Tensor:
    if ver == "FO":
        return (lam > alpha * lam[:, :1]).sum(1).double()
    if ver == "ratio":
        cum = lam.cumsum(1)
        return ((cum / cum[:, -1:]) < fraction).sum(1).double() + 1
    raise ValueError(f"ver must be 'FO' or 'ratio', got {ver!r}")


# -- PHD -----------------------------------------------------------------------------------------------
def _mst_weight(x: torch.Tensor, alpha: float) -> float:
    from scipy.sparse.csgraph import minimum_spanning_tree

    d = torch.cdist(x.double(), x.double()).cpu().numpy()
    return float((minimum_spanning_tree(d).data ** alpha).sum())


def _phd_points(x: torch.Tensor, sizes, n_repeats: int, alpha: float, rng) -> np.ndarray:
    out = []
    for n in sizes:
        for _ in range(n_repeats):
            sel = torch.as_tensor(rng.choice(x.shape[0], n, replace=False), device=x.device)
            out.append((n, _mst_weight(x[sel], alpha)))
    return np.array(out)


def _phd_fit(points: np.ndarray, alpha: float) -> float:
    slope = np.polyfit(np.log(points[:, 0]), np.log(points[:, 1]), 1)[0]
    return float(alpha / (1 - slope))


# -- linear baselines ---------------------------------------------------------------------------------
def covariance_spectrum(X, *, dtype=torch.float64):
    """Eigenvalues of the covariance of ``X`` (centred, ``1/(N-1)``), descending, as a tensor.

    Computed by ``eigvalsh`` of the smaller of ``X_c^T X_c`` and ``X_c X_c^T``.
    """
    t = as_points(X).to(dtype)
    t = t - t.mean(0, keepdim=True)
    g = t.mT @ t if t.shape[0] >= t.shape[1] else t @ t.mT
    return torch.linalg.eigvalsh(g).flip(-1).clamp_min(0) / (t.shape[0] - 1)


def pca_dimension(X, fraction: float | Sequence[float] = (0.9, 0.95, 0.99)):
    """Fewest principal components whose variance reaches ``fraction`` of the total.

    .. math:: d_f = \\min\\{ j : \\textstyle\\sum_{i \\le j} \\lambda_i \\ge f \\sum_i \\lambda_i \\}

    on the covariance spectrum (data centred). Returns an int, or a list for several fractions.
    """
    lam = covariance_spectrum(X)
    cum = (lam.cumsum(0) / lam.sum()).cpu().numpy()
    fr = [fraction] if np.isscalar(fraction) else list(fraction)
    out = [int(np.searchsorted(cum, f - 1e-12) + 1) for f in fr]
    return out[0] if np.isscalar(fraction) else out


# -- public functions ------------------------------------------------------------------------------------
def twonn(X, *, discard_fraction: float = 0.1, method: str = "linear") -> float:
    """TwoNN intrinsic dimension (Facco et al. 2017).

    ``mu_i = r_2(i) / r_1(i)`` follows ``F(mu) = 1 - mu^-d``. ``method="linear"``: least squares
    through the origin of ``-log(1 - F_emp(mu_(i)))`` on ``log mu_(i)``, ``F_emp(mu_(i)) = i/N``,
    after discarding the largest ``discard_fraction`` of the ratios (scikit-dimension's TwoNN,
    the same numbers to ~1e-12 on duplicate-free data). ``method="mle"``: the censored
    maximum-likelihood estimate ``(n - 1) / (sum_{i<=n} log mu_(i) + (N - n) log mu_(n))`` over the
    ``n = int(N (1 - discard_fraction))`` smallest ratios; with ``discard_fraction=0`` it is
    ``(N - 1) / sum log mu_i`` (REFERENCES.md's MLE form).

    Differences from scikit-dimension: duplicates (within ``rtol`` of
    :func:`~explorer.kernel.neighbors.find_duplicates`) are removed first, where it drops only
    exact copies; neighbours are exact (blocked products, :func:`~explorer.kernel.neighbors.knn`).
    """
    return TwoNN(discard_fraction=discard_fraction, method=method).fit(X).dimension_


def mle(X, *, k: int | Sequence[int] = (10, 20)) -> float:
    """Levina-Bickel maximum-likelihood dimension with MacKay-Ghahramani averaging.

    .. math:: m_k(x) = \\Big[\\frac{1}{k-1} \\sum_{j<k} \\log\\frac{T_k(x)}{T_j(x)}\\Big]^{-1},
              \\qquad \\hat m_k = \\Big[\\frac{1}{N} \\sum_x m_k(x)^{-1}\\Big]^{-1}

    (averaging inverses over points, MacKay & Ghahramani 2005), then the mean of ``m_k`` over
    ``k = k_1..k_2`` (Levina & Bickel 2005). For a single ``k`` this is scikit-dimension's
    ``MLE().fit(X, n_neighbors=k, comb="mle")`` (same numbers on duplicate-free data).
    """
    return MLE(k=k).fit(X).dimension_


def lid(X, *, k: int = 20):
    """Pointwise local intrinsic dimension (per-point MLE), one value per distinct point.

    .. math:: \\mathrm{LID}(x) = -\\Big[\\frac{1}{k}\\sum_{i \\le k} \\log\\frac{r_i(x)}{r_k(x)}
              \\Big]^{-1}

    Levina & Bickel 2005; Amsaleg et al. 2015. Returns an array (or a tensor for tensor input) of
    the points left after removing duplicates.
    """
    g = neighbour_graph(X, k)
    out = _lid(g.dist, k)
    return out if isinstance(X, torch.Tensor) else out.cpu().numpy()


def lpca(X, *, k: int = 100, ver: str = "FO", alpha: float = 0.05, fraction: float = 0.95) -> float:
    """Local PCA dimension: PCA of each point's ``k`` nearest neighbours, averaged over points.

    ``ver="FO"`` (Fukunaga & Olsen 1971) counts the eigenvalues above ``alpha * lambda_1``;
    ``ver="ratio"`` counts the components needed to reach ``fraction`` of the variance
    (``#{j : sum_{i<=j} lambda_i / sum lambda < fraction} + 1``). The neighbourhood excludes the
    point itself. This is scikit-dimension's ``lPCA(ver, alphaFO=alpha, alphaRatio=fraction)
    .fit_pw(X, n_neighbors=k).dimension_pw_.mean()``.
    """
    return LocalPCA(k=k, ver=ver, alpha=alpha, fraction=fraction).fit(X).dimension_


def gride(X, *, range_max: int = 64):
    """GRIDE scale curve: the dimension from ``mu = r_{2n} / r_n`` at ``n = 1, 2, 4, ...``.

    At each scale ``n``, ``mu`` has density ``d (mu^d - 1)^{n-1} / (B(n, n) mu^{(2n-1) d + 1})``
    and ``d`` is the root of the likelihood's score (Denti et al. 2022), with DADApy's conventions
    as in scikit-dimension's ``GRIDE(multiscale=True)``: ``(N - 1)`` in place of ``N``, ratios above
    ``q50 + 20 (q95 - q50)`` dropped. At ``n = 1`` it is the TwoNN MLE ``(N - 1) / sum log mu``.
    A plateau across scales marks a trustworthy estimate; growth at small scales means noise.

    Returns
    -------
    scales : ndarray of int
        ``n`` (``2n <= min(range_max, N - 1)``).
    dimension : ndarray of float
    """
    fit = GRIDE(range_max=range_max).fit(X)
    return fit.scales_, fit.dimension_scales_


def phd(
    X, *, alpha: float = 1.0, n_max: int = 1000, n_steps: int = 8, n_repeats: int = 5, seed: int = 0
):
    """Persistent-homology dimension from minimum spanning trees (alpha = 1).

    ``E_alpha(S_n) = sum_{e in MST(S_n)} |e|^alpha ~ n^{(d - alpha)/d}``: the slope ``m`` of
    ``log E`` on ``log n`` over random subsets gives ``d = alpha / (1 - m)`` (Schweinhart 2021;
    Tulchinskii et al. 2023). Subset sizes: ``n_steps`` geometric steps from ``n_max / 8`` to
    ``n_max`` (capped at the number of points), ``n_repeats`` subsets each; the MST of each subset
    is exact (scipy on its full distance matrix).
    """
    return (
        PHD(alpha=alpha, n_max=n_max, n_steps=n_steps, n_repeats=n_repeats, seed=seed)
        .fit(X)
        .dimension_
    )


# -- estimator classes -------------------------------------------------------------------------------
class _NeighbourEstimator:
    """Common ``fit``: validate, remove duplicates, exact k-NN graph, then ``_estimate``."""

    def _k(self) -> int:
        raise NotImplementedError

    def fit(self, X, y=None):
        g = neighbour_graph(X, self._k(), rtol=self.rtol)
        self.n_samples_, self.n_points_, self.n_duplicates_ = (
            g.n_samples,
            g.n_points,
            g.n_duplicates,
        )
        self.dimension_ = self._estimate(g.dist, g)
        return self


class TwoNN(_NeighbourEstimator):
    """TwoNN (Facco et al. 2017); see :func:`twonn` for the formula.

    Parameters
    ----------
    discard_fraction : float, default 0.1
    method : {"linear", "mle"}
    rtol : float
        Duplicate tolerance (:func:`explorer.kernel.neighbors.find_duplicates`).

    Attributes
    ----------
    dimension_ : float
    n_samples_, n_points_, n_duplicates_ : int
        Input points, distinct points used, duplicates removed.
    """

    def __init__(
        self, discard_fraction: float = 0.1, method: str = "linear", rtol: float = DUPLICATE_RTOL
    ):
        self.discard_fraction = discard_fraction
        self.method = method
        self.rtol = rtol

    def _k(self) -> int:
        return 2

    def _estimate(self, dist, g=None) -> float:
        return _twonn(dist, self.discard_fraction, self.method)


class MLE(_NeighbourEstimator):
    """Levina-Bickel MLE with MacKay-Ghahramani averaging; see :func:`mle`.

    Parameters
    ----------
    k : int or (k1, k2), default (10, 20)
        One neighbourhood size, or an inclusive range whose estimates are averaged.
    """

    def __init__(self, k: int | Sequence[int] = (10, 20), rtol: float = DUPLICATE_RTOL):
        self.k = k
        self.rtol = rtol

    def _ks(self) -> list[int]:
        ks = [self.k] if np.isscalar(self.k) else list(range(self.k[0], self.k[-1] + 1))
        if min(ks) < 2:
            raise ValueError(f"MLE needs k >= 2, got {self.k}")
        return ks

    def _k(self) -> int:
        return max(self._ks())

    def _estimate(self, dist, g=None) -> float:
        ks = [k for k in self._ks() if k <= dist.shape[1]]
        return _mle(dist, ks)


class LocalPCA(_NeighbourEstimator):
    """Local PCA (Fukunaga-Olsen or variance fraction) averaged over points; see :func:`lpca`.

    Parameters
    ----------
    k : int, default 100
    ver : {"FO", "ratio"}
    alpha : float, default 0.05
    fraction : float, default 0.95
    dtype : torch dtype, default float64
        Precision of the local eigenvalues (float32 is ~6x faster on a CPU; counts can differ
        only for eigenvalues within ~1e-6 relative of the threshold).

    Attributes
    ----------
    dimension_pw_ : ndarray
        The count at each distinct point.
    """

    def __init__(
        self, k=100, ver="FO", alpha=0.05, fraction=0.95, dtype=torch.float64, rtol=DUPLICATE_RTOL
    ):
        self.k, self.ver, self.alpha, self.fraction = k, ver, alpha, fraction
        self.dtype = dtype
        self.rtol = rtol

    def _k(self) -> int:
        return self.k

    def _estimate(self, dist, g) -> float:
        lam = _local_spectra(g.x, g.idx, self.dtype)
        self.dimension_pw_ = _lpca_counts(lam, self.ver, self.alpha, self.fraction).cpu().numpy()
        return float(self.dimension_pw_.mean())


class GRIDE(_NeighbourEstimator):
    """GRIDE multiscale estimate; see :func:`gride`.

    Attributes
    ----------
    scales_ : ndarray of int
    dimension_scales_ : ndarray
    dimension_ : float
        The estimate at the smallest scale (``n = 1``, the TwoNN MLE).
    """

    def __init__(self, range_max: int = 64, rtol: float = DUPLICATE_RTOL):
        self.range_max = range_max
        self.rtol = rtol

    def _k(self) -> int:
        return self.range_max

    def _estimate(self, dist, g=None) -> float:
        self.scales_ = np.array(_gride_scales(dist.shape[1], self.range_max))
        self.dimension_scales_ = _gride(dist, self.scales_)
        return float(self.dimension_scales_[0])


class PHD:
    """Persistent-homology (MST) dimension; see :func:`phd`.

    Attributes
    ----------
    dimension_ : float
    points_ : ndarray (n, 2)
        ``(subset size, E_alpha)`` of every subset, the data of the fit.
    n_samples_, n_points_, n_duplicates_ : int
    """

    def __init__(self, alpha=1.0, n_max=1000, n_steps=8, n_repeats=5, seed=0, rtol=DUPLICATE_RTOL):
        self.alpha, self.n_max, self.n_steps, self.n_repeats = alpha, n_max, n_steps, n_repeats
        self.seed = seed
        self.rtol = rtol

    def sizes(self, n: int) -> np.ndarray:
        top = min(self.n_max, n)
        return np.unique(np.geomspace(max(top // 8, 4), top, self.n_steps).astype(int))

    def fit(self, X, y=None):
        t = as_points(X, min_points=MIN_POINTS)
        dup = dedupe(t, rtol=self.rtol)
        x = t[torch.as_tensor(dup.indices, device=t.device)]
        rng = np.random.default_rng(self.seed)
        self.points_ = _phd_points(x, self.sizes(x.shape[0]), self.n_repeats, self.alpha, rng)
        self.dimension_ = _phd_fit(self.points_, self.alpha)
        self.n_samples_, self.n_points_, self.n_duplicates_ = (
            t.shape[0],
            x.shape[0],
            dup.n_duplicates,
        )
        return self


# -- uncertainty --------------------------------------------------------------------------------------
@dataclass
class Bootstrap:
    """A bootstrap distribution: percentile interval of ``replicates`` at level ``level``."""

    replicates: np.ndarray
    level: float = 0.95
    low: np.ndarray = field(init=False)
    high: np.ndarray = field(init=False)

    def __post_init__(self):
        r = np.asarray(self.replicates, dtype=float)
        a = (1 - self.level) / 2
        ok = np.isfinite(r).all(axis=tuple(range(1, r.ndim))) if r.ndim > 1 else np.isfinite(r)
        r = r[ok]
        self.low = np.quantile(r, a, axis=0) if len(r) else np.nan
        self.high = np.quantile(r, 1 - a, axis=0) if len(r) else np.nan

    @property
    def n_boot(self) -> int:
        return len(self.replicates)


def bootstrap(
    g: NeighbourGraph,
    stat: Callable[[torch.Tensor, torch.Tensor], object],
    *,
    k: int,
    n_boot: int = 200,
    fraction: float = 0.8,
    level: float = 0.95,
    seed: int = 0,
) -> Bootstrap:
    """Bootstrap a neighbour-based statistic over subsets of ``fraction`` of the points, drawn
    without replacement (REFERENCES.md, "Uncertainty").

    ``stat(dist, idx)`` receives the exact ``k``-NN graph of each subset (:meth:`NeighbourGraph.sub`;
    ``idx`` indexes the subset) and returns a number or a 1-d array.
    """
    rng = np.random.default_rng(seed)
    m = max(k + 1, int(round(fraction * g.n_points)))
    reps = []
    for _ in range(n_boot):
        rows = np.sort(rng.choice(g.n_points, m, replace=False))
        d, i = g.sub(rows, k)
        reps.append(stat(d, i))
    return Bootstrap(np.asarray(reps, dtype=float), level)


def size_curve(
    X, estimate: Callable[[object], float], *, fractions=(1 / 8, 1 / 4, 1 / 2, 1), seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The estimate on random subsets of ``N/8, N/4, N/2, N`` points (nested, seeded).

    Returns ``(sizes, estimates)``; an estimate that drifts with the size has not converged.
    """
    t = as_points(X)
    order = torch.as_tensor(np.random.default_rng(seed).permutation(t.shape[0]), device=t.device)
    sizes = np.array([max(MIN_POINTS, int(t.shape[0] * f)) for f in fractions])
    sizes = np.minimum(sizes, t.shape[0])
    return sizes, np.array([estimate(t[order[:n]]) for n in sizes])
