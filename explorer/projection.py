"""``ex.project(acts)``: 2-D (or 3-D) layouts of the probe points at every depth, aligned across depth.

Each depth is laid out on its own (PCA, UMAP or t-SNE) as a job, one depth at a time, so a view
fills in as depths finish and a cached depth is read back instead of recomputed. With
``align=True`` depth ``d_i``'s layout is then moved rigidly onto the (aligned) layout of the
depth before it by orthogonal Procrustes (Schönemann 1966; rotation/reflection and translation,
no scaling), so scrubbing from one depth to the next moves the points as little as a rigid motion
can: the summed squared displacement is minimal, and never more than without alignment.

Quality per depth (REFERENCES.md, "Projections"): trustworthiness (Venna & Kaski 2001, via
``sklearn.manifold.trustworthiness``) of the layout against the full space, and the leave-one-out
k-NN label accuracy in the full space and in the layout.

A quick first picture: ``project(acts, "pca")`` takes milliseconds; start
``project(acts, "umap", background=True)`` next and replace the picture as its depths arrive
(``.job.on_part``); its progress moves within a depth (neighbours, then epochs). UMAP's numba
code (NN-descent above 20,000 points, the graph, the layout) compiles on first
use; numba's on-disk cache is pointed at ``<explorer cache>/numba`` unless
``NUMBA_CACHE_DIR`` is set, so later sessions, and the dashboard after ``explorer demo
--build-only`` (:func:`warm_umap`), reuse the code.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from explorer import arguments
from explorer.activations import Activations
from explorer.cache import cache_root, digest, key
from explorer.errors import ArgumentError, MissingDependencyError
from explorer.jobs import Job, JobEngine, default_engine, layer_progress
from explorer.kernel.device import resolve_device
from explorer.kernel.projection import displacement, pca, procrustes
from explorer.projection_gpu import gpu_layout, layout_engine
from explorer.projection_input import STATUSES, check_points, prepare, usable_init

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Projection", "ProjectionPair", "project", "project_pair"]

METHODS = ("pca", "umap", "tsne")
# 2: UMAP by kernel.umap_layout; 3: warm-start epochs; 4: float32 SGD, resumed warm schedule;
# 5: explorer's NN-descent and fuzzy graph, one edge's negative samples summed;
# 6: a point's negative samples of one epoch summed, vectorised powf;
# 7: kernel.spectral_init (fewer Lanczos vectors, components placed by scaled distances)
_KEY_FORMAT = "explorer.project/7"


def project(
    acts: Activations,
    method: str = "pca",
    *,
    align: bool = True,
    n_components: int = 2,
    seed: int = 0,
    depths: Sequence[int] | None = None,
    labels: str | np.ndarray | None = "label",
    init_previous: bool = False,
    device: str | torch.device | None = "auto",
    cache: bool = True,
    engine: JobEngine | None = None,
    background: bool = False,
    **options: Any,
) -> Projection:
    """Lay out the points of every depth in 2-D (or 3-D) and align the layouts across depth.

    Parameters
    ----------
    acts : Activations
        ``acts[depth]`` is an (N, D) tensor; the same N points at every depth.
    method : {"pca", "umap", "tsne"}
        ``"pca"``: :func:`explorer.kernel.pca` on ``device`` (centred; exact eigendecomposition
        of the covariance, randomised SVD for large D; explained variance recorded). ``"umap"``:
        UMAP (McInnes et al. 2018) by :func:`explorer.kernel.umap_layout`: exact neighbours up
        to 20,000 points on the CPU (NN-descent above), umap-learn's graph, its spectral
        initialisation solved with fewer Lanczos vectors, a parallel layout (all cores) that
        gives the same result for the same seed whatever the number of threads;
        ``implementation="umap-learn"`` runs ``umap.UMAP`` itself (seeded, hence
        single-threaded; even its unseeded parallel mode is 2.5-3.6x slower than ours at 10,000
        to 50,000 points, ``benchmarks/projection_speed.py``).
        ``"tsne"``: ``sklearn.manifold.TSNE`` (van der Maaten & Hinton 2008) with perplexity
        ``min(30, (N - 1) / 3)``. Both on the CPU in float32.
    align : bool
        Procrustes-align each depth onto the previous one (``coords``); ``raw`` keeps the layouts
        as computed.
    n_components : {2, 3}
    seed : int
        Seeds UMAP, t-SNE and the randomised PCA; part of the result's provenance and of the cache
        key. The same data, options and seed give the same layout bit for bit on the same machine
        and library versions, at any thread count (UMAP's NN-descent and parallel layout
        included); a cached layout is read back exactly as it was stored.
    depths : sequence of int, optional
        Default: every captured depth, in order.
    labels : str or array, optional
        Labels for the k-NN accuracy of :meth:`Projection.quality`: a name in ``acts.labels``
        (default ``"label"``, ignored if absent) or one value per point.
    init_previous : bool
        UMAP and t-SNE only: start each depth from the previous depth's layout (raw), instead of a
        spectral (UMAP) or PCA (t-SNE) initialisation. Depths then run strictly in order. UMAP on
        the CPU then searches each depth's neighbours by NN-descent (above 20,000 points) from
        the previous depth's, and runs fewer epochs the fewer neighbours changed since then
        (:func:`explorer.kernel.umap_layout.warm_epochs`: 25 when none did, all from 20 % on).
        Each depth's neighbours are cached with its layout, so a depth computed after a cached
        one is the same as in one uninterrupted run.
    device : "auto", "cpu", "cuda", ...
        Where PCA runs, and where UMAP/t-SNE run: on a CUDA device through TorchDR or cuML
        (:mod:`explorer.projection_gpu` says which and when; the option ``gpu_engine`` names
        the library), else on the CPU (UMAP's neighbour search on the kernel's device).
    cache : bool
        Read and write each depth's layout in the engine's disk cache, keyed by the depth's bytes,
        the method, its options, the seed and explorer's version; not by ``device`` (the CPU and
        CUDA layouts agree to tolerance: see :func:`explorer.cache.key`).
    engine : JobEngine, optional
        Where the job runs (default: :func:`explorer.jobs.default_engine`).
    background : bool
        Return at once; the Projection fills in as depths finish (``.job`` has progress, cancel
        and callbacks). Otherwise wait, and raise :class:`explorer.jobs.JobError` naming the
        depths that failed.
    **options
        Passed to the method: ``solver`` for PCA, ``n_neighbors``/``min_dist``/... for UMAP,
        ``perplexity``/``max_iter``/... for t-SNE.
    """
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {METHODS}, got {method!r}")
    if n_components not in (2, 3):
        raise ArgumentError(f"n_components must be 2 or 3, got {n_components!r}")
    if not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ArgumentError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    if init_previous and method == "pca":
        raise ValueError("init_previous applies to 'umap' and 'tsne' only")
    depths = list(acts.depths if depths is None else depths)
    missing = [d for d in depths if d not in acts.depths]
    if missing:
        raise KeyError(f"depths {missing} were not captured; captured: {acts.depths}")
    if depths:
        check_points(acts.n_points, min(acts[d].shape[1] for d in depths), method, n_components)
    dev = resolve_device(device)
    gpu = layout_engine(method, device, dev, options)  # None: the CPU reference
    proj = Projection(acts, method, depths, n_components, seed, align, labels, options)
    proj.init_previous = init_previous

    # the layout holds the raw layouts so far (filled in by proj._add, in depth order), not the
    # Projection, whose job holds the executor: so it pickles for an executor that ships work
    # to other workers (Dask)
    raw = proj.raw
    # a warm-started CPU UMAP searches each depth's neighbours from the previous depth's and runs
    # fewer epochs the fewer of them changed (kernel.umap_layout.warm_epochs): each depth returns
    # its neighbour indices with its layout (so they are cached with it), and proj._add keeps the
    # latest depth's here for the next
    warm = init_previous and method == "umap" and gpu is None
    warm = warm and options.get("implementation", "explorer") == "explorer"
    neighbours = proj._neighbours

    def layout(depth: int) -> dict[str, np.ndarray]:
        x, status = prepare(acts[depth], depth)
        if x is None:  # constant: every point at the origin, no third-party call
            return _at_origin(acts.n_points, n_components, method, status)
        init = usable_init(_previous(depths, depth, raw)) if init_previous else None
        if gpu is not None:
            return {"coords": gpu_layout(x, method, n_components, seed, dev, gpu, init, options)}
        if warm:
            before = [d for d in depths[: depths.index(depth)] if d in raw]
            previous = before[-1] if before else None
            known = neighbours.get(previous) if init is not None else None
            return _warm_umap(x.to(dev), n_components, seed, init, options, known)
        return _layout(x, method, n_components, seed, dev, init, options)

    def layer_key(depth: int) -> str:
        chain = depths[: depths.index(depth) + 1] if init_previous else [depth]
        params = {"method": method, "k": n_components, "seed": seed, "options": options}
        params["init_previous"] = init_previous
        if gpu is not None:
            params["engine"] = gpu
        return key(_KEY_FORMAT, params, [digest(acts[d]) for d in chain])

    engine = engine or default_engine()
    proj.job = engine.submit(
        layout,
        depths,
        key=layer_key if cache else None,
        name=f"project:{method}",
        on_part=proj._add,
    )
    if not background:
        proj.job.result()
    return proj


class Projection:
    """Layouts of the same points at several depths (see :func:`project`).

    Attributes
    ----------
    coords : dict of int -> (N, k) float32
        The layouts shown: aligned across depth if ``align``, else the raw ones.
    raw : dict of int -> (N, k) float32
        Each depth's layout as the method returned it.
    explained_variance_ratio : dict of int -> (k,)
        PCA only: ``lambda_j / tr(C)`` per depth.
    status : dict of int -> str
        ``"ok"``, or ``"constant"`` for a depth whose points are all equal (laid at the origin;
        see :mod:`explorer.projection_input`).
    depths, method, n_components, seed, align, init_previous, options
        What was asked (provenance).
    job : explorer.jobs.Job
        The job that computes it: progress, cancel, callbacks.
    """

    def __init__(self, acts, method, depths, n_components, seed, align, labels, options):
        self.acts = acts
        self.method = method
        self.depths = list(depths)
        self.n_components = n_components
        self.seed = seed
        self.align = align
        self.options = dict(options)
        self.init_previous = False
        self.labels = _labels(acts, labels)
        self._neighbours: dict[int, np.ndarray] = {}  # the latest depth's (see project)
        self.coords: dict[int, np.ndarray] = {}
        self.raw: dict[int, np.ndarray] = {}
        self.explained_variance_ratio: dict[int, np.ndarray] = {}
        self.status: dict[int, str] = {}
        self.job: Job | None = None

    def __repr__(self) -> str:
        return (
            f"Projection({self.method!r}, depths={self.depths}, n_points={self.acts.n_points}, "
            f"n_components={self.n_components}, align={self.align}, done={len(self.coords)})"
        )

    def _add(self, depth: int, layout: dict[str, np.ndarray]) -> None:
        """A depth arrived (depths arrive in order): keep it, aligned onto the previous one."""
        raw = np.asarray(layout["coords"], dtype=np.float32)
        self.raw[depth] = raw
        self.status[depth] = STATUSES[int(layout.get("status", 0))]
        if "explained_variance_ratio" in layout:
            self.explained_variance_ratio[depth] = np.asarray(layout["explained_variance_ratio"])
        if "neighbors" in layout:  # a warm-started UMAP's: the next depth searches from them
            self._neighbours.clear()
            self._neighbours[depth] = np.asarray(layout["neighbors"])
        target = _previous(self.depths, depth, self.coords) if self.align else None
        self.coords[depth] = raw if target is None else procrustes(raw, target)

    def wait(self, timeout: float | None = None) -> Projection:
        """Block until every depth is in (raises :class:`explorer.jobs.JobError` on failures)."""
        self.job.result(timeout)
        return self

    def array(self) -> np.ndarray:
        """The finished layouts as one float32 array ``[depth, N, k]`` (in ``depths`` order)."""
        return np.stack([self.coords[d] for d in self.depths if d in self.coords])

    @property
    def displacement(self) -> pd.DataFrame:
        """Mean point displacement ``(1/N) sum_i ||y_i(d) - y_i(d')||`` from the previous depth
        ``d'`` to ``d``, for the raw and the aligned layouts; ``.attrs`` holds their means."""
        import pandas as pd

        rows = []
        done = [d for d in self.depths if d in self.coords]
        for prev, d in zip(done, done[1:], strict=False):
            rows.append(
                {
                    "depth": d,
                    "previous_depth": prev,
                    "unaligned": displacement(self.raw[d], self.raw[prev]),
                    "aligned": displacement(self.coords[d], self.coords[prev]),
                }
            )
        df = pd.DataFrame(rows, columns=["depth", "previous_depth", "unaligned", "aligned"])
        df.attrs = {
            "unaligned": float(df.unaligned.mean()) if len(df) else float("nan"),
            "aligned": float(df.aligned.mean()) if len(df) else float("nan"),
            "method": self.method,
            "align": self.align,
        }
        return df

    def frame(self) -> pd.DataFrame:
        """Tidy coordinates: one row per (depth, point) with ``x``, ``y`` (``z``) and the labels."""
        import pandas as pd

        names = ["x", "y", "z"][: self.n_components]
        parts = []
        for d in self.depths:
            if d not in self.coords:
                continue
            part = pd.DataFrame(self.coords[d], columns=names)
            part.insert(0, "point", np.arange(len(part)))
            part.insert(0, "depth", d)
            for name, values in self.acts.labels.items():
                if values.ndim == 1:
                    part[name] = values
            parts.append(part)
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)
        df.attrs = self._provenance()
        return df

    def quality(
        self, k: Sequence[int] = (5, 10, 15), knn_k: int = 10, max_points: int = 5000
    ) -> pd.DataFrame:
        """Per depth: trustworthiness of the layout at each neighbourhood size ``k`` (Venna &
        Kaski 2001; ``sklearn.manifold.trustworthiness``), the leave-one-out ``knn_k``-NN label
        accuracy in the full space and in the layout (:func:`explorer.kernel.knn_accuracy`), the
        displacement from the previous depth (raw, aligned) and, for PCA, the explained variance
        of the shown components. Above ``max_points`` points a seeded random subset is scored
        (trustworthiness holds an N x N distance matrix)."""
        import pandas as pd
        from sklearn.manifold import trustworthiness

        from explorer.kernel.neighbors import knn_accuracy

        n = self.acts.n_points
        max_points = arguments.integer("max_points", max_points, low=4)
        top = (min(n, max_points) - 1) // 2
        k = arguments.integers("k", k, low=1, high=max(1, top))
        knn_k = arguments.integer("knn_k", knn_k, low=1, high=max(1, min(n, max_points) - 1))
        rng = np.random.default_rng(self.seed)
        keep = np.sort(rng.choice(n, max_points, replace=False)) if n > max_points else None
        disp = self.displacement.set_index("depth")
        rows = []
        for d in self.depths:
            if d not in self.coords:
                continue
            full = self.acts[d].detach().cpu().to(torch.float32).numpy()
            low = self.coords[d]
            lab = self.labels
            if keep is not None:
                full, low = full[keep], low[keep]
                lab = None if lab is None else lab[keep]
            row = {"depth": d, "n_points": len(low)}
            for kk in k:
                row[f"trustworthiness_{kk}"] = float(trustworthiness(full, low, n_neighbors=kk))
            if lab is not None:
                row["knn_accuracy_full"] = knn_accuracy(full, lab, k=knn_k)
                row["knn_accuracy_layout"] = knn_accuracy(low, lab, k=knn_k)
            row["displacement_unaligned"] = disp.unaligned.get(d, np.nan)
            row["displacement_aligned"] = disp.aligned.get(d, np.nan)
            if d in self.explained_variance_ratio:
                row["explained_variance"] = float(self.explained_variance_ratio[d].sum())
            rows.append(row)
        df = pd.DataFrame(rows)
        df.attrs = {**self._provenance(), "k": list(k), "knn_k": knn_k}
        return df

    def _provenance(self) -> dict:
        return {
            "method": self.method,
            "n_components": self.n_components,
            "seed": self.seed,
            "align": self.align,
            "init_previous": self.init_previous,
            "options": self.options,
            "n_points": self.acts.n_points,
            "source": self.acts.meta.get("checkpoint"),
        }


class ProjectionPair:
    """Two checkpoints' layouts of the same points, ``b`` aligned onto ``a`` at each depth.

    Attributes
    ----------
    a, b : Projection
        ``a`` is aligned across depth (if asked); ``b.coords[d]`` is ``b.raw[d]``
        Procrustes-aligned onto ``a.coords[d]``, so the two pictures can be read side by side.
    names : tuple of str
    """

    def __init__(self, a: Projection, b: Projection, names: tuple[str, str]):
        self.a, self.b, self.names = a, b, names

    def __repr__(self) -> str:
        return f"ProjectionPair({self.names[0]!r}, {self.names[1]!r}, {self.a.method!r})"

    @property
    def displacement(self) -> pd.DataFrame:
        """Per depth, mean displacement between the two checkpoints' layouts of each point, before
        (``b.raw`` vs ``a.coords``) and after aligning ``b`` onto ``a``."""
        import pandas as pd

        rows = [
            {
                "depth": d,
                "unaligned": displacement(self.b.raw[d], self.a.coords[d]),
                "aligned": displacement(self.b.coords[d], self.a.coords[d]),
            }
            for d in self.a.depths
        ]
        return pd.DataFrame(rows, columns=["depth", "unaligned", "aligned"])

    def frame(self) -> pd.DataFrame:
        """Both tidy frames with a ``checkpoint`` column first."""
        import pandas as pd

        parts = []
        for name, p in zip(self.names, (self.a, self.b), strict=True):
            f = p.frame()
            f.insert(0, "checkpoint", name)
            parts.append(f)
        return pd.concat(parts, ignore_index=True)


def project_pair(
    acts_a: Activations, acts_b: Activations, method: str = "pca", **kwargs: Any
) -> ProjectionPair:
    """Project two captures of the same probe (two checkpoints) and align ``b`` onto ``a``.

    Each is laid out by :func:`project` (same ``method`` and keywords; ``a`` aligned across depth
    if ``align``); then at every depth ``b``'s raw layout is moved rigidly onto ``a``'s by
    orthogonal Procrustes, so points that sit alike in both checkpoints sit at the same place.
    It runs in the foreground: for background jobs, :func:`project` each capture and align
    them with :func:`explorer.kernel.projection.procrustes` when both are done.
    """
    if kwargs.pop("background", False):
        raise ValueError(
            "project_pair runs in the foreground: for background jobs call ex.project on each "
            "capture (background=True) and align b onto a when both are done"
        )
    if acts_a.n_points != acts_b.n_points:
        raise ValueError(
            f"the two captures hold {acts_a.n_points} and {acts_b.n_points} points: "
            "capture the same probe with both checkpoints"
        )
    a = project(acts_a, method, **kwargs)
    b = project(acts_b, method, **kwargs)
    for d in a.depths:
        b.coords[d] = procrustes(b.raw[d], a.coords[d])
    names = (
        str(acts_a.meta.get("checkpoint") or "a"),
        str(acts_b.meta.get("checkpoint") or "b"),
    )
    if names[0] == names[1]:
        names = (f"{names[0]} (a)", f"{names[1]} (b)")
    return ProjectionPair(a, b, names)


# -- one depth ----------------------------------------------------------------------------------
def _at_origin(n: int, n_components: int, method: str, status: str) -> dict[str, np.ndarray]:
    out = {
        "coords": np.zeros((n, n_components), np.float32),
        "status": np.array(STATUSES.index(status), np.int8),
    }
    if method == "pca":
        out["explained_variance_ratio"] = np.zeros(n_components)
    return out


def _layout(x, method, n_components, seed, device, init, options) -> dict[str, np.ndarray]:
    if method == "pca":
        r = pca(x.to(device), n_components, seed=seed, **options)
        return {
            "coords": r.coords.cpu().numpy(),
            "explained_variance_ratio": r.explained_variance_ratio.cpu().numpy(),
        }
    if method == "umap":  # the neighbours are searched on the device
        return {"coords": _umap(x.to(device), n_components, seed, init, options)}
    data = x.detach().cpu().to(torch.float32).numpy()
    if method == "tsne":
        return {"coords": _tsne(data, n_components, seed, init, options)}
    return {"coords": _umap(data, n_components, seed, init, options)}


def _warm_umap(x, n_components, seed, init, options, previous) -> dict:
    """One depth of a CPU UMAP with ``init_previous``: its neighbours are searched here, by
    NN-descent from ``previous`` (the previous depth's neighbour indices, whose layout ``init``
    is; None for the first depth) where NN-descent is used, and returned with the layout; with
    ``previous`` the layout runs fewer epochs the fewer neighbours changed
    (:func:`kernel.umap_layout.warm_epochs`)."""
    use_numba_cache()
    from explorer.kernel.umap_layout import search_neighbors

    k = options.get("n_neighbors", min(15, len(x)))
    how = options.get("neighbor_search", "auto")
    found = search_neighbors(x, k, seed, how, start=previous)
    extra = {"neighbors": found}
    if previous is not None:
        extra["previous_neighbors"] = previous
    coords = _umap(x, n_components, seed, init, {**options, **extra})
    return {"coords": coords, "neighbors": found[1].cpu().numpy().astype(np.int32)}


def _tsne(data, n_components, seed, init, options) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = len(data)
    params = {"perplexity": min(30.0, (n - 1) / 3.0 - 1e-6), "init": "pca", "random_state": seed}
    if init is not None:
        # sklearn's own PCA initialisation is scaled to a standard deviation of 1e-4; do the same
        params["init"] = (init - init.mean(0)) / init[:, 0].std() * 1e-4
    params.update(options)
    return TSNE(n_components, **params).fit_transform(data).astype(np.float32)


def _umap(data, n_components, seed, init, options) -> np.ndarray:
    """One depth's UMAP: :func:`explorer.kernel.umap_layout` (exact neighbours, parallel layout,
    the same layout for the same seed at any thread count), or umap-learn itself with
    ``implementation="umap-learn"`` (seeded, so single-threaded)."""
    options = dict(options)
    implementation = options.pop("implementation", "explorer")
    if implementation not in ("explorer", "umap-learn"):
        raise ArgumentError(
            f"implementation must be 'explorer' or 'umap-learn', got {implementation!r}"
        )
    if implementation == "explorer":
        use_numba_cache()
        from explorer.kernel.umap_layout import umap_layout

        params = {"n_neighbors": min(15, len(data)), "seed": seed, "progress": layer_progress}
        if init is not None:
            params["init"] = init
        unknown = sorted(set(options) - set(inspect.signature(umap_layout).parameters))
        if unknown:
            raise ArgumentError(
                f"explorer's UMAP takes no option {unknown} (the seed is project(seed=...)); "
                "for umap.UMAP's other options pass implementation='umap-learn'"
            )
        params.update(options)
        return umap_layout(data, n_components, **params)
    params = {"n_neighbors": min(15, len(data) - 1), "random_state": seed, "n_jobs": 1}
    if init is not None:
        params["init"] = init
    params.update(options)
    umap = import_umap()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*overridden.*")
        data = data.detach().cpu().to(torch.float32).numpy()
        return umap.UMAP(n_components=n_components, **params).fit_transform(data).astype(np.float32)


def numba_cache_dir() -> Path:
    """Where numba's compiled code is kept: ``NUMBA_CACHE_DIR``, else ``<explorer cache>/numba``."""
    return Path(os.environ.get("NUMBA_CACHE_DIR") or cache_root() / "numba")


def use_numba_cache() -> None:
    """Keep numba's compiled code in ``<explorer cache>/numba`` (unless ``NUMBA_CACHE_DIR`` is
    already set), so later sessions reuse it."""
    if "NUMBA_CACHE_DIR" not in os.environ:
        os.environ["NUMBA_CACHE_DIR"] = str(numba_cache_dir())
        if "numba" in sys.modules:
            sys.modules["numba"].core.config.reload_config()


def import_umap():
    """Import umap-learn with numba's on-disk cache in place (:func:`use_numba_cache`)."""
    use_numba_cache()
    try:
        import umap
    except ImportError as err:
        raise MissingDependencyError(
            "implementation='umap-learn' needs umap-learn, which is not importable here "
            f"({err}): `pip install umap-learn`, or use explorer's own UMAP (the default)"
        ) from err
    return umap


def warm_umap(force: bool = False) -> float | None:
    """Compile the numba code of ``project(acts, "umap")`` now, into numba's disk cache (see
    :func:`use_numba_cache`; umap-learn is not imported), by laying out 300 random points, so
    that the first real UMAP, e.g. the dashboard's, loads compiled code instead of waiting for
    the compiler. Returns the seconds it took, or None when a stamp in the cache says this code
    was already compiled there (``force`` compiles anyway)."""
    from importlib.metadata import version

    stamp = numba_cache_dir() / "explorer-umap-warm.stamp"
    kernel = Path(__file__).parent / "kernel"
    sources = hashlib.sha256(version("numba").encode())
    for name in ("umap_layout", "_umap_sgd", "_fastmath", "_random", "nn_descent", "fuzzy_graph"):
        sources.update((kernel / f"{name}.py").read_bytes())
    if not force and stamp.is_file() and stamp.read_text() == sources.hexdigest():
        return None
    start = time.perf_counter()
    use_numba_cache()
    from explorer.kernel.nn_descent import nn_descent
    from explorer.kernel.umap_layout import umap_layout

    points = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    umap_layout(points, n_neighbors=10, n_epochs=2, neighbor_search="exact")
    neighbours = nn_descent(points, 9)[1]
    nn_descent(points, 9, start=neighbours)  # the warm start's own code
    seconds = time.perf_counter() - start
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(sources.hexdigest())
    except OSError:  # a read-only cache: compile again next time, nothing else lost
        pass
    return seconds


def _previous(depths, depth: int, layouts: dict[int, np.ndarray]) -> np.ndarray | None:
    """The layout of the nearest earlier depth that is in (a failed depth is skipped)."""
    earlier = [d for d in depths[: depths.index(depth)] if d in layouts]
    return layouts[earlier[-1]] if earlier else None


def _labels(acts: Activations, labels) -> np.ndarray | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        if labels not in acts.labels:
            if labels == "label":
                return None
            raise KeyError(f"no labels {labels!r}; the capture has {list(acts.labels)}")
        return acts.labels[labels]
    values = np.asarray(labels)
    if len(values) != acts.n_points:
        raise ValueError(f"{len(values)} labels for {acts.n_points} points")
    return values
