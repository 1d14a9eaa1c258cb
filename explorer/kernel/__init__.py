"""The analysis kernel: pure math on tensors, CPU or GPU. Imports nothing of the notebook."""

from explorer.kernel.device import resolve_device
from explorer.kernel.powerlaw import PowerLawFit, fit_powerlaw
from explorer.kernel.similarity import cka
from explorer.kernel.spectra import (
    alpha_weighted,
    condition,
    effective_rank,
    energy_top_k,
    esd,
    gram,
    gram_resolved,
    mp_edge,
    n_spikes,
    numerical_rank,
    participation_ratio,
    rankme,
    singular_values,
    stable_rank,
)
from explorer.kernel.subspaces import (
    intruder_cosines,
    intruder_dimensions,
    orthonormal_basis,
    principal_angles,
    singular_vectors,
    subspace_overlap,
    task_vector_cosines,
    update_energy,
    update_in_basis,
    update_spectrum,
)

__all__ = [
    "PowerLawFit",
    "alpha_weighted",
    "cka",
    "condition",
    "effective_rank",
    "energy_top_k",
    "esd",
    "fit_powerlaw",
    "gram",
    "gram_resolved",
    "intruder_cosines",
    "intruder_dimensions",
    "mp_edge",
    "n_spikes",
    "numerical_rank",
    "orthonormal_basis",
    "participation_ratio",
    "principal_angles",
    "rankme",
    "resolve_device",
    "singular_values",
    "singular_vectors",
    "stable_rank",
    "subspace_overlap",
    "task_vector_cosines",
    "update_energy",
    "update_in_basis",
    "update_spectrum",
]
