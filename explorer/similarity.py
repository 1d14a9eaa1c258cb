"""``ex.similarity(acts_a, acts_b)``: linear CKA between every pair of depths of two captures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from explorer.activations import Activations
from explorer.kernel.device import resolve_device
from explorer.kernel.similarity import _BLOCK_ELEMENTS, CKAStats, cka_from_stats
from explorer.memory_budget import out_of_memory, require

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["similarity"]


def similarity(
    acts_a: Activations,
    acts_b: Activations | None = None,
    *,
    debiased: bool = False,
    depths_a: Sequence[int] | None = None,
    depths_b: Sequence[int] | None = None,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Linear CKA (Kornblith et al. 2019) between each depth of ``acts_a`` and each of ``acts_b``.

    Parameters
    ----------
    acts_a, acts_b : Activations
        Two captures of the **same probe points** (two checkpoints, or ``acts_b=None`` for a
        model against itself). Each depth is centred; see :func:`explorer.kernel.cka`.
    debiased : bool
        The unbiased HSIC estimator (Song et al. 2012, Nguyen et al. 2021): less biased upward
        when dimensions are large compared with the number of points.
    depths_a, depths_b : sequence of int, optional
        Restrict the rows / columns (default: every captured depth).
    device, dtype
        Where the products run ("auto": CUDA when present) and their precision (float64 on the
        CPU, float32 on a GPU). Points travel to the device a block of rows at a time, so 100k
        points x 4096 dims need only a few D x D matrices there.
    progress : callable, optional
        ``progress(done, total)`` after each row of the matrix.

    Returns
    -------
    pandas.DataFrame
        ``depths_a x depths_b`` CKA values; index ``depth_a``, columns ``depth_b``.
        ``.attrs`` holds ``a``, ``b``, ``debiased``, ``n_points``, ``device``, ``dtype``.
        ``df.stack()`` gives the tidy form.
    """

    acts_b = acts_a if acts_b is None else acts_b
    _check_same_points(acts_a, acts_b)
    dev = resolve_device(device)
    da = list(acts_a.depths if depths_a is None else depths_a)
    db = list(acts_b.depths if depths_b is None else depths_b)
    same = acts_b is acts_a
    _check_memory(acts_a, acts_b, da, db, dev, dtype)
    hint = "restrict depths_a/depths_b, capture fewer dimensions, or use device='cpu'"
    with out_of_memory("ex.similarity", hint):
        return _similarity(acts_a, acts_b, da, db, same, dev, dtype, debiased, progress)


def _similarity(acts_a, acts_b, da, db, same, dev, dtype, debiased, progress):
    import pandas as pd

    stats_a = {d: CKAStats(acts_a[d], dtype, dev) for d in da}
    stats_b = {
        d: stats_a[d] if same and d in stats_a else CKAStats(acts_b[d], dtype, dev) for d in db
    }
    done: dict[tuple[int, int], float] = {}  # a model against itself: CKA is symmetric
    values = np.full((len(da), len(db)), np.nan)
    for i, d1 in enumerate(da):
        for j, d2 in enumerate(db):
            key = (min(d1, d2), max(d1, d2)) if same else (d1, d2)
            if key not in done:
                done[key] = cka_from_stats(stats_a[d1], stats_b[d2], debiased=debiased)
            values[i, j] = done[key]
        if progress is not None:
            progress(i + 1, len(da))
    df = pd.DataFrame(
        values,
        index=pd.Index(da, name="depth_a"),
        columns=pd.Index(db, name="depth_b"),
    )
    df.attrs.update(
        a=acts_a.meta.get("checkpoint", "a"),
        b=acts_b.meta.get("checkpoint", "b"),
        debiased=debiased,
        n_points=acts_a.n_points,
        device=str(dev),
        dtype=str(next(iter(stats_a.values())).dtype)[6:] if stats_a else None,
    )
    return df


def _check_memory(acts_a, acts_b, da, db, dev, dtype) -> None:
    """Refuse up front what would not fit: per depth the D x D Gram matrix (``||X^T X||_F``), per
    pair the D_b x D_a cross product, two row blocks, and N row norms kept per depth."""
    item = (dtype or (torch.float64 if dev.type == "cpu" else torch.float32)).itemsize
    wa = [acts_a[d].shape[1] for d in da]
    wb = [acts_b[d].shape[1] for d in db]
    if not wa or not wb:
        return
    widest = max(wa + wb)
    needed = item * (widest**2 + max(wa) * max(wb) + 3 * _BLOCK_ELEMENTS)
    needed += item * acts_a.n_points * (len(da) + len(db))
    require(
        needed,
        f"ex.similarity of {len(da)} x {len(db)} depths ({widest} dimensions at the widest)",
        dev,
        "restrict depths_a/depths_b, or capture fewer dimensions (e.g. pooled states) or points",
    )


def _check_same_points(a: Activations, b: Activations) -> None:
    if a.n_points != b.n_points:
        raise ValueError(
            f"CKA compares two representations of the same points, but the captures hold "
            f"{a.n_points} and {b.n_points} points: capture both checkpoints on the same probe "
            "(with the same max_points and pooling)"
        )
    for key in ("text", "sample", "position"):
        if key in a.labels and key in b.labels and not np.array_equal(a.labels[key], b.labels[key]):
            raise ValueError(
                f"the captures hold different points (their {key!r} labels differ): capture both "
                "on the same probe with the same seed so that row i is the same input in both"
            )
