"""UMAP and t-SNE on the tensor's device (the GPU) through TorchDR or cuML, with the kernel's kNN.

The CPU references are explorer's UMAP (:func:`explorer.kernel.umap_layout`, tested against
umap-learn) and scikit-learn's t-SNE (:mod:`explorer.projection`); this module runs the same two
methods where the data already live, on a CUDA device, through a maintained library:

* ``"torchdr"`` (TorchDR, Van Assel et al. 2025; pure torch, ``pip install torchdr``, or
  ``explorer[gpu]``). It also runs on CPU torch, which is how the tests exercise it.
* ``"cuml"`` (RAPIDS cuML; CUDA only, installed by the user from NVIDIA's index).

The neighbour graph is the kernel's exact kNN (:func:`explorer.kernel.neighbors.knn`: blocked
products on the device, distances recomputed exactly), handed to the library:

* UMAP (McInnes et al. 2018): the ``n_neighbors - 1`` nearest other points of each point with
  their Euclidean distances ``d_ij``; the memberships are
  ``p_{j|i} = exp(-(d_ij - rho_i) / sigma_i)`` with ``rho_i`` the nearest distance and
  ``sum_j p_{j|i} = log2(n_neighbors)``, symmetrised as ``P + P^T - P o P^T``; the layout
  minimises the fuzzy cross-entropy with ``q_ij = (1 + a ||y_i - y_j||^{2b})^{-1}`` by
  negative sampling, for ``n_epochs`` epochs (umap-learn's rule: 500 up to 10,000 points,
  else 200).
* t-SNE (van der Maaten & Hinton 2008): the ``3 * perplexity`` nearest neighbours with squared
  distances; ``p_{j|i}`` Gaussian with the entropy fixed by the perplexity, ``P`` symmetrised,
  Student-t ``q_ij``, KL divergence minimised with early exaggeration 12 for 250 iterations.
  TorchDR computes the repulsive term exactly over all ``N^2`` pairs (with pykeops installed,
  without holding them); cuML uses Barnes-Hut/FFT approximations.

Randomness: the seed drives torch's generators inside a :func:`torch.random.fork_rng` block
(TorchDR's negative samples), or cuML's ``random_state``; the global generators are left as they
were. On CUDA the layout is reproducible up to the non-determinism of atomic additions.
"""

from __future__ import annotations

import importlib.util
import inspect
import warnings
from collections.abc import Callable, Collection

import numpy as np
import torch

from explorer.errors import ArgumentError, MissingDependencyError
from explorer.kernel.neighbors import knn, with_self
from explorer.kernel.projection import pca

__all__ = ["GPU_ENGINES", "available_gpu_engines", "choose_gpu_engine", "tsne_gpu", "umap_gpu"]

#: Libraries that lay points out on the GPU, in order of preference for ``engine="auto"``:
#: TorchDR first (the ``gpu`` extra, exercised by the CPU tests too), cuML where it is alone.
GPU_ENGINES = ("torchdr", "cuml")

# TorchDR: compute where the data are ("auto" follows X; it compares devices as strings), in
# this process only (not across the ranks of a torchrun launch)
_TORCHDR_COMMON = {"device": "auto", "distributed": False}

# TorchDR's NeighborEmbedding reads scikit-learn's names for lr and early_exaggeration_coeff
_TORCHDR_ALIASES = frozenset({"learning_rate", "early_exaggeration"})
# parameters of TorchDR's base classes that its estimators fill in themselves
_TORCHDR_INTERNAL = frozenset(
    {"self", "affinity_in", "affinity_out", "kwargs_affinity_out", "loss_fn", "kwargs_loss"}
    | {"encoder", "n_negatives"}
)

_INSTALL = (
    "install one: `pip install 'torchdr>=0.5,<0.6'` (pure torch, or `pip install explorer[gpu]`), "
    "or cuML from NVIDIA's index (https://docs.rapids.ai/install)"
)


def available_gpu_engines() -> list[str]:
    """The installed libraries among :data:`GPU_ENGINES` (found without importing them)."""
    return [name for name in GPU_ENGINES if importlib.util.find_spec(name) is not None]


def choose_gpu_engine(engine: str = "auto", device: torch.device | None = None) -> str:
    """The library that will lay the points out: ``engine`` itself, checked to be installed
    (and cuML only on CUDA), or for ``"auto"`` the first installed of :data:`GPU_ENGINES`
    (cuML is skipped off CUDA). Raises :class:`~explorer.errors.MissingDependencyError`
    naming what to install."""
    if engine != "auto" and engine not in GPU_ENGINES:
        raise ValueError(f"engine must be 'auto' or one of {GPU_ENGINES}, got {engine!r}")
    cuda = device is None or torch.device(device).type == "cuda"
    installed = [e for e in available_gpu_engines() if cuda or e != "cuml"]
    if engine == "auto":
        if not installed:
            raise MissingDependencyError(
                "UMAP/t-SNE on the GPU needs TorchDR or cuML and neither is installed: "
                f"{_INSTALL}. Or lay the points out on the CPU with device='cpu'."
            )
        return installed[0]
    if engine == "cuml" and not cuda:
        raise ValueError("cuML runs on CUDA only: name 'torchdr' instead, or use a CUDA device")
    if engine not in installed:
        raise MissingDependencyError(f"engine {engine!r} is not installed: {_INSTALL}")
    return engine


def umap_gpu(
    x: torch.Tensor,
    n_components: int = 2,
    *,
    n_neighbors: int | None = None,
    min_dist: float = 0.1,
    n_epochs: int | None = None,
    seed: int = 0,
    init: np.ndarray | torch.Tensor | None = None,
    engine: str = "auto",
    **options,
) -> torch.Tensor:
    """UMAP layout of the rows of ``x`` on ``x``'s device (see the module docstring).

    Parameters
    ----------
    x : tensor (N, D)
        The points, float32 (other float types are converted).
    n_components : int
    n_neighbors : int, optional
        Neighbourhood size including the point itself (umap-learn's convention), at most N - 1
        (TorchDR: N - 2). Default 15, or that most for fewer points.
    min_dist : float
    n_epochs : int, optional
        Default: 500 up to 10,000 points, else 200 (umap-learn's rule).
    seed : int
    init : array (N, n_components), optional
        Start from this layout (its scale kept) instead of the first two principal components
        (TorchDR; cuML: its spectral initialisation).
    engine : {"auto", "torchdr", "cuml"}
    **options
        Passed to ``torchdr.UMAP`` or ``cuml.manifold.UMAP``: a name the library does not take
        (TorchDR would ignore it), or one set here (the epochs, seed, start, device, metric),
        is an :class:`~explorer.errors.ArgumentError`.

    Returns
    -------
    tensor (N, n_components), float32, on ``x``'s device.
    """
    x = _points(x)
    n = x.shape[0]
    engine = choose_gpu_engine(engine, x.device)
    most = n - 2 if engine == "torchdr" else n - 1  # TorchDR asks for fewer than N - 1
    n_neighbors = min(15, most) if n_neighbors is None else n_neighbors
    if not 2 <= n_neighbors <= most:
        raise ArgumentError(
            f"n_neighbors must be between 2 and {most} for {n} points ({engine}), got {n_neighbors}"
        )
    epochs = n_epochs if n_epochs is not None else (500 if n <= 10_000 else 200)
    if engine == "cuml":
        from cuml.manifold import UMAP

        params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "n_epochs": epochs}
        params["random_state"] = seed
        ours = {*params, "n_components", "init", "precomputed_knn"}
        _check_options("cuml.manifold.UMAP", ours, options)
        params["precomputed_knn"] = with_self(*knn(x, n_neighbors - 1))
        if init is not None:
            params["init"] = _as_numpy(init)
        return _run_cuml(UMAP(n_components=n_components, **params, **options), x)

    import torchdr

    params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "max_iter": epochs}
    params |= {"metric": "euclidean", "backend": None, "process_duplicates": False}
    params |= _torchdr_init(init, x, n_components, keep_scale=True)
    model = _torchdr_model(torchdr.UMAP, {"n_components": n_components, **params}, options)
    return _run_torchdr(model, x, seed, squared=False)


def tsne_gpu(
    x: torch.Tensor,
    n_components: int = 2,
    *,
    perplexity: float | None = None,
    max_iter: int = 1000,
    seed: int = 0,
    init: np.ndarray | torch.Tensor | None = None,
    engine: str = "auto",
    **options,
) -> torch.Tensor:
    """t-SNE layout of the rows of ``x`` on ``x``'s device (see the module docstring).

    Parameters
    ----------
    x : tensor (N, D)
    n_components : int
    perplexity : float, optional
        Default ``min(30, (N - 1) / 3)`` (as on the CPU path). TorchDR 0.5 takes the integer part
        (at least 2, at most N - 2): a fractional value it is given says so in a warning; the
        default, fractional below 91 points, is rounded down without one.
    max_iter : int
        Iterations, early exaggeration included (scikit-learn's default, 1000).
    seed : int
    init : array (N, n_components), optional
        Start from this layout (rescaled to a standard deviation of 1e-4, as scikit-learn's
        PCA initialisation) instead of PCA.
    engine : {"auto", "torchdr", "cuml"}
    **options
        Passed to ``torchdr.TSNE`` or ``cuml.manifold.TSNE`` (checked as for :func:`umap_gpu`).

    Returns
    -------
    tensor (N, n_components), float32, on ``x``'s device.
    """
    x = _points(x)
    n = x.shape[0]
    default = perplexity is None
    perplexity = min(30.0, (n - 1) / 3.0) if default else float(perplexity)
    engine = choose_gpu_engine(engine, x.device)
    if engine == "cuml":
        from cuml.manifold import TSNE

        k = min(n - 1, int(3 * perplexity))
        params = {"perplexity": perplexity, "max_iter": max_iter, "random_state": seed}
        params["n_neighbors"] = k + 1
        ours = {*params, "n_components", "init", "precomputed_knn"}
        _check_options("cuml.manifold.TSNE", ours, options)
        params["precomputed_knn"] = with_self(*knn(x, k))
        if init is not None:
            params["init"] = _as_numpy(init)
        return _run_cuml(TSNE(n_components=n_components, **params, **options), x)

    import torchdr

    backend = "keops" if importlib.util.find_spec("pykeops") is not None else None
    if backend is None:
        _check_dense_fits(n, x.device)
    if perplexity != int(perplexity) and not default:
        warnings.warn(
            f"TorchDR uses the integer part of the perplexity: {int(perplexity)}, not "
            f"{perplexity:g}",
            stacklevel=2,
        )
    perplexity = float(int(perplexity))
    params = {"perplexity": perplexity, "max_iter": max_iter, "backend": backend}
    params |= {"metric": "sqeuclidean", "process_duplicates": False}
    params |= _torchdr_init(init, x, n_components, keep_scale=False)
    model = _torchdr_model(torchdr.TSNE, {"n_components": n_components, **params}, options)
    return _run_torchdr(model, x, seed, squared=True)


# -- helpers ------------------------------------------------------------------------------------
def _points(x) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2 or t.shape[0] < 4:
        raise ValueError(f"expected an (N, D) matrix of at least 4 points, got {tuple(t.shape)}")
    return t.detach().to(torch.float32).contiguous()


def _as_numpy(a) -> np.ndarray:
    """A starting layout as float32 numpy."""
    if isinstance(a, str):
        raise ArgumentError(
            f"init is a starting layout, an (N, n_components) array, not {a!r}: leave it out "
            "for the engine's own start"
        )
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return np.ascontiguousarray(a, dtype=np.float32)


def _check_options(
    library: str, ours: Collection[str], options: dict, known: set[str] | None = None
) -> None:
    """The options a user passes on to ``library``'s estimator: none of the parameters this module
    sets itself (``ours``, and the seed), and, when ``known`` is given, only names it takes."""
    clash = sorted(set(options) & (set(ours) | {"random_state"}))
    if clash:
        raise ArgumentError(
            f"explorer sets {library}'s {clash} itself: pass seed=..., init=..., n_epochs "
            "(UMAP) or max_iter (t-SNE), device=... or the method's own arguments instead"
        )
    unknown = sorted(set(options) - known) if known is not None else []
    if unknown:
        raise ArgumentError(
            f"{library} takes no option {unknown}; it takes {sorted(known - set(ours))}"
        )


def _torchdr_model(cls: type, ours: dict, options: dict):
    """``cls(**ours, **options)`` for a TorchDR estimator, the options checked first: TorchDR
    passes unknown keywords down its classes and drops them, so a misspelt option would be
    ignored without a word. The names it takes are those of the ``__init__`` of its classes
    (the affinity objects, loss and encoder aside) and the two aliases its ``NeighborEmbedding``
    reads."""
    ours = {**_TORCHDR_COMMON, **ours}
    known = set(_TORCHDR_ALIASES)
    for c in cls.__mro__:
        if "__init__" in vars(c) and c.__module__.startswith("torchdr"):
            for name, p in inspect.signature(c.__init__).parameters.items():
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                    known.add(name)
    known -= _TORCHDR_INTERNAL
    _check_options(f"torchdr.{cls.__name__}", ours, options, known)
    return cls(**ours, **options)


def _torchdr_init(init, x: torch.Tensor, n_components: int, keep_scale: bool) -> dict:
    """The start of the layout: ``init``, or the first principal components of ``x`` (TorchDR's
    own ``init="pca"`` is a thin SVD of the N x D data, its N x D factor included; the kernel's PCA
    eigendecomposes the D x D covariance). TorchDR rescales a start so that column 0 has the
    standard deviation ``init_scaling`` (1e-4 by default, as scikit-learn's t-SNE): an ``init``
    keeps its own scale for UMAP."""
    if init is None:
        return {"init": pca(x, n_components).coords}
    start = torch.as_tensor(_as_numpy(init), device=x.device)
    if start.ndim != 2 or start.shape[0] != x.shape[0]:
        raise ValueError(f"init has shape {tuple(start.shape)}, expected ({x.shape[0]}, k)")
    return {"init": start} | ({"init_scaling": float(start[:, 0].std())} if keep_scale else {})


def _kernel_knn(metric_squared: bool) -> Callable:
    """A stand-in for TorchDR's ``Affinity._distance_matrix(X, k, return_indices)`` that answers
    with the kernel's exact kNN (self excluded, as TorchDR's own backends do)."""

    def distance_matrix(X, k=None, return_indices=False):
        if k is None:
            raise ValueError("the kernel's kNN serves sparse affinities only (k given)")
        dist, idx = knn(X, int(k))
        if metric_squared:
            dist = dist * dist
        return (dist, idx) if return_indices else dist

    return distance_matrix


def _run_torchdr(model, x: torch.Tensor, seed: int, squared: bool) -> torch.Tensor:
    # TorchDR asks its affinity for distances through _distance_matrix (torchdr 0.5); answer it
    # with the kernel's kNN rather than TorchDR's own search (faiss/keops/dense torch)
    affinity = model.affinity_in
    if not callable(getattr(affinity, "_distance_matrix", None)):
        raise RuntimeError(
            f"torchdr {_version('torchdr')} has no Affinity._distance_matrix to hand the kNN to: "
            "explorer supports torchdr 0.5"
        )
    affinity._distance_matrix = _kernel_knn(squared)
    devices = [x.device] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = model.fit_transform(x)
    return torch.as_tensor(out).detach().to(device=x.device, dtype=torch.float32)


def _run_cuml(model, x: torch.Tensor) -> torch.Tensor:
    out = model.fit_transform(x)  # torch CUDA tensors travel by __cuda_array_interface__
    if hasattr(out, "__cuda_array_interface__"):
        return torch.as_tensor(out, device=x.device).to(torch.float32)
    return torch.as_tensor(np.asarray(out), dtype=torch.float32, device=x.device)


def _check_dense_fits(n: int, device: torch.device) -> None:
    """TorchDR's t-SNE without pykeops holds a few N x N float32 matrices per iteration."""
    need = 4 * 4 * n * n
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        if need > free:
            raise MissingDependencyError(
                f"t-SNE of {n} points through TorchDR without pykeops needs ~{need / 2**30:.0f} "
                f"GiB of GPU memory ({free / 2**30:.0f} GiB free): `pip install pykeops`, "
                "install cuML, or use method='umap'"
            )


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "(unknown version)"
