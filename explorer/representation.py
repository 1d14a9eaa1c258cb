"""``ex.representation_metrics(acts)``: intrinsic dimension, spectra and entropy of the hidden
states at every depth, with bootstrap confidence intervals, as one tidy DataFrame.

One row per depth (x subset) x metric. Definitions are in :mod:`explorer.kernel.dimension`,
:mod:`explorer.kernel.spectra` and :mod:`explorer.kernel.entropy` (REFERENCES.md). How each
interval is obtained (``n_boot`` says how many replicates; percentile intervals, seeded):

* neighbour-based (``twonn``, ``twonn_mle``, ``mle``, ``gride``, ``lid``): ``n_boot`` subsets of
  80 % of the distinct points without replacement, each with its own exact k-NN graph (derived
  from the full graph, :meth:`explorer.kernel.dimension.NeighbourGraph.sub`);
* ``lpca``, ``lpca_ratio``: the mean of the pointwise counts bootstrapped over points (the
  neighbourhoods are those of the full sample: a local PCA per point and resample would cost
  ``n_boot`` times ``N`` eigendecompositions);
* ``phd``: the ``(subset size, MST weight)`` pairs of the fit resampled within each size and
  refitted (the spread of the PHD procedure over its own random subsets);
* ``participation_ratio``, ``effective_rank``, ``rankme``: points resampled with replacement,
  ``n_boot_spectral`` times (default ``min(n_boot, 50)``: each costs an eigendecomposition), the
  replicates' spectra in float32 (the point estimates in float64);
* ``dse``: ``n_boot_spectral`` subsets of 80 % without replacement (a repeated point would change
  the kernel), float32 replicates.

  These four depend on the number of distinct points (a resample has fewer: on MiniLM's 320
  sentences the replicates of the effective rank sit ~30 % below the estimate), so their
  percentile interval is translated to be centred on the estimate: ``value + (q_2.5 - q_50,
  q_97.5 - q_50)`` of the replicates (the width is the bootstrap's, the location the estimate's);
* ``pca_90/95/99``, ``dsmi``, ``knn_accuracy``: no interval (NaN).

Duplicates are removed (and counted in ``n_duplicates``) before the neighbour-based estimators;
spectra and entropy use every point. Representations are centred before spectra.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from explorer import arguments
from explorer.activations import Activations
from explorer.errors import DataError
from explorer.kernel import dimension as dim
from explorer.kernel.device import resolve_device
from explorer.kernel.entropy import (
    diffusion_spectral_entropy,
    diffusion_spectral_mutual_information,
)
from explorer.kernel.neighbors import knn_accuracy
from explorer.kernel.spectra import effective_rank, rankme
from explorer.memory_budget import out_of_memory

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRICS", "representation_metrics", "size_curve_metrics"]

METRICS = (
    "twonn",
    "twonn_mle",
    "mle",
    "lpca",
    "lpca_ratio",
    "gride",
    "phd",
    "lid",
    "participation_ratio",
    "pca",
    "effective_rank",
    "rankme",
    "dse",
    "dsmi",
    "knn_accuracy",
)
_NEIGHBOUR = {"twonn", "twonn_mle", "mle", "lpca", "lpca_ratio", "gride", "phd", "lid"}
_LABEL_KEYS = ("label", "topic")
MLE_K = (10, 20)
LID_K = 20
LPCA_K = 100
GRIDE_MAX = 64
KNN_K = 10
#: Fewest neighbours for an estimate averaged over a neighbourhood (MLE, LID, local PCA): below
#: it the value is NaN with a reason (N = 10 points gave MLE over k = 6 and a "dimension" anyway).
MIN_K = 10
#: Fewest distinct points for PHD: its log-log fit needs subset sizes spanning a factor of 8.
PHD_MIN_POINTS = 32
_OOM_HINT = (
    "capture fewer points (capture(max_points=...)), pass a subset, ask for fewer methods, "
    "lower n_boot, or use device='cpu'"
)
_DIMENSIONS = {"twonn", "twonn_mle", "mle", "lid", "gride", "phd", "lpca", "lpca_ratio"}


def representation_metrics(
    acts: Activations,
    methods: Sequence[str] | None = None,
    subset=None,
    labels=None,
    ci: bool = True,
    n_boot: int = 200,
    n_boot_spectral: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = "auto",
) -> pd.DataFrame:
    """Intrinsic dimension (several estimators), effective rank, RankMe, participation ratio,
    DSE/DSMI and k-NN label accuracy of the hidden states at every captured depth.

    Parameters
    ----------
    acts : Activations
        From :func:`explorer.capture`.
    methods : list of str, optional
        A subset of :data:`METRICS` (default: all; ``"pca"`` gives ``pca_90``, ``pca_95``,
        ``pca_99``; ``dsmi`` and ``knn_accuracy`` need labels).
    subset : index array, boolean mask, or str, optional
        Row indices (for example a lasso selection) to restrict to, or the name of a label in
        ``acts.labels``: then every metric is computed per class (``subset`` column
        ``"topic=sports"``).
    labels : str or array, optional
        Labels for ``dsmi`` and ``knn_accuracy``: a key of ``acts.labels`` or one value per point
        (default: ``acts.labels["label"]`` or ``["topic"]`` when present).
    ci : bool, default True
        Bootstrap intervals (module docstring); ``False`` leaves ``ci_low``/``ci_high`` NaN.
    n_boot : int, default 200
    n_boot_spectral : int, optional
        Replicates for eigendecomposition-based metrics (default ``min(n_boot, 50)``).
    seed : int, default 0
    device : "auto", "cpu", "cuda", ...

    Returns
    -------
    DataFrame with columns ``depth, address, subset, metric, estimator, scale, value, ci_low,
    ci_high, n_boot, n_points, n_duplicates, seed, device, dtype, status``. ``status`` is ``"ok"``
    or why ``value`` is NaN: too few distinct points for the neighbours an estimator needs
    (``MIN_K``, ``PHD_MIN_POINTS``), an estimate that is not a dimension (<= 0 or not finite,
    e.g. PHD's slope >= 1), or a constant depth (no variance).
    """
    if not isinstance(acts, Activations):
        raise TypeError(f"expected explorer.Activations, got {type(acts).__name__}")
    if not acts.depths:
        raise ValueError("the activations hold no depth")
    wanted = _methods(methods)
    n_boot = arguments.integer("n_boot", n_boot, low=1, hint=" (ci=False skips the bootstrap)")
    if n_boot_spectral is not None:
        n_boot_spectral = arguments.integer("n_boot_spectral", n_boot_spectral, low=1)
    seed = arguments.integer("seed", seed, low=0)
    dev = resolve_device(device)
    y = _labels(acts, labels)
    if y is None:
        wanted -= {"dsmi", "knn_accuracy"}
    nb_spec = min(n_boot, 50) if n_boot_spectral is None else n_boot_spectral
    rows: list[dict] = []
    for name, sel in _subsets(acts, subset):
        for depth in acts.depths:
            x = acts[depth][torch.as_tensor(sel)] if sel is not None else acts[depth]
            x = _checked(x, depth, name).to(dev)
            ys = None if y is None else (y if sel is None else y[sel])
            base = dict(
                depth=depth, address=f"blocks.{depth}", subset=name, seed=seed, device=str(dev)
            )
            ctx = _Context(x, ys, ci, n_boot, nb_spec, seed)
            with out_of_memory(f"representation_metrics at depth {depth}", _OOM_HINT):
                rows.extend({**base, **row} for row in ctx.run(wanted))
    cols = ["depth", "address", "subset", "metric", "estimator", "scale", "value", "ci_low"]
    cols += ["ci_high", "n_boot", "n_points", "n_duplicates", "seed", "device", "dtype", "status"]
    import pandas as pd

    return pd.DataFrame(rows, columns=cols)


def size_curve_metrics(
    acts: Activations,
    methods: Sequence[str] = ("twonn", "mle"),
    fractions: Sequence[float] = (1 / 8, 1 / 4, 1 / 2, 1),
    seed: int = 0,
    device: str | torch.device | None = "auto",
) -> pd.DataFrame:
    """Each neighbour-based estimate on nested random subsets of ``N/8, N/4, N/2, N`` points.

    Returns a DataFrame ``depth, address, metric, n_points, value``: an estimate that still moves
    between ``N/2`` and ``N`` has not converged at this sample size.
    """
    fns = {
        "twonn": dim.twonn,
        "twonn_mle": lambda x: dim.twonn(x, method="mle", discard_fraction=0.0),
        "mle": lambda x: dim.mle(x, k=MLE_K),
        "lpca": lambda x: dim.lpca(x, k=min(LPCA_K, x.shape[0] - 2)),
        "phd": lambda x: dim.phd(x, seed=seed),
    }
    unknown = set(methods) - set(fns)
    if unknown:
        raise ValueError(f"size curves exist for {sorted(fns)}, not {sorted(unknown)}")
    dev = resolve_device(device)
    rows = []
    for depth in acts.depths:
        x = _checked(acts[depth], depth, "all").to(dev)
        for m in methods:
            sizes, vals = dim.size_curve(x, fns[m], fractions=fractions, seed=seed)
            for n, v in zip(sizes, vals, strict=True):
                rows.append(
                    dict(depth=depth, address=f"blocks.{depth}", metric=m, n_points=int(n), value=v)
                )
    import pandas as pd

    return pd.DataFrame(rows)


# -- inputs -----------------------------------------------------------------------------------------
def _methods(methods) -> set[str]:
    if methods is None:
        return set(METRICS)
    if isinstance(methods, str):
        methods = [methods]
    unknown = set(methods) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; choose from {list(METRICS)}")
    return set(methods)


def _labels(acts: Activations, labels):
    if labels is None:
        key = next((k for k in _LABEL_KEYS if k in acts.labels), None)
        return None if key is None else np.asarray(acts.labels[key])
    if isinstance(labels, str):
        if labels not in acts.labels:
            raise ValueError(f"no label {labels!r}; the activations have {list(acts.labels)}")
        return np.asarray(acts.labels[labels])
    y = np.asarray(labels)
    if len(y) != acts.n_points:
        raise ValueError(f"{len(y)} labels for {acts.n_points} points")
    return y


def _subsets(acts: Activations, subset):
    if subset is None:
        return [("all", None)]
    if isinstance(subset, str):
        if subset not in acts.labels:
            raise ValueError(
                f"no label {subset!r} to split by; the activations have {list(acts.labels)}"
            )
        lab = np.asarray(acts.labels[subset])
        return [(f"{subset}={v}", np.flatnonzero(lab == v)) for v in np.unique(lab)]
    sel = np.asarray(subset)
    if sel.dtype == bool:
        if len(sel) != acts.n_points:
            raise ValueError(f"a boolean selection needs {acts.n_points} values, got {len(sel)}")
        sel = np.flatnonzero(sel)
    if sel.size == 0:
        raise ValueError("the selection is empty: select at least a few points")
    if not np.issubdtype(sel.dtype, np.integer):
        raise ValueError(f"a selection is an index array or a boolean mask, got dtype {sel.dtype}")
    if sel.min() < -acts.n_points or sel.max() >= acts.n_points:
        raise ValueError(f"selection indices out of range for {acts.n_points} points")
    return [("selection", sel)]


def _checked(x: torch.Tensor, depth: int, name: str) -> torch.Tensor:
    if x.shape[0] < dim.MIN_POINTS:
        raise DataError(
            f"depth {depth}, subset {name!r}: {x.shape[0]} points, at least {dim.MIN_POINTS} needed"
        )
    bad = ~torch.isfinite(x).all(1)
    if bool(bad.any()):
        raise DataError(
            f"depth {depth}, subset {name!r}: {int(bad.sum())} rows hold NaN or inf "
            f"(first: {torch.nonzero(bad).squeeze(1)[:5].tolist()}); drop them first"
        )
    return x


# -- one depth --------------------------------------------------------------------------------------
def _interval(b: dim.Bootstrap | None, i: int | None = None, centre: float | None = None) -> dict:
    if b is None:
        return dict(ci_low=np.nan, ci_high=np.nan, n_boot=0)
    r = b.replicates if i is None else b.replicates[:, i]
    lo, hi = (b.low, b.high) if i is None or np.ndim(b.low) == 0 else (b.low[i], b.high[i])
    if centre is not None and np.isfinite(r).any():
        shift = centre - float(np.nanmedian(r))
        lo, hi = lo + shift, hi + shift
    return dict(ci_low=float(lo), ci_high=float(hi), n_boot=b.n_boot)


class _Context:
    """Everything computed on the points of one depth (and subset)."""

    def __init__(self, x, y, ci, n_boot, n_boot_spectral, seed):
        self.x, self.y, self.ci, self.n_boot, self.nb_spec, self.seed = (
            x,
            y,
            ci,
            n_boot,
            n_boot_spectral,
            seed,
        )

    def run(self, wanted: set[str]):
        if wanted & _NEIGHBOUR:
            yield from self._neighbour(wanted)
        yield from self._spectral(wanted)
        if "dse" in wanted or "dsmi" in wanted:
            yield from self._entropy(wanted)
        if "knn_accuracy" in wanted:
            k = min(KNN_K, self.x.shape[0] - 1)
            acc = knn_accuracy(self.x, self.y, k)
            yield self._row(
                "knn_accuracy", f"leave-one-out {k}-NN accuracy", acc, None, dtype="float32"
            )

    def _row(self, metric, estimator, value, boot, i=None, scale=np.nan, centred=False, **extra):
        value = float(value)
        status = extra.pop("status", "ok")
        if status == "ok" and metric in _DIMENSIONS and not (np.isfinite(value) and value > 0):
            status = f"not a dimension: the estimate is {value:.3g}"
        elif status == "ok" and not np.isfinite(value):
            status = "undefined: not a finite number"
        row = dict(metric=metric, estimator=estimator, scale=scale, value=value)
        row.update(_interval(boot if self.ci else None, i, value if centred else None))
        if status != "ok":
            row.update(value=np.nan, ci_low=np.nan, ci_high=np.nan)
        row.setdefault("n_points", self.x.shape[0])
        row.setdefault("n_duplicates", 0)
        row.update(extra, status=status)
        return row

    def _too_few(self, wanted, reason: str, n_points: int, n_duplicates: int):
        """NaN rows with ``reason`` for the neighbour-based metrics asked for."""
        for metric in sorted(wanted & _NEIGHBOUR):
            yield self._row(
                metric,
                "",
                np.nan,
                None,
                n_points=n_points,
                n_duplicates=n_duplicates,
                dtype="float32",
                status=reason,
            )

    def _neighbour(self, wanted):
        n = self.x.shape[0]
        k_lpca = min(LPCA_K, n - 2)
        need = max(MLE_K[-1], LID_K, GRIDE_MAX, k_lpca if wanted & {"lpca", "lpca_ratio"} else 0)
        try:
            g = dim.neighbour_graph(self.x, min(n - 1, math.ceil(1.5 * need) + 8))
        except ValueError as exc:  # almost all duplicates: fewer than MIN_POINTS distinct points
            yield from self._too_few(wanted, f"too few distinct points: {exc}", n, n)
            return
        extra = dict(n_points=g.n_points, n_duplicates=g.n_duplicates, dtype="float32")
        # neighbour orders that the 80 % subsets hold too, so estimate and replicates match
        k_sub = min(GRIDE_MAX, g.n_points - 2, int(0.8 * g.n_points) - 2)
        ks = [k for k in range(MLE_K[0], MLE_K[-1] + 1) if k <= k_sub] or [k_sub]
        k_lid = min(LID_K, k_sub)
        scales = dim._gride_scales(k_sub, GRIDE_MAX)

        def stat(d, _i=None):
            return np.concatenate(
                [
                    [dim._twonn(d, 0.1, "linear"), dim._twonn(d, 0.0, "mle")],
                    [dim._mle(d, ks)],
                    [float(dim._lid(d, k_lid).median())],
                    dim._gride(d, scales),
                ]
            )

        point = stat(g.dist)
        boot = None
        if self.ci:
            boot = dim.bootstrap(g, stat, k=k_sub, n_boot=self.n_boot, seed=self.seed)
        few = f"too few points: {g.n_points} distinct points allow k <= {k_sub} neighbours"
        status = {
            "mle": "ok" if ks[0] >= MIN_K else f"{few}, MLE needs k >= {MIN_K}",
            "lid": "ok" if k_lid >= MIN_K else f"{few}, LID needs k >= {MIN_K}",
            "lpca": "ok" if k_lpca >= MIN_K else f"{few}, local PCA needs k >= {MIN_K}",
        }
        status["lpca_ratio"] = status["lpca"]
        names = [
            ("twonn", "TwoNN, linear fit through the origin, discard 10 %"),
            ("twonn_mle", "TwoNN MLE (N-1)/sum log mu"),
            ("mle", f"Levina-Bickel MLE, MacKay-Ghahramani, k={ks[0]}..{ks[-1]}"),
            ("lid", f"median of pointwise LID, k={k_lid}"),
        ]
        for j, (metric, est) in enumerate(names):
            if metric in wanted:
                st = status.get(metric, "ok")
                yield self._row(metric, est, point[j], boot, j, status=st, **extra)
        if "gride" in wanted:
            for j, s in enumerate(scales):
                est = f"GRIDE r_{2 * s}/r_{s}"
                yield self._row("gride", est, point[4 + j], boot, 4 + j, scale=s, **extra)
        lam = None
        for metric, ver in (("lpca", "FO"), ("lpca_ratio", "ratio")):
            if metric in wanted:
                if lam is None:
                    lam = dim._local_spectra(g.x, g.idx[:, :k_lpca], torch.float32)
                pw = dim._lpca_counts(lam, ver, 0.05, 0.95).cpu().numpy()
                b = self._mean_boot(pw) if self.ci else None
                label = "alpha=0.05" if ver == "FO" else "95 % variance"
                yield self._row(
                    metric,
                    f"local PCA {ver} ({label}), k={k_lpca}",
                    pw.mean(),
                    b,
                    status=status[metric],
                    **extra,
                )
        if "phd" in wanted and g.n_points < PHD_MIN_POINTS:
            reason = f"too few points: {g.n_points} distinct, PHD needs {PHD_MIN_POINTS}"
            yield self._row("phd", "PHD (MST, alpha=1)", np.nan, None, status=reason, **extra)
        elif "phd" in wanted:
            fit = dim.PHD(seed=self.seed).fit(g.x)
            b = self._phd_boot(fit) if self.ci else None
            yield self._row(
                "phd", "PHD (MST, alpha=1)", fit.dimension_, b, **{**extra, "dtype": "float64"}
            )

    def _mean_boot(self, values: np.ndarray) -> dim.Bootstrap:
        rng = np.random.default_rng(self.seed)
        sel = rng.integers(0, len(values), size=(self.n_boot, len(values)))
        return dim.Bootstrap(values[sel].mean(1))

    def _phd_boot(self, fit: dim.PHD) -> dim.Bootstrap:
        rng = np.random.default_rng(self.seed)
        pts = fit.points_
        groups = [np.flatnonzero(pts[:, 0] == s) for s in np.unique(pts[:, 0])]
        reps = []
        for _ in range(self.n_boot):
            sel = np.concatenate([rng.choice(gr, len(gr)) for gr in groups])
            reps.append(dim._phd_fit(pts[sel], fit.alpha))
        return dim.Bootstrap(np.array(reps))

    def _spectral(self, wanted):
        lin = {"participation_ratio", "pca", "effective_rank", "rankme"} & wanted
        if not lin:
            return
        x64 = self.x.double()
        lam = dim.covariance_spectrum(x64)
        s = (lam * (self.x.shape[0] - 1)).sqrt()
        point = {
            "participation_ratio": float(lam.sum() ** 2 / (lam * lam).sum()),
            "effective_rank": float(effective_rank(s)),
            "rankme": float(rankme(x64)),
        }
        boot = self._spectral_boot() if self.ci else None
        flat = "ok" if float(lam.sum()) > 0 else "undefined: the points have no variance (constant)"
        names = {
            "participation_ratio": "(sum lambda)^2 / sum lambda^2 of the covariance",
            "effective_rank": "Roy-Vetterli exp(H(s/sum s)), centred",
            "rankme": "RankMe (eps=1e-7), centred",
        }
        for j, metric in enumerate(names):
            if metric in wanted:
                est, v = names[metric], point[metric]
                yield self._row(metric, est, v, boot, j, centred=True, dtype="float64", status=flat)
        if "pca" in wanted:
            cum = (lam.cumsum(0) / lam.sum()).cpu().numpy()
            for f in (90, 95, 99):
                v = int(np.searchsorted(cum, f / 100 - 1e-12) + 1)
                yield self._row(
                    f"pca_{f}",
                    f"components for {f} % of the variance",
                    v,
                    None,
                    dtype="float64",
                    status=flat,
                )

    def _spectral_boot(self) -> dim.Bootstrap:
        n = self.x.shape[0]
        gen = torch.Generator().manual_seed(self.seed)
        sel = torch.randint(0, n, (self.nb_spec, n), generator=gen).to(self.x.device)
        z = self.x.float()[sel]
        z = z - z.mean(1, keepdim=True)
        gram = z @ z.mT if n <= z.shape[2] else z.mT @ z
        lam = torch.linalg.eigvalsh(gram).clamp_min(0).double()
        s = lam.sqrt()
        pr = lam.sum(1) ** 2 / (lam * lam).sum(1)
        p = s / s.sum(1, keepdim=True) + 1e-7
        rm = (-(p * p.log()).sum(1)).exp()
        reps = torch.stack([pr, effective_rank(s), rm], 1)
        return dim.Bootstrap(reps.cpu().numpy())

    def _entropy(self, wanted):
        if "dse" in wanted:
            value = diffusion_spectral_entropy(self.x, seed=self.seed)
            b = self._dse_boot() if self.ci else None
            est = "diffusion spectral entropy, sigma=10, t=1"
            yield self._row("dse", est, value, b, centred=True, dtype="float64")
        if "dsmi" in wanted:
            value = diffusion_spectral_mutual_information(self.x, self.y, seed=self.seed)
            yield self._row("dsmi", "DSE(X) - sum_y P(y) DSE(X|y)", value, None, dtype="float64")

    def _dse_boot(self) -> dim.Bootstrap:
        n = self.x.shape[0]
        m = max(2, int(0.8 * min(n, 10_000)))
        rng = np.random.default_rng(self.seed)
        sel = np.stack([np.sort(rng.choice(n, m, replace=False)) for _ in range(self.nb_spec)])
        z = self.x.double()[torch.as_tensor(sel, device=self.x.device)]
        k = torch.exp(-torch.cdist(z, z).square_() / 10.0)
        sc = k.sum(2).rsqrt()
        mat = (sc.unsqueeze(2) * k * sc.unsqueeze(1)).float()
        lam = torch.linalg.eigvalsh(mat).abs().double()
        p = lam / lam.sum(1, keepdim=True)
        return dim.Bootstrap((-torch.special.xlogy(p, p).sum(1)).cpu().numpy())
