"""The numbers :func:`explorer.watch` records at each step, per depth (no capture, no threads).

* ``effective_rank``: Roy & Vetterli on the centred states' singular values;
* ``rankme``: Garrido et al. (``eps = 1e-7``) on the centred states;
* ``twonn``: Facco et al. TwoNN intrinsic dimension (duplicates removed first);
* ``drift``: per depth, the mean over its weight matrices of ``1 - overlap`` of the top-``k`` left
  singular subspace with the one at the first record (``overlap`` = mean ``cos^2`` of the
  principal angles, REFERENCES.md).

:class:`Recorder` turns one record (hidden states per depth, optionally the weights) into tidy
rows ``{"step", "depth", "metric", "value"}``. It holds the first record's subspaces for the
drift, so one recorder must see the records in order; it runs in the training process or in the
worker process of :mod:`explorer.watch_worker`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from explorer.kernel.dimension import twonn
from explorer.kernel.spectra import effective_rank, rankme_from_singular_values
from explorer.kernel.subspaces import singular_vectors, subspace_overlap

__all__ = ["METRICS", "Recorder"]

METRICS = ("effective_rank", "rankme", "twonn")


def _spectral(x: torch.Tensor, cache: dict) -> torch.Tensor:
    """Singular values of the centred states, computed once per depth for both rank metrics."""
    if "s" not in cache:
        x = x.double()
        cache["s"] = torch.linalg.svdvals(x - x.mean(0))
    return cache["s"]


_COMPUTE = {
    "effective_rank": lambda x, c: float(effective_rank(_spectral(x, c))),
    "rankme": lambda x, c: float(rankme_from_singular_values(_spectral(x, c))),
    "twonn": lambda x, c: float(twonn(x.float())),
}


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    unknown = set(metrics) - set(_COMPUTE)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {list(_COMPUTE)}")
    return tuple(metrics)


class Recorder:
    """Rows for one record after another (see the module docstring)."""

    def __init__(self, metrics: Sequence[str] = METRICS, drift_k: int = 8):
        self.metrics = check_metrics(metrics)
        self.drift_k = int(drift_k)
        self._initial: dict[str, torch.Tensor] | None = None

    def rows(
        self,
        step: int,
        states: Mapping[int, torch.Tensor | np.ndarray],
        weights: Mapping[str, tuple[int, torch.Tensor | np.ndarray]] | None = None,
    ) -> list[dict]:
        """``states``: depth -> (N, D) hidden states; ``weights``: address -> (depth, matrix)."""
        rows = []
        for depth, x in states.items():
            x = torch.as_tensor(x)
            cache: dict = {}
            for m in self.metrics:
                try:
                    value = _COMPUTE[m](x, cache)
                except Exception:  # noqa: BLE001 - a metric undefined at one depth is a NaN
                    value = float("nan")
                rows.append({"step": step, "depth": int(depth), "metric": m, "value": value})
        if weights is not None:
            rows += self._drift_rows(step, weights)
        return rows

    def reference(self, weights: Mapping[str, tuple[int, torch.Tensor | np.ndarray]]) -> None:
        """Measure the drift from these weights (the first record's, unless set before)."""
        self._initial = {a: u for a, (_, u) in self._tops(weights).items()}

    def _tops(self, weights) -> dict[str, tuple[int, torch.Tensor]]:
        """address -> (depth, top-``drift_k`` left singular vectors)."""
        return {
            a: (d, singular_vectors(torch.as_tensor(w, dtype=torch.float64), self.drift_k)[0])
            for a, (d, w) in weights.items()
        }

    def _drift_rows(self, step: int, weights) -> list[dict]:
        tops = self._tops(weights)
        if self._initial is None:
            self._initial = {a: u for a, (_, u) in tops.items()}
        by_depth: dict[int, list[float]] = {}
        for address, (depth, u) in tops.items():
            if address in self._initial:
                ref = self._initial[address]
                by_depth.setdefault(depth, []).append(max(0.0, 1.0 - subspace_overlap(ref, u)))
        return [
            {"step": step, "depth": int(d), "metric": "drift", "value": float(np.mean(v))}
            for d, v in sorted(by_depth.items())
        ]
