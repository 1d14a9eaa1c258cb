"""The analysis kernel: pure math on tensors, CPU or GPU. Imports nothing of the notebook."""

from explorer.kernel.device import resolve_device
from explorer.kernel.powerlaw import PowerLawFit, fit_powerlaw
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

__all__ = [
    "PowerLawFit",
    "alpha_weighted",
    "condition",
    "effective_rank",
    "energy_top_k",
    "esd",
    "fit_powerlaw",
    "gram",
    "gram_resolved",
    "mp_edge",
    "n_spikes",
    "numerical_rank",
    "participation_ratio",
    "rankme",
    "resolve_device",
    "singular_values",
    "stable_rank",
]
