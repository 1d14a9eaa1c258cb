"""``Probe``: the inputs that are run through a model, with per-point labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.errors import ProbeError


@dataclass
class Probe:
    """Inputs (a list of strings, or an array/tensor with one row per point) and their labels.

    ``labels`` maps a name (``"label"``, ``"topic"``, ``"text"``) to one value per input.
    """

    inputs: Sequence[str] | Any
    labels: dict[str, Sequence] = field(default_factory=dict)
    name: str = "probe"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.inputs)
        for key, values in self.labels.items():
            if len(values) != n:
                raise ProbeError(f"label {key!r} has {len(values)} values for {n} inputs")
        self.labels = {k: np.asarray(v) for k, v in self.labels.items()}

    def __len__(self) -> int:
        return len(self.inputs)

    def __repr__(self) -> str:
        return f"Probe({self.name!r}, n={len(self)}, labels={list(self.labels)})"
