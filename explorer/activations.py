"""``Activations``: hidden states per depth for one probe set, with labels; saved as safetensors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

from explorer.errors import SourceError

_FORMAT = "explorer.activations/1"


class Activations(Mapping):
    """Hidden states: ``acts[depth]`` (or ``acts["blocks.3"]``) is an (N, D) tensor on the CPU.

    Attributes
    ----------
    depths : list of int
        The captured depths (0 = embeddings, 1..L = blocks, L+1 = head).
    labels : dict of str -> ndarray
        Per-point metadata, one value per row (``label``, ``text``, ``topic``; with token pooling
        ``"all"`` also ``sample`` and ``position`` of each token).
    meta : dict
        Provenance: checkpoint name and source, pooling, dtype, seed, number of inputs.
    """

    def __init__(
        self,
        states: Mapping[int, torch.Tensor],
        labels: Mapping[str, np.ndarray] | None = None,
        meta: dict | None = None,
    ):
        self._states = {int(d): t for d, t in sorted(states.items())}
        n = {t.shape[0] for t in self._states.values()}
        if len(n) > 1:
            raise ValueError(f"depths hold different numbers of points: {sorted(n)}")
        self.n_points = n.pop() if n else 0
        self.labels = {k: np.asarray(v) for k, v in (labels or {}).items()}
        for k, v in self.labels.items():
            if len(v) != self.n_points:
                raise ValueError(f"label {k!r} has {len(v)} values for {self.n_points} points")
        self.meta = dict(meta or {})

    @property
    def depths(self) -> list[int]:
        return list(self._states)

    @property
    def addresses(self) -> list[str]:
        return [f"blocks.{d}" for d in self._states]

    def __getitem__(self, key: int | str) -> torch.Tensor:
        depth = key
        if isinstance(key, str):
            from explorer.sources.families import parse_address

            depth, role = parse_address(key)
            if role:
                raise KeyError(f"{key!r} addresses a weight; hidden states are 'blocks.{depth}'")
        if depth not in self._states:
            raise KeyError(f"depth {key!r} was not captured; captured depths: {self.depths}")
        return self._states[depth]

    def __iter__(self) -> Iterator[int]:
        return iter(self._states)

    def __len__(self) -> int:
        return len(self._states)

    def __repr__(self) -> str:
        dims = sorted({t.shape[1] for t in self._states.values()})
        return (
            f"Activations(n_points={self.n_points}, depths={self.depths[0]}..{self.depths[-1]}, "
            f"dims={dims}, labels={list(self.labels)})"
            if self._states
            else "Activations(empty)"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.safetensors`` file: a tensor per depth, labels and meta as JSON metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path.with_suffix(".safetensors")
        tensors = {f"blocks.{d}": t.contiguous() for d, t in self._states.items()}
        labels = {k: _jsonable(v) for k, v in self.labels.items()}
        header = {"format": _FORMAT, "labels": labels, "meta": _jsonable(self.meta)}
        save_file(tensors, str(path), metadata={"explorer": json.dumps(header)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Activations:
        """Read what :meth:`save` wrote (lazily per tensor; everything ends up in memory)."""
        from explorer.sources.families import parse_address
        from explorer.sources.stores import SafetensorsStore

        store = SafetensorsStore(path)
        raw = store.metadata.get("explorer")
        if raw is None:
            raise SourceError(f"{path}: not an explorer activations file (no 'explorer' metadata)")
        header = json.loads(raw)
        if header.get("format") != _FORMAT:
            raise SourceError(f"{path}: unknown activations format {header.get('format')!r}")
        states = {parse_address(n)[0]: store.get(n) for n in store.names}
        labels = {k: np.asarray(v) for k, v in header.get("labels", {}).items()}
        return cls(states, labels, header.get("meta"))


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
