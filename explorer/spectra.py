"""``ex.spectra(ck)``: the spectrum of every weight matrix of a checkpoint, one row per matrix.

Matrices are read from the checkpoint one at a time (a memory-mapped file is never read whole),
each is reduced at once to its Gram matrix on the smaller side (``k x k``, ``k = min(m, n)``; a
30522 x 384 embedding gives a 384 x 384 Gram), and the Gram matrices of matrices with the same
``k`` are stacked and sent through one batched ``eigvalsh`` (on the CPU split over the cores, a
matrix per thread: :func:`explorer.kernel.linalg.eigvalsh`; MiniLM's 40 Gram matrices of
384 x 384 in float64 take 0.22 s instead of 0.42 s on 2 cores). Every number in the table is then
computed from the eigenvalues on the device, for the whole batch at once (the power-law fit
included), and the table is assembled on the host.

Definitions, units and references are in :mod:`explorer.kernel.spectra` and
:mod:`explorer.kernel.powerlaw` (REFERENCES.md, "Spectra of one matrix").

Differences from WeightWatcher 0.7.7's ``analyze()`` (defaults), all checked on MiniLM by
``tests/integration/test_spectra_weightwatcher.py``:

* Same ESD: WeightWatcher takes the squared singular values of the matrix in float64
  (``scipy.linalg.svd``; float32 ``svdvals`` on CUDA), without normalisation, so its
  ``spectral_norm`` is ``sv_max**2`` here and its ``stable_rank`` is ``stable_rank`` here.
* Same layers but two: WeightWatcher skips matrices with fewer than 8 eigenvalues
  (``min_evals``; MiniLM's 2 x 384 token-type embedding) and those with more than 50,000 rows
  (``max_N``; a vocabulary above 50k) or more than 15,000 eigenvalues (``max_evals``). Explorer
  analyses every matrix. (MiniLM's 30522 x 384 word embedding is analysed by both.)
* Same power-law fit (candidates, MLE, KS distance, tie rule), except which eigenvalues enter it:
  WeightWatcher drops eigenvalues ``<= 1e-5`` (an absolute threshold, so it depends on the scale
  of the weights), explorer those below the eigensolver's noise floor ``k * eps * lambda_max``
  (relative). The fitted tail is the same unless the KS minimum falls among those small
  eigenvalues; on MiniLM alpha, xmin, D and the tail size agree to 1e-13. Below 20 eigenvalues
  WeightWatcher switches to a bias-corrected small-sample objective (alpha with ``n - 1``, xmin by
  ``D - 0.868 / sqrt(n)``); explorer keeps Clauset's rule at every size, so the demo models'
  10 x 64 heads get different alphas.
* WeightWatcher's ``warning`` column flags alpha < 2 ("over-trained") and alpha > 6
  ("under-trained"); explorer reports alpha, its tail size ``n_tail`` and KS distance ``D`` and
  leaves the reading to the user (the flagged MiniLM layers are fitted identically). Its
  ``entropy`` is not the effective rank (it is the entropy of ``s_i^2`` over ``log(rank)``). Its
  ``matrix_rank`` is numpy's rule on float64 singular values on the CPU (equal to
  ``numerical_rank`` here in float64) but on float32 ones on a GPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from explorer import arguments
from explorer.kernel.device import resolve_device
from explorer.kernel.linalg import eigvalsh
from explorer.kernel.powerlaw import fit_sorted
from explorer.kernel.spectra import RESOLVE_FACTOR, _dtype
from explorer.sources.checkpoint import Checkpoint, LayerSelector
from explorer.sources.families import LayerEntry
from explorer.sources.load import load

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["iter_spectra", "spectra"]

DEFAULT_KS = (1, 5, 10, 50)

# Gram matrices held at once, in elements (2**25 float64 = 256 MiB): 227 of 384 x 384, 2 of 4096^2
_GRAM_BUDGET = 1 << 25
_MAX_BATCH = 64
# elements of a matrix converted to the compute dtype at once (2**22 float64 = 32 MiB)
_SLAB = 1 << 22
_GRAM_BLOCKS = 4

_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)

STATUS_ZERO = "zero matrix: ratios and the power-law fit are undefined (NaN)"
STATUS_NO_FIT = "no power-law fit: fewer than 2 distinct eigenvalues above the noise floor"


def spectra(
    ck,
    layers: LayerSelector = None,
    *,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | str = torch.float64,
    ks: Sequence[int] = DEFAULT_KS,
    keep_esd: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """The weight spectrum of every matrix of ``ck``: one row per matrix, in layer order.

    Parameters
    ----------
    ck : Checkpoint, or anything :func:`explorer.load` accepts
        The model. Every 2-D weight matrix is analysed, embeddings and heads included
        (convolution kernels reshaped to ``(out, in*k*k)``, fused projections split; see
        ``ck.layers``).
    layers : str, list of str, or callable, optional
        A full address, a list of addresses, or a predicate on :class:`LayerEntry`
        (default: all).
    device : "auto", "cpu", "cuda", ...
        Where the Gram matrices and eigenvalues are computed ("auto": CUDA when present). On the
        GPU an out-of-memory error halves the batch, then moves the matrix to the CPU, each time
        with a ``RuntimeWarning``.
    dtype : torch.float64 (default) or torch.float32
        Precision of the Gram matrix and of the eigensolver, and whose ``eps`` sets the numerical
        rank's tolerance. A Gram ESD resolves singular values down to about
        ``s_1 * sqrt(10 k eps)``; a matrix whose smallest eigenvalue falls below
        ``10 * k * eps * lambda_max`` (a condition number above ~1e6 in float64, ~50 in float32,
        for ``k = 384``) is recomputed with ``torch.linalg.svdvals`` in the same dtype (``method``
        says which was used), so every column holds to the stated precision, at a cost only for
        (nearly) rank-deficient matrices. Most attention matrices have condition numbers of 1e3
        to 1e5, so float32 is rarely faster (MiniLM: 26 of 40 recomputed, same total time).
    ks : sequence of int
        Cut-offs of the ``energy_top_{k}`` columns.
    keep_esd : bool, default True
        Keep each matrix's ESD in the ``esd`` column.
    progress : callable, optional
        Called as ``progress(done, total)`` after each batch.

    Returns
    -------
    pandas.DataFrame
        One row per matrix, with columns

        ``address, depth, role, name, shape``
            As in ``ck.layers`` (``shape`` is the analysed ``(m, n)`` = ``(out, in)``).
        ``m, n``
            The matrix's rows and columns.
        ``sv_max``
            Spectral norm ``s_1``.
        ``frobenius``
            ``sqrt(sum_i s_i^2)``.
        ``stable_rank``
            ``sum_i s_i^2 / s_1^2``.
        ``effective_rank``
            ``exp(H(s / sum s))`` (Roy & Vetterli).
        ``participation_ratio``
            ``(sum lambda)^2 / sum lambda^2``.
        ``numerical_rank``
            ``#{s_i > s_1 * max(m, n) * eps(dtype)}``.
        ``energy_top_{k}``
            ``sum_{i<=k} s_i^2 / sum_i s_i^2`` for each ``k`` in ``ks``.
        ``condition``
            ``s_1 / s_min`` at full numerical rank, ``inf`` when rank deficient.
        ``alpha, xmin, D, n_tail``
            Power-law fit of the ESD's tail (Clauset et al.): exponent, start of the tail (an
            eigenvalue of ``W^T W``), KS distance, number of eigenvalues ``>= xmin``.
        ``alpha_weighted``
            ``alpha * log10(s_1^2)``.
        ``mp_edge, n_spikes``
            Marchenko-Pastur bulk edge ``v (sqrt(m) + sqrt(n))^2`` with ``v = ||W||_F^2 / (m n)``,
            in ESD units, and the number of eigenvalues above it.
        ``method``
            ``"gram"`` (``eigvalsh`` of the Gram matrix) or ``"svd"`` (``svdvals``, see ``dtype``).
        ``status``
            ``"ok"``, or why some numbers are NaN: ``"skipped: N NaN/Inf values"`` (all NaN, the
            run goes on), :data:`STATUS_ZERO`, :data:`STATUS_NO_FIT` (a 1 x n matrix, rank 1).
        ``esd``
            (``keep_esd``) The eigenvalues of ``W^T W``, descending, as a float64 numpy array;
            singular values are their square roots. ``df.set_index("address").esd[address]``.

        ``df.attrs`` records ``checkpoint``, ``device`` and ``dtype``.

    Examples
    --------
    >>> df = ex.spectra(ck)
    >>> df[["address", "stable_rank", "alpha"]]
    >>> lam = df.set_index("address").esd["blocks.3.attn.q"]
    """
    import pandas as pd

    ck = load(ck)
    dtype = _dtype(dtype)
    dev = resolve_device(device)
    rows = sorted(
        iter_spectra(ck, layers, device=dev, dtype=dtype, ks=ks, progress=progress),
        key=lambda r: r.pop("_order"),
    )
    if not keep_esd:
        for r in rows:
            r.pop("esd")
    df = pd.DataFrame(rows, columns=_columns(ks, keep_esd))
    for c in ("numerical_rank", "n_tail", "n_spikes"):  # counts; <NA> in skipped rows
        df[c] = df[c].astype("int64" if df[c].notna().all() else "Int64")
    df.attrs.update({"checkpoint": ck.name, "device": str(dev), "dtype": str(dtype)[6:]})
    return df


def _columns(ks: Sequence[int], keep_esd: bool) -> list[str]:
    cols = ["address", "depth", "role", "name", "shape", "m", "n", "sv_max", "frobenius"]
    cols += ["stable_rank", "effective_rank", "participation_ratio", "numerical_rank"]
    cols += [f"energy_top_{k}" for k in ks]
    cols += ["condition", "alpha", "xmin", "D", "n_tail", "alpha_weighted", "mp_edge", "n_spikes"]
    cols += ["method", "status"]
    return cols + (["esd"] if keep_esd else [])


def iter_spectra(
    ck: Checkpoint,
    layers: LayerSelector = None,
    *,
    device: str | torch.device | None = "auto",
    dtype: torch.dtype | str = torch.float64,
    ks: Sequence[int] = DEFAULT_KS,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[dict]:
    """Rows of :func:`spectra` as dicts, yielded batch by batch as they are computed.

    Batches follow the Gram size, not the layer order; each row carries ``_order``, its index in
    the selection. For background jobs that draw partial results.
    """
    ks = tuple(arguments.integers("ks", ks, low=1))
    dtype = _dtype(dtype)
    dev = resolve_device(device)
    entries = ck.select(layers)
    order = {e.address: i for i, e in enumerate(entries)}
    groups: dict[int, list[LayerEntry]] = {}
    for e in entries:
        groups.setdefault(min(_mn(e)), []).append(e)
    done = 0
    for k, group in groups.items():
        for rows in _analyse_group(ck, group, k, dev, dtype, ks):
            for r in rows:
                r["_order"] = order[r["address"]]
                yield r
            done += len(rows)
            if progress is not None:
                progress(done, len(entries))


def _mn(e: LayerEntry) -> tuple[int, int]:
    return int(e.shape[0]), int(np.prod(e.shape[1:], dtype=np.int64))


def _analyse_group(ck, group, k, dev, dtype, ks) -> Iterator[list[dict]]:
    """Batches of one Gram size; on a GPU out-of-memory: halve the batch, then use the CPU."""
    batch = max(1, min(_MAX_BATCH, _GRAM_BUDGET // (k * k)))
    pending = list(group)
    while pending:
        chunk = pending[:batch]
        try:
            rows = _run_batch(ck, chunk, dev, dtype, ks)
        except _OOM:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
            if len(chunk) > 1:
                batch = len(chunk) // 2
                warnings.warn(
                    f"out of memory on {dev} with {len(chunk)} matrices of Gram size {k}; "
                    f"retrying {batch} at a time",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            if dev.type == "cpu":
                raise
            warnings.warn(
                f"out of memory on {dev} for {chunk[0].address} even alone; computing it on "
                "the CPU",
                RuntimeWarning,
                stacklevel=3,
            )
            rows = _run_batch(ck, chunk, torch.device("cpu"), dtype, ks)
        pending = pending[len(chunk) :]
        yield rows


def _read(ck: Checkpoint, e: LayerEntry, dev: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The matrix on ``dev``, moved in its stored precision (bf16 travels as bf16, not float64)."""
    stored = getattr(torch, e.dtype, None)
    wire = stored if isinstance(stored, torch.dtype) and stored.is_floating_point else dtype
    if wire.itemsize > dtype.itemsize:
        wire = dtype
    return ck.weight(e.address, device=dev, dtype=wire, check_finite=False)


def _gram(w: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Gram matrix on the smaller side into ``out`` (its dtype), converting a slab of rows at a time.

    A 32000 x 4096 bf16 embedding never exists in float64 as a whole (1 GiB): at most
    ``_SLAB`` elements of it do. The Grams of a batch are written into one tensor allocated
    before the matrices are read, so that no small allocation lands in the freed room of a
    converted matrix and pins it (glibc would keep one matrix per Gram resident).
    """
    if w.shape[0] < w.shape[1]:
        w = w.mT
    n = w.shape[1]
    # Only the blocks on and above the diagonal are multiplied (``_GRAM_BLOCKS`` column blocks:
    # 10/16 of the products), then mirrored: on 30522 x 384 float64, 87 ms instead of 112.
    side = -(-n // _GRAM_BLOCKS) if n >= 4 * _GRAM_BLOCKS else n
    starts = range(0, n, side)
    step = max(1, _SLAB // n)
    for i, slab in enumerate(w.split(step)):
        x = slab.to(out.dtype)
        for j in starts:
            rows, cols = x[:, j : j + side], x[:, j:]
            if i == 0:
                torch.matmul(rows.mT, cols, out=out[j : j + side, j:])
            else:
                out[j : j + side, j:].addmm_(rows.mT, cols)
    for j in starts:  # mirror, block by block (no temporary)
        for k in starts[j // side + 1 :]:
            out[k : k + side, j : j + side].copy_(out[j : j + side, k : k + side].mT)
    return out


def _run_batch(ck, chunk: list[LayerEntry], dev, dtype, ks) -> list[dict]:
    """Rows for matrices of one Gram size: read, Gram, one batched eigvalsh, batched metrics."""
    k = min(_mn(chunk[0]))
    g = torch.empty((len(chunk), k, k), dtype=dtype, device=dev)
    for i, e in enumerate(chunk):
        _gram(_read(ck, e, dev, dtype), out=g[i])
    # a NaN/Inf anywhere in W shows on the Gram's diagonal (its column's sum of squares)
    finite = torch.isfinite(g.diagonal(dim1=-2, dim2=-1)).all(-1).tolist()
    rows = [
        _skipped_row(e, _bad_values(ck, e, dev, dtype), ks)
        for e, f in zip(chunk, finite, strict=True)
        if not f
    ]
    live = [e for e, f in zip(chunk, finite, strict=True) if f]
    if not live:
        return rows
    if len(live) < len(chunk):
        g = g[torch.tensor(finite, device=g.device)]
    eps = torch.finfo(dtype).eps
    method = ["gram"] * len(live)
    try:
        lam = eigvalsh(g).flip(-1).clamp_min_(0.0)  # (B, k) descending
        unresolved = (lam[:, -1] <= RESOLVE_FACTOR * k * eps * lam[:, 0]) & (lam[:, 0] > 0)
    except torch.linalg.LinAlgError:  # the solver did not converge: svdvals for all of them
        lam = torch.zeros(g.shape[:-1], dtype=dtype, device=g.device)
        unresolved = torch.ones(len(live), dtype=torch.bool)
    del g
    for b in unresolved.nonzero().flatten().tolist():
        s = torch.linalg.svdvals(_read(ck, live[b], dev, dtype).to(dtype))
        lam[b] = s * s
        method[b] = "svd"
    cols, esd = _metrics(lam, live, dtype, ks)
    for b, e in enumerate(live):
        row = _base_row(e)
        row.update({name: values[b].item() for name, values in cols.items()})
        row["method"] = method[b]
        row["status"] = _status(row)
        row["esd"] = esd[b]
        rows.append(row)
    return rows


def _bad_values(ck, e: LayerEntry, dev, dtype) -> str:
    n_bad = int((~torch.isfinite(_read(ck, e, dev, dtype))).sum())
    if n_bad:
        return f"skipped: {n_bad} NaN/Inf values"
    return f"skipped: its Gram matrix overflows {str(dtype)[6:]} (entries near the dtype's max)"


def _metrics(lam: torch.Tensor, live: list[LayerEntry], dtype, ks):
    """Every column for a (B, k) batch of descending ESDs, moved to the host in one transfer."""
    b, k = lam.shape
    dev = lam.device
    eps = torch.finfo(dtype).eps
    mn = torch.tensor([_mn(e) for e in live], dtype=lam.dtype, device=dev)
    m, n = mn[:, 0], mn[:, 1]
    s = lam.sqrt()
    top, fro2 = lam[:, 0], lam.sum(-1)
    zero = top <= 0
    nan = torch.full_like(top, float("nan"))
    p = s / s.sum(-1, keepdim=True)
    rank = (s > (s[:, :1] * torch.maximum(m, n)[:, None] * eps)).sum(-1)
    cond = torch.where(rank == k, s[:, 0] / s[:, -1], torch.full_like(top, float("inf")))
    cum = lam.cumsum(-1)
    idx = torch.tensor([min(kk, k) - 1 for kk in ks], device=dev)
    energy = cum.index_select(-1, idx) / fro2[:, None]
    edge = fro2 / (m * n) * (m.sqrt() + n.sqrt()) ** 2
    lam64 = lam.to(torch.float64)
    floor = lam64[:, 0] * k * torch.finfo(dtype).eps
    alpha, xmin, d, n_tail, _ = fit_sorted(lam64.flip(-1), floor)
    cols = {
        "sv_max": s[:, 0],
        "frobenius": fro2.sqrt(),
        "stable_rank": fro2 / top,
        "effective_rank": (-torch.special.xlogy(p, p).sum(-1)).exp(),
        "participation_ratio": fro2**2 / (lam * lam).sum(-1),
        "numerical_rank": rank.to(lam.dtype),
        **{f"energy_top_{kk}": energy[:, i] for i, kk in enumerate(ks)},
        "condition": torch.where(zero, nan, cond),
        "alpha": alpha,
        "xmin": xmin,
        "D": d,
        "n_tail": n_tail.to(lam.dtype),
        "alpha_weighted": alpha * torch.log10(top.to(torch.float64)),
        "mp_edge": edge,
        "n_spikes": (lam > edge[:, None]).sum(-1).to(lam.dtype),
    }
    names = list(cols)
    host = torch.stack([v.to(torch.float64) for v in cols.values()], 1).cpu().numpy()
    esd = lam64.cpu().numpy()
    out = {name: host[:, i] for i, name in enumerate(names)}
    for name in ("numerical_rank", "n_tail", "n_spikes"):
        out[name] = out[name].astype(np.int64)
    return out, list(esd)


def _base_row(e: LayerEntry) -> dict:
    m, n = _mn(e)
    return {
        "address": e.address,
        "depth": e.depth,
        "role": e.role,
        "name": e.name,
        "shape": tuple(e.shape),
        "m": m,
        "n": n,
    }


def _skipped_row(e: LayerEntry, status: str, ks) -> dict:
    row = _base_row(e)
    nan = float("nan")
    for c in _columns(ks, keep_esd=False)[7:]:
        row[c] = nan
    row.update(method="", status=status, esd=None)
    return row


def _status(row: dict) -> str:
    if row["sv_max"] <= 0:
        return STATUS_ZERO
    if row["n_tail"] == 0:
        return STATUS_NO_FIT
    return "ok"
