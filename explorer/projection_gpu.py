"""Which engine lays out one depth for ``ex.project``: the CPU reference or a GPU library.

UMAP and t-SNE run on the CPU (explorer's UMAP, :func:`explorer.kernel.umap_layout`, tested
against umap-learn; scikit-learn's t-SNE: the references) unless

* ``device`` is a CUDA device asked for by name (``"cuda"``, ``"cuda:1"``): then a GPU engine
  (:mod:`explorer.kernel.embedding_gpu`: TorchDR if installed, else cuML) is required, and its
  absence is a :class:`~explorer.errors.MissingDependencyError` that says what to install;
* ``device="auto"`` resolved to CUDA: a GPU engine if one is installed, else the CPU reference
  with a warning that says what to install;
* the option ``gpu_engine="torchdr"`` or ``"cuml"`` names the library: it runs on ``device``
  (TorchDR also on the CPU).

The engine is part of a layout's cache key (a GPU layout is a different computation from the
CPU one, not the same numbers to a tolerance); CPU layouts keep the keys they had.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from explorer.errors import MissingDependencyError
from explorer.kernel.embedding_gpu import choose_gpu_engine, tsne_gpu, umap_gpu

__all__ = ["gpu_layout", "layout_engine"]

#: The option of ``ex.project`` that names the GPU library (it is not passed to the method).
ENGINE_OPTION = "gpu_engine"


def layout_engine(
    method: str, requested: str | torch.device | None, device: torch.device, options: dict
) -> str | None:
    """The GPU library that lays out ``method`` on ``device``, or None for the CPU reference.

    ``requested`` is the ``device`` the user passed (``"auto"``, ``None`` or a device), ``device``
    what it resolved to.
    """
    named = options.get(ENGINE_OPTION)
    if method == "pca":
        if named is not None:
            raise ValueError(f"{ENGINE_OPTION} applies to 'umap' and 'tsne' only")
        return None
    if named is not None:
        try:
            return choose_gpu_engine(named, device)
        except ValueError as err:  # the kernel's words, said in terms of ex.project's option
            raise ValueError(f"{ENGINE_OPTION}={named!r}: {err}") from None
    if device.type != "cuda":
        return None
    if requested is None or requested == "auto":
        try:
            return choose_gpu_engine("auto", device)
        except MissingDependencyError as err:
            warnings.warn(f"{err} Laying out on the CPU.", stacklevel=3)
            return None
    return choose_gpu_engine("auto", device)


def gpu_layout(
    x: torch.Tensor,
    method: str,
    n_components: int,
    seed: int,
    device: torch.device,
    engine: str,
    init: np.ndarray | None,
    options: dict[str, Any],
) -> np.ndarray:
    """One depth's layout by ``engine`` on ``device``, as float32 numpy (N, n_components)."""
    params = {k: v for k, v in options.items() if k != ENGINE_OPTION}
    x = x.detach().to(device=device, dtype=torch.float32)
    if method == "umap":
        out = umap_gpu(x, n_components, seed=seed, init=init, engine=engine, **params)
    else:
        out = tsne_gpu(x, n_components, seed=seed, init=init, engine=engine, **params)
    return out.cpu().numpy().astype(np.float32, copy=False)
