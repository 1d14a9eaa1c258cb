"""Batched symmetric eigenvalues, spread over the CPU's cores one matrix per thread.

``torch.linalg.eigvalsh`` of a stack of matrices on the CPU solves them one after another, each
with every intra-op thread; for matrices of a few hundred rows the tridiagonal reduction is
memory-bound and barely gains from a second thread, and on a busy machine the threads spin
against each other. Splitting the stack over ``torch.get_num_threads()`` worker threads, each
with one intra-op thread (a per-thread setting), keeps every core on its own matrix: measured on
a 2-core CPU, 40 Gram matrices of 384 x 384 in float64 take 0.25 s instead of 0.38 s (quiet) and
0.46 s instead of 1.64 s (with another process computing). The eigenvalues are the same
LAPACK routine's, matrix by matrix (one thread instead of two changes their last bits only).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["eigvalsh"]

# below this many rows a matrix is solved too fast for a thread hand-off to pay
_MIN_ROWS = 64


@functools.cache
def _pool(n_threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(n_threads, "explorer-eigvalsh", torch.set_num_threads, (1,))


def eigvalsh(g: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (ascending) of a stack ``(..., k, k)`` of symmetric matrices, as
    ``torch.linalg.eigvalsh`` (lower triangle); CPU stacks are split over threads."""
    threads = torch.get_num_threads()
    if g.device.type != "cpu" or g.ndim < 3 or threads < 2 or g.shape[-1] < _MIN_ROWS:
        return torch.linalg.eigvalsh(g)
    flat = g.reshape(-1, *g.shape[-2:])
    if len(flat) < 2:
        return torch.linalg.eigvalsh(g)
    parts = flat.chunk(min(threads, len(flat)))
    lam = torch.cat(list(_pool(len(parts)).map(torch.linalg.eigvalsh, parts)))
    return lam.reshape(g.shape[:-1])
