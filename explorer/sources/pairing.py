"""Pairing two checkpoints layer by layer (same address and same matrix shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from explorer.errors import SourceError

if TYPE_CHECKING:
    import pandas as pd

    from explorer.sources.checkpoint import Checkpoint


@dataclass(frozen=True)
class PairedLayers:
    """Layers of ``a`` and ``b`` matched by address; what could not be matched, and why."""

    a: Checkpoint
    b: Checkpoint
    matched: tuple[str, ...]
    only_in_a: tuple[str, ...]
    only_in_b: tuple[str, ...]
    shape_mismatch: tuple[tuple[str, tuple[int, int], tuple[int, int]], ...]

    def frame(self) -> pd.DataFrame:
        """One row per address of either checkpoint: status ``matched``, ``only_in_a``, ..."""
        import pandas as pd

        rows = [{"address": a, "status": "matched"} for a in self.matched]
        rows += [{"address": a, "status": "only_in_a"} for a in self.only_in_a]
        rows += [{"address": a, "status": "only_in_b"} for a in self.only_in_b]
        rows += [
            {"address": a, "status": f"shape_mismatch {sa} vs {sb}"}
            for a, sa, sb in self.shape_mismatch
        ]
        return pd.DataFrame(rows, columns=["address", "status"])

    def summary(self) -> str:
        same = self.a.name == self.b.name  # then say which one by position
        name_a, name_b = ("a", "b") if same else (self.a.name, self.b.name)
        parts = [f"{len(self.matched)} matched"]
        if self.only_in_a:
            parts.append(f"{len(self.only_in_a)} only in {name_a}")
        if self.only_in_b:
            parts.append(f"{len(self.only_in_b)} only in {name_b}")
        if self.shape_mismatch:
            parts.append(f"{len(self.shape_mismatch)} with different shapes")
        return ", ".join(parts)


def pair_layers(a: Checkpoint, b: Checkpoint) -> PairedLayers:
    """Match by address and shape. Raises :class:`SourceError` when nothing matches at all."""
    addr_b = {e.address: e for e in b.entries}
    matched, only_a, mismatch = [], [], []
    for e in a.entries:
        other = addr_b.get(e.address)
        if other is None:
            only_a.append(e.address)
        elif other.shape != e.shape:
            mismatch.append((e.address, e.shape, other.shape))
        else:
            matched.append(e.address)
    addr_a = {e.address for e in a.entries}
    only_b = [e.address for e in b.entries if e.address not in addr_a]
    result = PairedLayers(a, b, tuple(matched), tuple(only_a), tuple(only_b), tuple(mismatch))
    if not matched:
        raise SourceError(
            f"{a.name} ({a.family}) and {b.name} ({b.family}) have no layer in common with the "
            f"same shape ({result.summary()}): they are different architectures or sizes, so "
            "they cannot be compared layer by layer"
        )
    return result
