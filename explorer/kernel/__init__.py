"""The analysis kernel: pure math on tensors, CPU or GPU. Imports nothing of the notebook.

One flat namespace (DESIGN.md): estimators of intrinsic dimension, spectra of one matrix, the
subspaces of two, CKA, projections (UMAP/t-SNE on the GPU among them) and exact nearest
neighbours.
"""

from explorer.kernel import (
    dimension,
    embedding_gpu,
    entropy,
    neighbors,
    projection,
    similarity,
    spectra,
    subspaces,
)
from explorer.kernel.device import resolve_device as resolve_device
from explorer.kernel.dimension import *  # noqa: F403
from explorer.kernel.embedding_gpu import *  # noqa: F403
from explorer.kernel.entropy import *  # noqa: F403
from explorer.kernel.neighbors import *  # noqa: F403
from explorer.kernel.powerlaw import PowerLawFit as PowerLawFit
from explorer.kernel.powerlaw import fit_powerlaw as fit_powerlaw
from explorer.kernel.projection import *  # noqa: F403
from explorer.kernel.similarity import *  # noqa: F403
from explorer.kernel.spectra import *  # noqa: F403
from explorer.kernel.subspaces import *  # noqa: F403

__all__ = sorted(
    {"PowerLawFit", "fit_powerlaw", "resolve_device"}
    | set(dimension.__all__)
    | set(embedding_gpu.__all__)
    | set(entropy.__all__)
    | set(neighbors.__all__)
    | set(projection.__all__)
    | set(similarity.__all__)
    | set(spectra.__all__)
    | set(subspaces.__all__)
)
